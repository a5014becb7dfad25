#!/usr/bin/env python3
"""The docs' own checks, run by tests/docs.bats (standard library only).

    doccheck.py cc       the one-line cc commands of every README: "DIR<TAB>COMMAND"
    doccheck.py links    every relative link in the Markdown that does not resolve
    doccheck.py refs     every file or project name a comment or a README points at
                         that does not exist

A README's cc command is the first line starting with "cc " in a ```sh block
and its continuation lines (ending in a backslash), run from the README's folder.
"""
import glob
import os
import re
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


def main():
    what = sys.argv[1] if len(sys.argv) > 1 else ""
    if what == "cc":
        for folder, command in cc_commands():
            print(f"{folder}\t{command}")
        return 0
    if what in ("links", "refs"):
        bad = links() if what == "links" else refs()
        for line in sorted(bad):
            print(line)
        return 1 if bad else 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
