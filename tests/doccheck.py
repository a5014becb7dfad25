#!/usr/bin/env python3
"""The docs' own checks, run by tests/docs.bats (standard library only).

    doccheck.py cc       the one-line cc commands of every README: "DIR<TAB>COMMAND"
    doccheck.py links    every relative link in the Markdown that does not resolve
    doccheck.py refs     every file or project name a comment or a README points at
                         that does not exist
    doccheck.py transcripts
                         run the README blocks marked as runnable, and compare what
                         they print with what the README says they print

A block is marked by an HTML comment just before it, which a reader of the
rendered page does not see:

    <!-- doctest: server [OPTIONS] -->   before a ```sh block: start the README
        folder's ./server --port 0 [OPTIONS] (stderr kept), run each line there
        with 8888 replaced by the server's port (and --port PORT given to a
        client that has none), and compare each line's output
        with its comment ("cmd   # expected"; an annotation after " (" or " —"
        is not part of it). The server keeps running for a trace block.
        needs=PROGRAM among the options: the block is skipped (with a note)
        where PROGRAM is not installed (redis-cli: chapter 13's clients).
    <!-- doctest -->                      the same, without a server.
    <!-- doctest: trace [WORD=A|B] -->    before a ``` block: stop the server,
        then each line of the block must match a line of its stderr, in order
        (other lines may come between); WORD=A|B: where the block says WORD,
        A or B may come (a reset meets whichever of read or write is first;
        B may be a pattern: error=error.*).
Numbers match any number (ports, descriptors, times vary), and "..." matches
anything.

A README's cc command is the first line starting with "cc " in a ```sh block
and its continuation lines (ending in a backslash), run from the README's folder.
"""
import glob
import os
import re
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tracked(*patterns):
    out = subprocess.run(["git", "-C", ROOT, "ls-files", "--", *patterns],
                         capture_output=True, text=True, check=True).stdout
    return [p for p in out.splitlines() if os.path.exists(os.path.join(ROOT, p))]


def markdown_files():
    return tracked("*.md")


def cc_commands():
    for md in markdown_files():
        text = open(os.path.join(ROOT, md), encoding="utf-8").read()
        for block in re.findall(r"^```sh\n(.*?)^```", text, re.S | re.M):
            lines, command = block.splitlines(), None
            for line in lines:
                if command is None and line.startswith("cc "):
                    command = line
                elif command is not None:
                    command += "\n" + line
                if command is not None and not line.rstrip().endswith("\\"):
                    yield os.path.dirname(md) or ".", command.replace("\\\n", " ")
                    command = None


def links():
    bad = []
    for md in markdown_files():
        text = open(os.path.join(ROOT, md), encoding="utf-8").read()
        text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)   # not in code blocks
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            path = os.path.normpath(os.path.join(ROOT, os.path.dirname(md), target.split("#")[0]))
            if not os.path.exists(path):
                bad.append(f"{md}: link to {target}, which does not exist")
    return bad


# A file named in a comment or a README: "loop.c", "common/io.h",
# "tests/conformance.bats". It must exist: as written from the repository's
# root or from the naming file's folder, or as the name of a tracked file.
FILE_NAME = re.compile(r"(?<![\w./-])((?:\.\./|[\w-]+/)*[\w-]+\.(?:c|h|S|bats|bash|md|py))\b")
# A name of this project's in a comment: a function or macro with one of
# its modules' prefixes, or an upper-case constant. It must be defined in
# the code, or (constants) in the system's headers.
OUR_NAME = re.compile(r"(?<![-\w])((?:loop|stream|task|ctx|conn|net|io|cli|trace|contract|ring)_[a-z_]+"
                      r"|[A-Z][A-Z0-9]*_[A-Z0-9_]+)\b")


# A line that speaks of another project names that project's files and names.
ELSEWHERE = re.compile(r"xv6|Redis|libuv|liburing|asyncio|CPython|Linux's|the kernel's", re.I)


def comments(path, text):
    if path.endswith((".c", ".h", ".S")):
        return "\n".join(re.findall(r"/\*.*?\*/|//[^\n]*", text, re.S))
    if path.endswith((".bats", ".bash")) or os.path.basename(path) in ("Makefile", "run") \
            or path.endswith(".mk"):
        return "\n".join(re.findall(r"#[^\n]*", text))
    return text


def refs():
    sources = tracked("*.c", "*.h", "*.S", "*.bats", "*.bash", "*.mk", "*Makefile", "tests/run")
    files = set(tracked())
    basenames = {os.path.basename(p) for p in files}
    code = ""
    for p in sources:
        text = open(os.path.join(ROOT, p), encoding="utf-8").read()
        if p.endswith((".c", ".h", ".S")):
            code += re.sub(r"/\*.*?\*/", "", text, flags=re.S) + "\n"
    system = None
    bad = []
    for p in sources + markdown_files():
        if p.startswith("solutions/"):
            continue            # patches name files that the patch creates
        text = comments(p, open(os.path.join(ROOT, p), encoding="utf-8").read())
        text = "\n".join(line for line in text.splitlines() if not ELSEWHERE.search(line))
        for name in set(FILE_NAME.findall(text)):
            here = os.path.normpath(os.path.join(os.path.dirname(p), name))
            if name.startswith("../shared/"):
                bad.append(f"{p}: names {name}, outside the repository")
            elif "NN" in name:
                continue        # a pattern: tests/NN-name.bats
            elif not (name in files or here in files or os.path.basename(name) in basenames
                      or os.path.exists(os.path.join(ROOT, here))
                      or glob.glob(os.path.join("/usr/include", name))
                      or glob.glob(os.path.join("/usr/include/*", name))):
                bad.append(f"{p}: names {name}, which does not exist")
        if not p.endswith((".c", ".h", ".S")):
            continue
        for name in set(OUR_NAME.findall(text)):
            if name.endswith("_") or re.search(r"\b(\w+_)?%s\b" % re.escape(name), code):
                continue        # a prefix (IORING_FEAT_), or a defined name, maybe shortened
            if name.isupper():  # the system's: EAGAIN, SO_REUSEPORT...
                if system is None:
                    system = subprocess.run(["grep", "-rhoE", r"\b[A-Z][A-Z0-9]*_[A-Z0-9_]+\b",
                                             "/usr/include"], capture_output=True, text=True).stdout
                    system = set(system.split())
                if name in system:
                    continue
            bad.append(f"{p}: a comment names {name}, which is defined nowhere")
    return bad


