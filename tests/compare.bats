#!/usr/bin/env bats
# tools/compare (tools/measure, tools/report, tools/targets) and tools/timeline:
# they run, finish in bounded time, and write what docs/ links to (a results
# table, its JSON, well-formed SVG). The tools are Python 3 scripts; without
# python3 these tests skip (nothing else needs it). Measured numbers are never
# checked here (they vary by machine); the report's arithmetic is, on a small
# hand-made results file (tests/compare-fixture.json).

load helpers

FIXTURE="$BATS_TEST_DIRNAME/compare-fixture.json"

setup() {
    command -v python3 >/dev/null 2>&1 || skip "python3 is not installed (tools/compare needs it)"
    OUT="$BATS_TEST_TMPDIR/out"
    mkdir -p "$OUT"
}

# well_formed_svg FILE: the file is XML with an <svg> root.
well_formed_svg() {
    [[ -s "$1" ]] || { echo "missing or empty: $1" >&2; return 1; }
    python3 -c 'import sys, xml.etree.ElementTree as E
root = E.parse(sys.argv[1]).getroot()
sys.exit(0 if root.tag == "{http://www.w3.org/2000/svg}svg" else 1)' "$1"
}

# json_query FILE EXPR: print a Python expression over the parsed file (as d).
json_query() {
    python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}

@test "compare: a small run writes a results table, its JSON, marked entries and well-formed charts" {
    run timeout 150 "$TOOLS/compare" --quick --only 01,07,asyncio --loads 1x64,100x64,idle \
        --idle-connections 50 --out "$OUT/results.md"
    echo "$output"
    [ "$status" -eq 0 ]
    [ -s "$OUT/results.md" ]
    # The summary table: a header naming the loads, one row per server.
    grep -q '^| server | 1 × 64 B | 100 × 64 B | 50 idle: MiB |$' "$OUT/results.md"
    grep -Eq '^\| 07-epoll \| [0-9][0-9,]* (†)? ?\| [0-9][0-9,]* (†)? ?\| [0-9.]+ \|$' "$OUT/results.md"
    grep -Eq '^\| asyncio \| ' "$OUT/results.md"
    # 01 serves one client at a time: its 100-connection entry is marked, with the reason.
    grep -Eq '^\| 01-blocking \| [0-9][0-9,]* \| n/a<sup>a</sup> \|' "$OUT/results.md"
    grep -q 'serves one client at a time' "$OUT/results.md"
    grep -q '\*\*Machine:\*\* ' "$OUT/results.md"
    for chart in compare-rps.svg compare-cpu.svg compare-idle-memory.svg; do
        grep -q "($chart)" "$OUT/results.md"
        well_formed_svg "$OUT/$chart"
    done
    # The raw results beside it: every run, with what it ran on and the command it ran.
    [ "$(json_query "$OUT/results.json" 'len(d["cells"]["07-epoll"]["100x64"]["runs"])')" -eq 1 ]
    json_query "$OUT/results.json" 'd["cells"]["07-epoll"]["100x64"]["runs"][0]["loadgen_argv"]' |
        grep -q "'tools/loadgen', '--port', '[0-9]*', '--connections', '100'"
    [ "$(json_query "$OUT/results.json" 'd["machine"]["kernel"] != "" and d["machine"]["python"] != ""')" = True ]
    [ "$(json_query "$OUT/results.json" 'len(d["git"]["commit"] or "")')" -eq 40 ]
    # The targets are checked on the terminal, not written into the report.
    [ "$(grep -c '^## Targets' "$OUT/results.md")" -eq 0 ]
    [[ "$output" == *"targets: "*" met"* ]]
}

