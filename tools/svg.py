"""svg.py: the few SVG pieces tools/report and tools/timeline draw with.

No plotting library: an SVG is text, so a chart is a list of elements with
coordinates worked out by hand. Every string that reaches the file goes
through esc(), so a chapter name or an error message can never break the XML.
"""

FONT = "font-family:DejaVu Sans,Helvetica,Arial,sans-serif"

# One colour per family of models, so a chart reads the same in every picture.
PALETTE = {
    "blocking": "#8c564b",      # 01-03: a thread of control per client
    "busy": "#d62728",          # 04: non-blocking, busy-polling
    "readiness": "#1f77b4",     # 05-07: readiness multiplexing
    "loop": "#2ca02c",          # 08-10: an event loop and what is built on it
    "multicore": "#9467bd",     # 11: a loop per core
    "completion": "#ff7f0e",    # 12: completion-based I/O
    "reference": "#7f7f7f",     # asyncio
}


def family(name):
    """The model family of a chapter folder name (or 'asyncio')."""
    number = name[:2]
    if not number.isdigit():
        return "reference"
    n = int(number)
    if n <= 3:
        return "blocking"
    if n == 4:
        return "busy"
    if n <= 7:
        return "readiness"
    if n <= 10:
        return "loop"
    return "multicore" if n == 11 else "completion"


def colour(name):
    return PALETTE[family(name)]


FAMILY_LABELS = {
    "blocking": "blocking, a thread or process per client",
    "busy": "non-blocking, busy-polling",
    "readiness": "readiness multiplexing",
    "loop": "event loop",
    "multicore": "a loop per core",
    "completion": "completion (io_uring)",
    "reference": "asyncio (reference)",
}


def _legend_items(names):
    seen = []
    for name in names:
        if family(name) not in seen:
            seen.append(family(name))
    return [(fam, 30 + 6.2 * len(FAMILY_LABELS[fam])) for fam in seen]


def legend_height(names, width, x=20):
    """The height legend() will take for these names within width."""
    rows, cx = 1, x
    for _, w in _legend_items(names):
        if cx + w > width and cx > x:
            rows, cx = rows + 1, x
        cx += w
    return rows * 18


def legend(doc, x, y, names):
    """One swatch per model family among names, in rows from (x, y) down."""
    cx = x
    for fam, w in _legend_items(names):
        if cx + w > doc.width and cx > x:
            cx, y = x, y + 18
        doc.rect(cx, y - 9, 12, 12, fill=PALETTE[fam])
        doc.text(cx + 16, y + 1, FAMILY_LABELS[fam], 11)
        cx += w


def esc(text):
    return (str(text).replace("&", "&amp;").replace("<", "&lt;")
            .replace(">", "&gt;").replace('"', "&quot;"))


def _attrs(attrs):
    return "".join(f' {k.rstrip("_").replace("_", "-")}="{esc(v)}"'
                   for k, v in attrs.items() if v is not None)


class Svg:
    def __init__(self, width, height, title):
        self.width, self.height, self.parts = width, height, []
        self.parts.append(f"<title>{esc(title)}</title>")
        self.rect(0, 0, width, height, fill="#ffffff")

    def add(self, tag, text=None, **attrs):
        if text is None:
            self.parts.append(f"<{tag}{_attrs(attrs)}/>")
        else:
            self.parts.append(f"<{tag}{_attrs(attrs)}>{esc(text)}</{tag}>")

    def rect(self, x, y, w, h, **attrs):
        self.add("rect", x=f"{x:.1f}", y=f"{y:.1f}", width=f"{max(w, 0):.1f}",
                 height=f"{h:.1f}", **attrs)

    def line(self, x1, y1, x2, y2, stroke="#000", **attrs):
        self.add("line", x1=f"{x1:.1f}", y1=f"{y1:.1f}", x2=f"{x2:.1f}", y2=f"{y2:.1f}",
                 stroke=stroke, **attrs)

    def circle(self, x, y, r, **attrs):
        self.add("circle", cx=f"{x:.1f}", cy=f"{y:.1f}", r=f"{r:.1f}", **attrs)

    def polygon(self, points, **attrs):
        self.add("polygon", points=" ".join(f"{x:.1f},{y:.1f}" for x, y in points), **attrs)

    def polyline(self, points, stroke="#000", dash=None, tooltip=None):
        if tooltip:
            self.parts.append(f'<g><title>{esc(tooltip)}</title>')
        self.add("polyline", points=" ".join(f"{x:.1f},{y:.1f}" for x, y in points),
                 fill="none", stroke=stroke, stroke_width=2, stroke_dasharray=dash)
        if tooltip:
            self.parts.append("</g>")

    def marker(self, shape, x, y, fill, r=4, tooltip=None):
        """A point of a line chart: circle, square, diamond or triangle, centred on (x, y)."""
        if tooltip:
            self.parts.append(f'<g><title>{esc(tooltip)}</title>')
        if shape == "circle":
            self.circle(x, y, r, fill=fill)
        elif shape == "square":
            self.rect(x - r, y - r, 2 * r, 2 * r, fill=fill)
        elif shape == "diamond":
            self.polygon([(x, y - r - 1), (x + r + 1, y), (x, y + r + 1), (x - r - 1, y)], fill=fill)
        else:
            self.polygon([(x, y - r - 1), (x + r + 1, y + r), (x - r - 1, y + r)], fill=fill)
        if tooltip:
            self.parts.append("</g>")

    def text(self, x, y, text, size=12, anchor="start", weight=None, fill="#222",
             style=None, tooltip=None, transform=None):
        css = FONT + (";" + style if style else "")
        if tooltip:
            self.parts.append(f'<g><title>{esc(tooltip)}</title>')
        self.add("text", text, x=f"{x:.1f}", y=f"{y:.1f}", font_size=size,
                 text_anchor=anchor, font_weight=weight, fill=fill, style=css,
                 transform=transform)
        if tooltip:
            self.parts.append("</g>")

    def render(self):
        return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{self.width}" '
                f'height="{self.height}" viewBox="0 0 {self.width} {self.height}">\n'
                + "\n".join(self.parts) + "\n</svg>\n")

    def save(self, path):
        with open(path, "w", encoding="utf-8") as f:
            f.write(self.render())


def nice_ticks(top, count=4):
    """Round tick values from 0 to at least top: 0, 20k, 40k, ..."""
    if top <= 0:
        return [0, 1]
    raw = top / count
    magnitude = 10 ** (len(str(int(raw))) - 1) if raw >= 1 else 1
    for step in (1, 2, 2.5, 5, 10):
        if raw <= step * magnitude:
            step *= magnitude
            break
    ticks, value = [], 0
    while value < top + step * 0.999:
        ticks.append(value)
        value += step
    return ticks


def short_number(value):
    """89182 -> '89.2k', 1200000 -> '1.2M', 950 -> '950', 0 -> '0'."""
    if value >= 1e6:
        return f"{value / 1e6:.1f}M"
    if value >= 1e5:
        return f"{value / 1e3:.0f}k"
    if value >= 1e3:
        return f"{value / 1e3:.1f}k".replace(".0k", "k")
    return f"{value:g}" if value == int(value) else f"{value:.1f}"