def loose(expected):
    """A regular expression for expected output: numbers vary, ... is anything."""
    out = ""
    for part in re.split(r"(\d+|\.\.\.|…)", expected.strip()):
        if not part:
            continue
        out += r"\d+" if part.isdigit() else ".*" if part in ("...", "…") else re.escape(part)
    return re.compile(out)


def blocks_with_markers(text):
    """(marker, language, lines) for each marked code block."""
    for m in re.finditer(r"<!-- doctest(?::\s*(.*?))?\s*-->\s*\n```(\w*)\n(.*?)^```", text, re.S | re.M):
        yield (m.group(1) or "").strip(), m.group(2), m.group(3).splitlines()


def transcripts():
    import signal
    import tempfile
    bad, ran = [], 0
    for md in markdown_files():
        folder = os.path.join(ROOT, os.path.dirname(md))
        text = open(os.path.join(ROOT, md), encoding="utf-8").read()
        server, err, port = None, None, None

        def stop():
            nonlocal server
            if server is None:
                return ""
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
                bad.append(f"{md}: the server did not stop within 10 s")
            server = None
            err.seek(0)
            return err.read().decode(errors="replace")

        for marker, lang, lines in blocks_with_markers(text):
            if marker.startswith("trace"):
                log = stop().splitlines()
                # "trace read=read|write": where the README says read, either may come.
                either = [arg.split("=", 1) for arg in marker.split()[1:] if "=" in arg]
                at = 0
                for want in (line for line in lines if line.strip()):
                    pattern = loose(want)
                    for word, choices in either:
                        pattern = re.compile(re.sub(r"\b%s\b" % re.escape(word), "(?:%s)" % choices,
                                                    pattern.pattern))
                    while at < len(log) and not pattern.fullmatch(log[at].strip()):
                        at += 1
                    if at == len(log):
                        bad.append(f"{md}: the server's trace has no line like '{want}' (in order)")
                        break
                    at += 1
                ran += 1
                continue
            stop()
            port = None
            needs = [w.split("=", 1)[1] for w in marker.split() if w.startswith("needs=")]
            marker = " ".join(w for w in marker.split() if not w.startswith("needs="))
            missing = [prog for prog in needs if shutil.which(prog) is None]
            if missing:
                print(f"# {md}: a block skipped: {', '.join(missing)} is not installed")
                continue
            if marker.startswith("server"):
                if not os.access(os.path.join(folder, "server"), os.X_OK):
                    bad.append(f"{md}: {os.path.dirname(md)}/server is not built (make)")
                    continue
                err = tempfile.TemporaryFile()
                server = subprocess.Popen(["./server", "--port", "0", *marker.split()[1:]], cwd=folder,
                                          stdout=subprocess.PIPE, stderr=err)
                first = server.stdout.readline().decode()
                found = re.match(r"listening on .*:(\d+)$", first.strip())
                if not found:
                    bad.append(f"{md}: ./server printed {first!r}, not a listening line")
                    stop()
                    continue
                port = found.group(1)
            for line in lines:
                command, _, comment = line.partition("  #")
                if not command.strip():
                    continue
                if port is not None:
                    command = command.replace("8888", port)
                    # A client that connects to the default port is sent to this one.
                    if "--port" not in command:
                        command = re.sub(r"((?:^|\s)\S*(?:echo-client|loadgen|/client))\b", r"\1 --port " + port,
                                         command, count=1)
                try:
                    result = subprocess.run(["bash", "-c", command], cwd=folder, capture_output=True,
                                            timeout=60)
                    output = (result.stdout + result.stderr).decode(errors="replace").strip()
                except subprocess.TimeoutExpired:
                    bad.append(f"{md}: '{command.strip()}' ran over 60 s")
                    continue
                expected = re.split(r" \(| —", comment.strip(), maxsplit=1)[0].strip()
                if expected and not loose(expected).fullmatch(output):
                    bad.append(f"{md}: '{command.strip()}' printed {output[:200]!r}, the README says {expected!r}")
                ran += 1
        stop()
    return bad, ran


def main():
    what = sys.argv[1] if len(sys.argv) > 1 else ""
    if what == "cc":
        for folder, command in cc_commands():
            print(f"{folder}\t{command}")
        return 0
    if what == "transcripts":
        bad, ran = transcripts()
        for line in bad:
            print(line)
        print(f"{ran} marked blocks and lines checked")
        return 1 if bad or ran == 0 else 0
    if what in ("links", "refs"):
        bad = links() if what == "links" else refs()
        for line in sorted(bad):
            print(line)
        return 1 if bad else 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