@test "compare: the idle sweep and the fairness counts, in a short run" {
    # 05-select cannot hold 1,000 idle beside 100 active (FD_SETSIZE): it gets its own point.
    # 2 s runs: the CPU window (from when the server holds every connection, for half the run)
    # then has a second of margin on a busy machine.
    run timeout 100 "$TOOLS/compare" --quick --only 05,07 --loads 100x64,sweep --sweep 0,1000 \
        --duration 2 --no-strace --out "$OUT/results.md"
    echo "$output"
    [ "$status" -eq 0 ]
    json_query "$OUT/results.json" 'd["cells"]["07-epoll"]["sweep1000"]["runs"][0]["loadgen_argv"]' |
        grep -q "'--idle-extra', '1000'"
    [ "$(json_query "$OUT/results.json" 'd["cells"]["07-epoll"]["sweep1000"]["runs"][0]["loadgen"]["idle_extra"]')" -eq 1000 ]
    [ "$(json_query "$OUT/results.json" 'd["cells"]["05-select"]["sweep900"]["runs"][0]["loadgen"]["idle_extra"]')" -eq 900 ]
    # The sweep's table: 07 has both points; 05's 1,000 is marked with the reason.
    grep -q '^| server | 0 idle | 1,000 idle | growth, 0 to most idle |$' "$OUT/results.md"
    grep -Eq '^\| 07-epoll \| [0-9.]+ \| [0-9.]+ \| [0-9.]+× \|$' "$OUT/results.md"
    grep -Eq '^\| 05-select \| [0-9.]+ \| n/a<sup>[a-z]</sup> \| [0-9.]+× \(at 900\) \|$' "$OUT/results.md"
    grep -q 'FD_SETSIZE (1024), by design' "$OUT/results.md"
    grep -Eq '^- 07-epoll: [0-9.]+× the CPU per echo at 1,000 idle as at 0\.$' "$OUT/results.md"
    grep -Eq '^- 05-select: [0-9.]+× the CPU per echo at 900 idle as at 0\.$' "$OUT/results.md"
    grep -q '(compare-idle-sweep.svg)' "$OUT/results.md"
    well_formed_svg "$OUT/compare-idle-sweep.svg"
    # Fairness at 100 connections: min / median / max echoes per connection and Jain's index.
    grep -q "| echoes per connection min / median / max | Jain's index |$" "$OUT/results.md"
    grep -Eq '^\| 07-epoll \| [0-9,]+( †)? \|.* [0-9,]+ / [0-9,]+ / [0-9,]+ \| [01]\.[0-9]{4} \|$' "$OUT/results.md"
    # Which side set the pace, from loadgen's wait_share.
    grep -Eq '^\| 07-epoll \| [0-9,]+( †)? \|.*\| (server|loadgen †|both|neither) \|' "$OUT/results.md"
}

@test "compare: an unknown load is a usage error, at once" {
    run timeout 10 "$TOOLS/compare" --loads 1x64,everything --out "$OUT/results.md"
    [ "$status" -eq 2 ]
    [[ "$output" == *"unknown load everything"* ]]
    [ ! -e "$OUT/results.md" ]
    [ ! -e "$OUT/results.json" ]
}

@test "report: the idle sweep, its chart, the fairness columns and the growth, from a results file" {
    run timeout 30 "$TOOLS/report" "$FIXTURE" --out "$OUT/results.md"
    echo "$output"
    [ "$status" -eq 0 ]
    grep -q '^| server | 0 idle | 1,000 idle | 10,000 idle | growth, 0 to most idle |$' "$OUT/results.md"
    grep -q '^| 06-poll | 5.0 | 9.6 | 45.5 | 9.1× |$' "$OUT/results.md"
    grep -q '^| 07-epoll | 4.0 | 4.1 | 4.4 | 1.1× |$' "$OUT/results.md"
    grep -q '^| 05-select | 5.0 | n/a<sup>d</sup> | n/a<sup>d</sup> | 1.8× (at 900) |$' "$OUT/results.md"
    grep -q '^| 06-poll | 148,000 | 90,000 | 21,000 |$' "$OUT/results.md"
    grep -q '^- 06-poll: 9.1× the CPU per echo at 10,000 idle as at 0.$' "$OUT/results.md"
    grep -q '^- 05-select: 1.8× the CPU per echo at 900 idle as at 0.$' "$OUT/results.md"
    grep -q 'beside 100 active connections it can hold at most 900 idle ones' "$OUT/results.md"
    # The chart: one line per server that has two points or more, each labelled.
    well_formed_svg "$OUT/compare-idle-sweep.svg"
    for name in 05-select 06-poll 07-epoll asyncio; do
        grep -q "<g><title>$name</title>" "$OUT/compare-idle-sweep.svg"
    done
    grep -q '06-poll: 45.5 µs at 10,000 idle' "$OUT/compare-idle-sweep.svg"
    # Fairness, and the pace: loadgen waited 5% of the run against 07 at 1,000 connections.
    grep -q '^| 07-epoll | 155,000 † | 3.10× | .* | 84% | 5% | loadgen † | .* | 248 / 310 / 496 | 0.9310 |$' "$OUT/results.md"
    grep -q '^| 06-poll | 140,000 | 2.80× | .* | neither | .* | 266 / 280 / 294 | 0.9962 |$' "$OUT/results.md"
    grep -q 'lowest 07-epoll (0.9310)' "$OUT/results.md"
    [ "$(grep -c '^## Targets' "$OUT/results.md")" -eq 0 ]
}

