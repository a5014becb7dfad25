#!/usr/bin/env bats
# tools/timeline's Chrome trace-event export (--chrome): the JSON that Perfetto
# and chrome://tracing open. The SVG it draws is checked in compare.bats.

load helpers

setup() {
    command -v python3 >/dev/null 2>&1 || skip "python3 is not installed (tools/timeline needs it)"
}

# chrome_check FILE PYTHON: run PYTHON with `ev` = the trace's events, `tracks` =
# {(pid, tid): name}, and `on(name)` = the events on the track of that name.
chrome_check() {
    python3 - "$1" <<EOF_PY
import json, sys
doc = json.load(open(sys.argv[1]))
ev = doc["traceEvents"]
procs = {e["pid"]: e["args"]["name"] for e in ev if e["ph"] == "M" and e["name"] == "process_name"}
tracks = {(e["pid"], e["tid"]): e["args"]["name"] for e in ev
          if e["ph"] == "M" and e["name"] == "thread_name"}
def on(prefix):
    keys = [k for k, v in tracks.items() if v.startswith(prefix)]
    return [e for e in ev if e["ph"] != "M" and (e["pid"], e["tid"]) in keys]
$2
EOF_PY
}

@test "timeline --chrome: a track per connection with its accept, reads, writes and close" {
    run timeout 60 "$TOOLS/timeline" 08 --out "$BATS_TEST_TMPDIR/t.svg" \
        --chrome "$BATS_TEST_TMPDIR/t.json"
    echo "$output"
    [ "$status" -eq 0 ]
    chrome_check "$BATS_TEST_TMPDIR/t.json" '
assert any(name.startswith("server 08-event-loop") for name in procs.values()), procs
assert all(e["ts"] >= 0 for e in ev if "ts" in e), "a time before the first line"
for n in (1, 2, 3):
    mine = on(f"connection of client {n} ")
    what = [e["name"] for e in mine]
    # the three clients each send two lines: the server reads and writes each one
    assert what.count("accept") == 1 and what.count("close") == 1, (n, what)
    assert what.count("read") >= 2 and what.count("write") >= 2, (n, what)
    span = [e for e in mine if e["ph"] == "X"]
    assert len(span) == 1 and span[0]["dur"] > 0, span
    client = on(f"client {n} ")
    assert [e["name"] for e in client if e["ph"] == "X"] == ["waiting for the echo"] * 2, client
assert on("loop"), "no loop track: the server lines of no connection are missing"
'
}

@test "timeline --chrome: chapter 11 has a loop track per thread" {
    run timeout 60 "$TOOLS/timeline" 11 --out "$BATS_TEST_TMPDIR/t.svg" \
        --chrome "$BATS_TEST_TMPDIR/t.json"
    echo "$output"
    [ "$status" -eq 0 ]
    chrome_check "$BATS_TEST_TMPDIR/t.json" '
loops = sorted(v for v in tracks.values() if v.startswith("loop of thread "))
assert len(loops) >= 2, loops
'
}
