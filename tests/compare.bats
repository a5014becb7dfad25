#!/usr/bin/env bats
# tools/compare and tools/timeline: they run, finish in bounded time, and
# write what docs/ links to (a results table, well-formed SVG). Both tools are
# Python 3 scripts; without python3 these tests skip (nothing else needs it).
# The measurements themselves are not checked here: numbers vary by machine.

load helpers

setup() {
    command -v python3 >/dev/null 2>&1 || skip "python3 is not installed (tools/compare needs it)"
    OUT="$BATS_TEST_TMPDIR/out"
    mkdir -p "$OUT"
}

# well_formed_svg FILE: the file is XML with an <svg> root.
well_formed_svg() {
    [[ -s "$1" ]] || { echo "missing or empty: $1" >&2; return 1; }
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import sys, xml.etree.ElementTree as E
root = E.parse(sys.argv[1]).getroot()
sys.exit(0 if root.tag == "{http://www.w3.org/2000/svg}svg" else 1)' "$1"
    else
        grep -q '<svg xmlns="http://www.w3.org/2000/svg"' "$1" && grep -q '</svg>' "$1"
    fi
}

@test "compare: a small run writes a results table, marked entries and well-formed charts" {
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
}

@test "compare: an unknown load is a usage error, at once" {
    run timeout 10 "$TOOLS/compare" --loads 1x64,everything --out "$OUT/results.md"
    [ "$status" -eq 2 ]
    [[ "$output" == *"unknown load everything"* ]]
    [ ! -e "$OUT/results.md" ]
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