@test "report: chapter 13's section from tools/compare-redis comes last, and only when it exists" {
    cp "$FIXTURE" "$OUT/results.json"
    run timeout 30 "$TOOLS/report" "$OUT/results.json"
    [ "$status" -eq 0 ]
    ! grep -q 'against a real Redis' "$OUT/results.md"
    printf '## Chapter 13 against a real Redis\n\n| command | ratio |\n|---|---:|\n| GET | 1.01× |\n' \
        > "$OUT/results-redis.md"
    run timeout 30 "$TOOLS/report" "$OUT/results.json"
    [ "$status" -eq 0 ]
    [ "$(grep '^## ' "$OUT/results.md" | tail -1)" = "## Chapter 13 against a real Redis" ]
    [ "$(tail -1 "$OUT/results.md")" = "| GET | 1.01× |" ]
    run timeout 30 "$TOOLS/report" "$OUT/results.json" --redis "$OUT/missing.md"
    [ "$status" -ne 0 ]
}

@test "report --chapters: each chapter README's figures block is rewritten from the results, nothing else" {
    for ch in 07-epoll 05-select 04-nonblocking; do
        mkdir -p "$OUT/root/chapters/$ch"
        printf 'before\n\n<!-- numbers: begin -->\nold figures\n<!-- numbers: end -->\n\nafter\n' \
            > "$OUT/root/chapters/$ch/README.md"
    done
    mkdir -p "$OUT/root/chapters/06-poll"
    printf 'no block here\n' > "$OUT/root/chapters/06-poll/README.md"
    run timeout 30 "$TOOLS/report" "$FIXTURE" --out "$OUT/results.md" --chapters --root "$OUT/root"
    echo "$output"
    [ "$status" -eq 0 ]
    local epoll="$OUT/root/chapters/07-epoll/README.md"
    [ "$(head -1 "$epoll")" = "before" ] && [ "$(tail -1 "$epoll")" = "after" ]
    ! grep -q 'old figures' "$epoll"
    grep -q '^| 100 × 64 B | 160,000 | 2.00× | 625 | 1,250 | 5.0 | 2.2 | 2.0 | 0.9991 |$' "$epoll"
    grep -q '^| 1,000 × 64 B | 155,000 † | 3.10× |' "$epoll"
    grep -q '0, 1,000 and 10,000 idle ones: 4.0 / 4.1 / 4.4 µs (1.1× from 0 to 10,000 idle)' "$epoll"
    grep -q '^† tools/loadgen was waiting' "$epoll"
    grep -q '0 and 900 idle ones: 5.0 / 9.0 µs (1.8× from 0 to 900 idle)' "$OUT/root/chapters/05-select/README.md"
    # A chapter not in the results keeps its block; one without a block is left alone.
    grep -q 'old figures' "$OUT/root/chapters/04-nonblocking/README.md"
    [ "$(cat "$OUT/root/chapters/06-poll/README.md")" = "no block here" ]
}

@test "report: loadgen busy and the server busy too is 'both', not a †: the machine set the pace" {
    # 07 at 1,000 connections: loadgen waited 5% of the run; its server was 84% busy (†).
    # At 95% busy both sides were saturated, each on its own CPU.
    python3 - "$FIXTURE" "$OUT/changed.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
d["cells"]["07-epoll"]["1000x64"]["runs"][0]["server_cpu_s"] = 1.9
json.dump(d, open(sys.argv[2], "w"))
PY
    run timeout 30 "$TOOLS/report" "$OUT/changed.json"
    [ "$status" -eq 0 ]
    grep -q '^| 07-epoll | 155,000 | 3.10× | .* | 95% | 5% | both | ' "$OUT/changed.md"
    run timeout 30 "$TOOLS/report" "$FIXTURE" --out "$OUT/plain.md"
    grep -q '^| 07-epoll | 155,000 † | 3.10× | .* | 84% | 5% | loadgen † | ' "$OUT/plain.md"
}

@test "report: the growth sentence is computed from the runs, not written" {
    # Twice 06's CPU in its 10,000-idle window: the table and the sentence follow.
    python3 - "$FIXTURE" "$OUT/changed.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
d["cells"]["06-poll"]["sweep10000"]["runs"][0]["window"]["server_cpu_s"] *= 2
json.dump(d, open(sys.argv[2], "w"))
PY
    run timeout 30 "$TOOLS/report" "$OUT/changed.json"
    [ "$status" -eq 0 ]
    grep -q '^| 06-poll | 5.0 | 9.6 | 91.0 | 18.2× |$' "$OUT/changed.md"
    grep -q '^- 06-poll: 18.2× the CPU per echo at 10,000 idle as at 0.$' "$OUT/changed.md"
}

