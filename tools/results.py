"""results.py: read the JSON that tools/measure writes, for tools/report and tools/targets.

A cell is one server under one load: its runs as measured, summarised here by
their medians. What a figure means (how CPU per echo is computed, which side
set the pace) is decided once, here, so the report and the checker agree.
"""
import json
import statistics

FORMAT = 1

# Which side set the pace of a timed run. tools/loadgen reports wait_share, the share of the
# run it spent waiting for the server (polls that found nothing, when it spins). Below
# LOADGEN_BOUND it was nearly always busy itself: it may have set the pace (marked †).
# At SERVER_BOUND or more of its CPUs, the server was the busy side.
LOADGEN_BOUND = 0.10
SERVER_BOUND = 0.90
OLD_LOADGEN_BUSY = 0.90         # before wait_share: loadgen's own CPU share (kept for old files)


class ResultsError(Exception):
    pass


def load(path):
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except OSError as e:
        raise ResultsError(f"cannot read {path}: {e.strerror}")
    except ValueError as e:
        raise ResultsError(f"{path} is not JSON: {e}")
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ResultsError(f"{path} is not a results file of format {FORMAT} (from tools/measure)")
    return Results(doc)


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


class Load:
    def __init__(self, d):
        self.key, self.label, self.kind = d["key"], d["label"], d["kind"]
        self.conns, self.size, self.idle_extra = d["connections"], d["size"], d["idle_extra"]
        self.only, self.argv = d.get("only"), d.get("loadgen_argv")


class Cell:
    """One server under one load: the medians of its runs, or why it has none."""

    def __init__(self, d, load, server_cpus):
        self.load, self.mark, self.runs = load, d.get("mark"), d.get("runs") or []
        self.strace = d.get("strace")
        self.ok = False
        if self.mark:
            return
        failed = [r["failed"] for r in self.runs if r.get("failed")]
        if failed or not self.runs:
            self.mark = "failed: " + (failed[0] if failed else "not run")
            if len(failed) < len(self.runs):
                self.mark += f" ({len(failed)} of {len(self.runs)} runs)"
            return
        self.ok = True
        med = lambda f: median(f(r) for r in self.runs)  # noqa: E731
        self.cpu, self.mem_kib = med(lambda r: r["server_cpu_s"]), med(lambda r: r["mem_kib"])
        self.threads = max(r["threads"] for r in self.runs)
        self.procs = max(r["procs"] for r in self.runs)
        if load.kind == "idle":
            self.kib_per_conn = max(self.mem_kib - med(lambda r: r["base_kib"]), 0) / load.conns
            self.idle_cpu = med(lambda r: r.get("idle_cpu", 0.0))
            return
        lg = lambda key: med(lambda r: r["loadgen"].get(key))  # noqa: E731
        self.rps, self.p50, self.p99 = lg("rps"), lg("p50_us"), lg("p99_us")
        self.cpu_per_echo = med(lambda r: cpu_per_echo(r))
        self.windowed = all(r.get("window") for r in self.runs)
        self.server_busy = med(lambda r: server_busy(r, server_cpus))
        self.wait_share = lg("wait_share")
        self.loadgen_busy = med(lambda r: r["loadgen_cpu_s"] / max(r["loadgen"]["seconds"], 0.01))
        self.fair = None
        if all("jain" in r["loadgen"] for r in self.runs):
            self.fair = {k: lg(k) for k in ("echoes_min", "echoes_median", "echoes_max", "jain")}

    @property
    def pace(self):
        """'loadgen' (it may have set the pace: †), 'server', 'both' (each busy on its own CPU),
        or 'neither' (the round trip)."""
        if not self.ok or self.load.kind == "idle":
            return None
        if self.wait_share is None:
            return "loadgen" if self.loadgen_busy >= OLD_LOADGEN_BUSY else "server"
        server_busy = self.server_busy is not None and self.server_busy >= SERVER_BOUND
        if self.wait_share < LOADGEN_BOUND:
            # Both busy, each on its own CPU: the machine set the pace. Not a †: a client that
            # checks nothing (tools/floor) is no faster against these servers (README).
            return "both" if server_busy else "loadgen"
        if server_busy:
            return "server"
        return "neither"

    @property
    def dagger(self):
        return self.pace == "loadgen"

    @property
    def syscalls(self):
        return self.strace.get("per_echo") if isinstance(self.strace, dict) else None


def cpu_per_echo(run):
    """Server CPU µs per echo: over the steady window when there is one (the sweep), else
    over the whole run (connects and closes included, as they are for every server)."""
    window = run.get("window")
    if window:
        return window["server_cpu_s"] / max(run["loadgen"]["rps"] * window["seconds"], 1) * 1e6
    return run["server_cpu_s"] / max(run["loadgen"]["requests"], 1) * 1e6


def server_busy(run, server_cpus):
    """The server's CPU time as a share of the CPUs it was pinned to, over the timed run."""
    window = run.get("window")
    if window:
        cpu, seconds = window["server_cpu_s"], window["seconds"]
    else:
        cpu, seconds = run["server_cpu_s"], run["loadgen"]["seconds"]
    return cpu / max(seconds, 0.01) / server_cpus


class Results:
    def __init__(self, doc):
        self.doc = doc
        self.loads = [Load(d) for d in doc["loads"]]
        self.servers = [s["name"] for s in doc["servers"]]
        self.server_info = {s["name"]: s for s in doc["servers"]}
        cpus = doc["pinning"].get("server_cpus")
        self.server_cpus = len(cpus.split(",")) if cpus else (doc["machine"]["cores"] or 1)
        self.cells = {name: {l.key: Cell(doc["cells"][name][l.key], l, self.server_cpus)
                             for l in self.loads} for name in self.servers}

    def kind(self, kind):
        return [l for l in self.loads if l.kind == kind]

    def sweep(self):
        """The sweep's loads, in order of idle connections (05-select's own point included)."""
        return sorted(self.kind("sweep"), key=lambda l: l.idle_extra)

    def find(self, prefix):
        for name in self.servers:
            if name.startswith(prefix):
                return name
        return None

    def cell(self, name, key):
        """The cell if it has numbers, else None."""
        if name not in self.cells or key not in self.cells[name]:
            return None
        c = self.cells[name][key]
        return c if c.ok else None

    def growth(self, name):
        """(idle at the last point measured, CPU per echo there ÷ at 0 idle), or None."""
        base = self.cell(name, "sweep0")
        points = [(l.idle_extra, self.cell(name, l.key)) for l in self.sweep() if l.idle_extra]
        points = [(n, c) for n, c in points if c and c.windowed]
        if not base or not base.windowed or not points or base.cpu_per_echo <= 0:
            return None
        n, c = points[-1]
        return n, c.cpu_per_echo / base.cpu_per_echo