@test "report: a sweep point without a steady window is marked, not drawn, not in the growth" {
    # As if asyncio had still been accepting its 10,000 idle connections when the timing ended.
    python3 - "$FIXTURE" "$OUT/late.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
d["cells"]["asyncio"]["sweep10000"]["runs"][0]["window"] = None
json.dump(d, open(sys.argv[2], "w"))
PY
    run timeout 30 "$TOOLS/report" "$OUT/late.json"
    [ "$status" -eq 0 ]
    grep -Eq '^\| asyncio \| 10\.0 \| 10\.4 \| 12\.4<sup>([a-z])</sup> \| 1\.0× \(at 1,000\) \|$' "$OUT/late.md"
    grep -q '^- asyncio: 1.0× the CPU per echo at 1,000 idle as at 0.$' "$OUT/late.md"
    grep -q 'the server did not hold them all while loadgen was still timing' "$OUT/late.md"
    grep -q 'asyncio: 10.4 µs at 1,000 idle' "$OUT/compare-idle-sweep.svg"
    [ "$(grep -c 'asyncio: 12.4 µs at 10,000 idle' "$OUT/compare-idle-sweep.svg")" -eq 0 ]
}

@test "report: a file that is not a results file is refused with one line" {
    echo '{"hello": 1}' > "$OUT/other.json"
    run timeout 30 "$TOOLS/report" "$OUT/other.json"
    [ "$status" -ne 0 ]
    [[ "$output" == *"not a results file"* ]]
    [ ! -e "$OUT/other.md" ]
}

@test "targets: each target met or not met, from a results file" {
    run timeout 30 "$TOOLS/targets" "$FIXTURE"
    echo "$output"
    [ "$status" -eq 0 ]
    # One line each: met / not met, the target, what was measured.
    echo "$output" | grep -Eq '^met +06-poll: CPU per echo grows with idle connections .* 9\.10× at 10,000 idle$'
    echo "$output" | grep -Eq '^not met +05-select: CPU per echo grows with idle connections .* 1\.80× at 900 idle$'
    echo "$output" | grep -Eq '^met +07-epoll: CPU per echo flat with idle connections .* 1\.10× at 10,000 idle$'
    echo "$output" | grep -Eq '^met +07: about 2 syscalls per echo \(100 × 64 B\) +2\.20$'
    echo "$output" | grep -Eq "^not met +06-poll ≤ 1/10 of asyncio's memory, idle +0\.11×$"
    [[ "$output" == *"targets: 9 of 11 met" ]]
    run timeout 30 "$TOOLS/targets" "$OUT/missing.json"
    [ "$status" -eq 2 ]
    [[ "$output" == *"cannot read"* ]]
}

@test "timeline: one lane per client, drawn from the server's trace" {
    run timeout 60 "$TOOLS/timeline" 07 --out "$OUT/timeline.svg"
    echo "$output"
    [ "$status" -eq 0 ]
    well_formed_svg "$OUT/timeline.svg"
    [ "$(grep -Ec '>client [0-9]+</text>' "$OUT/timeline.svg")" -eq 3 ]
    # Every client was accepted, echoed and closed by the server.
    [ "$(grep -c 'accept fd=' "$OUT/timeline.svg")" -eq 3 ]
    [ "$(grep -c 'close fd=' "$OUT/timeline.svg")" -eq 3 ]
}

@test "timeline: 01 makes the second and third clients wait for the ones before" {
    run timeout 60 "$TOOLS/timeline" 01 --out "$OUT/timeline.svg"
    echo "$output"
    [ "$status" -eq 0 ]
    well_formed_svg "$OUT/timeline.svg"
    [ "$(grep -Ec '>client [0-9]+</text>' "$OUT/timeline.svg")" -eq 3 ]
    [ "$(grep -c 'ms to be accepted' "$OUT/timeline.svg")" -eq 2 ]
}

@test "compare-redis: a small run writes a Markdown section: a heading, a table against redis-server, the commands" {
    command -v redis-benchmark >/dev/null 2>&1 ||
        skip "redis-benchmark is not installed (apt-get install redis-tools)"
    [[ -x "$ROOT/chapters/13-redis/server" ]] || skip "chapter 13 is not built here"
    run timeout 200 "$TOOLS/compare-redis" --requests 2000 --repeats 1 --tests get --pipelines 1,16 \
        --clients 10 --out "$OUT/redis.md"
    echo "$output"
    [ "$status" -eq 0 ]
    cat "$OUT/redis.md"
    [ "$(head -1 "$OUT/redis.md")" = "## Chapter 13 against a real Redis" ]
    if command -v redis-server >/dev/null 2>&1; then
        grep -Eq '^\| GET \| 1 \| [0-9,]+ \| [0-9,]+ \| [0-9.]+× \| ' "$OUT/redis.md"
        grep -Eq '^\| GET \| 16 \| [0-9,]+ \| [0-9,]+ \| [0-9.]+× \| ' "$OUT/redis.md"
        grep -q 'What the numbers say' "$OUT/redis.md"
    else
        grep -q 'redis-server is not installed' "$OUT/redis.md"
    fi
    grep -q 'redis-benchmark -p PORT -c 10 -n 2000 -P PIPELINE -t COMMAND' "$OUT/redis.md"
}
