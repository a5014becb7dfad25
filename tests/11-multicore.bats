#!/usr/bin/env bats
# Chapter 11's claims: N event loops on N threads share the load, in both
# balance modes (SO_REUSEPORT listeners, or one acceptor handing sockets out);
# a signal stops every loop cleanly; -v says which thread did what; and a
# blocking job on the work thread stalls nobody.

load helpers
load readiness

CH=11-multicore

# The per-thread counts at the end of the summary line, space-separated.
per_thread() {
    sed -n 's/^server: served .* (per thread: \([0-9 ]*\))$/\1/p' "$SERVER_ERR"
}

# wait_until expands its arguments once, so a count to wait on goes in a
# function that reads it afresh on every try.
has_threads() {
    [ "$(thread_count "$SERVER_PID")" -eq "$1" ]
}
trace_count_is() {      # PATTERN N: the trace has exactly N lines matching PATTERN
    [ "$(grep -c -- "$1" "$SERVER_ERR")" -eq "$2" ]
}
trace_count_over() {    # PATTERN N: more than N
    [ "$(grep -c -- "$1" "$SERVER_ERR")" -gt "$2" ]
}

# lines_without_thread_tag: trace lines (all but the summary) that do not end
# with " thread=N".
lines_without_thread_tag() {
    grep -v '^server: ' "$SERVER_ERR" | grep -Evc ' thread=[0-9]+$'
}

# 400 connections on --threads 4: each thread serves some (the summary's
# per-thread counts), and the -v trace shows reads on all four loops.
spread_over_four() {
    start_server "$CH" --threads 4 "$@" -v
    wait_until 5 has_threads 5           # main + 4 loops
    run "$LOADGEN" --port "$PORT" --idle --connections 400 --timeout 30
    echo "$output"
    [ "$status" -eq 0 ]
    [[ "$output" == *"opened=400 echoed=400 errors=0"* ]]
    stop_server
    grep -Eq '^server: served 400 connections, echoed [0-9]+ bytes \(per thread:( [0-9]+){4}\)$' "$SERVER_ERR"
    COUNTS=($(per_thread))
    echo "per thread: ${COUNTS[*]}"
    local i
    for i in 0 1 2 3; do
        (( COUNTS[i] > 0 ))
    done
    for i in 1 2 3 4; do
        grep -Eq "^[0-9]+ read fd=[0-9]+ n=[0-9]+ thread=$i\$" "$SERVER_ERR"
    done
    [ "$(lines_without_thread_tag)" -eq 0 ]
}

@test "11: --threads 4, 400 connections: every thread gets some (reuseport, the kernel spreads them)" {
    spread_over_four
    # each socket accepts for itself: the accepts, too, are spread
    local i
    for i in 1 2 3 4; do
        grep -Eq "^[0-9]+ accept fd=[0-9]+ peer=127\.0\.0\.1:[0-9]+ thread=$i\$" "$SERVER_ERR"
    done
}

@test "11: --threads 4, 400 connections: every thread gets exactly 100 (acceptor, round robin)" {
    spread_over_four --balance acceptor
    [ "${COUNTS[*]}" = "100 100 100 100" ]
    # one thread accepts (the main one, thread 0) and hands each socket on
    [ "$(grep -Ec '^[0-9]+ accept fd=[0-9]+ peer=[^ ]+ thread=0$' "$SERVER_ERR")" -eq 400 ]
    [ "$(grep -Ec '^[0-9]+ handoff fd=[0-9]+ to=[1-4] thread=0$' "$SERVER_ERR")" -eq 400 ]
}

# The acceptor's round robin (roundrobin.h), as C unit tests: a server would
# need 2^31 hand-offs to reach the overflow of the old `next++ % count` on
# an int, so these start the turn there (and where an unsigned would wrap).
TEST_ROUNDROBIN="$ROOT/chapters/11-multicore/test_roundrobin"
unit() { unit_case "$TEST_ROUNDROBIN" "$1"; }

@test "11: the worker threads block SIGINT and SIGTERM (SigBlk in /proc); the main thread, whose loop stops, does not" {
    for balance in reuseport acceptor; do
        start_server 11-multicore --threads 3 --balance "$balance"
        local task tid mask others=0
        for task in /proc/"$SERVER_PID"/task/*; do
            tid=${task##*/}
            mask=$(blocked_stop_signals "$SERVER_PID" "$tid")
            echo "$balance: thread $tid blocks $mask"
            if [[ "$tid" == "$SERVER_PID" ]]; then
                [ "$mask" = 0x0 ]
            else
                [ "$mask" = 0x4002 ]
                others=$(( others + 1 ))
            fi
        done
        [ "$others" -eq $(( 3 + $(sanitizer_threads "$SERVER_PID") )) ]
        stop_server
    done
}

@test "11 round robin: workers take turns, 0 to N-1 and back to 0" { unit in-turn; }
@test "11 round robin: still in turn and in range past INT_MAX hand-offs (no signed overflow)" { unit past-int-max; }
@test "11 round robin: still in turn past UINT_MAX hand-offs (no worker gets two in a row)" { unit past-uint-max; }
@test "11 round robin: the turn stays below the worker count, so it cannot overflow" { unit turn-stays-below-count; }

@test "11: by default, one loop per online CPU" {
    start_server "$CH"
    wait_until 5 has_threads $(( $(getconf _NPROCESSORS_ONLN) + 1 ))
    stop_server
    [ "$(per_thread | wc -w)" -eq "$(getconf _NPROCESSORS_ONLN)" ]
}

# SIGTERM while every thread holds open connections: each loop closes its own
# (the "stop clients=N" lines), all threads are joined, exit 0; under
# SANITIZE=1 a leak (a socket lost between two threads, say) fails it too.
stop_with_connections_everywhere() {
    start_server "$CH" --threads 4 "$@" -v
    "$LOADGEN" --port "$PORT" --idle --connections 200 --hold 60 --timeout 30 \
        >"$BATS_TEST_TMPDIR/idle.out" 2>&1 3>&- &
    BACKGROUND_PIDS+=($!)
    wait_until 30 grep -q '^connected=200$' "$BATS_TEST_TMPDIR/idle.out"
    wait_until 10 trace_count_is ' accept fd=' 200
    stop_server TERM
    grep -Eq '^server: served 200 connections, echoed 0 bytes \(per thread:( [0-9]+){4}\)$' "$SERVER_ERR"
    local i open total=0
    for i in 1 2 3 4; do
        open=$(sed -n "s/^[0-9]* stop clients=\([0-9]*\) jobs=0 thread=$i\$/\1/p" "$SERVER_ERR")
        echo "thread $i had ${open:-?} open at the stop"
        (( open > 0 ))
        total=$(( total + open ))
    done
    [ "$total" -eq 200 ]
    [ "$(grep -c ' close fd=' "$SERVER_ERR")" -eq 200 ]
}

@test "11: SIGTERM with connections open on every thread: all closed, exit 0 (reuseport)" {
    stop_with_connections_everywhere
}

@test "11: SIGTERM with connections open on every thread: all closed, exit 0 (acceptor)" {
    stop_with_connections_everywhere --balance acceptor
}

@test "11: SIGTERM in the middle of a flood of handoffs: no socket is lost (acceptor)" {
    start_server "$CH" --threads 4 --balance acceptor -v
    "$LOADGEN" --port "$PORT" --idle --connections 900 --hold 60 --timeout 30 \
        >"$BATS_TEST_TMPDIR/idle.out" 2>&1 3>&- &
    BACKGROUND_PIDS+=($!)
    wait_until 10 trace_count_over ' handoff fd=' 100
    stop_server TERM                    # accepts and handoffs are still under way
    # every socket handed off was adopted, then closed by its worker's stop
    local handed closed
    handed=$(grep -c ' handoff fd=' "$SERVER_ERR")
    closed=$(grep -c ' close fd=' "$SERVER_ERR")
    echo "handed off ${handed}, closed ${closed}"
    [ "$handed" -eq "$closed" ]
    grep -Eq "^server: served ${handed} connections" "$SERVER_ERR"
}

ten_thousand_spread() {
    ten_thousand_connections "$CH" --threads 4 "$@"
    local counts=($(per_thread)) i
    echo "per thread: ${counts[*]}"
    [ "${#counts[@]}" -eq 4 ]
    for i in 0 1 2 3; do
        (( counts[i] > 1000 ))
    done
}

@test "11: 10,000 idle connections spread over 4 threads all echo (reuseport)" {
    ten_thousand_spread
}

@test "11: 10,000 idle connections spread over 4 threads all echo (acceptor)" {
    ten_thousand_spread --balance acceptor
}

@test "11: a client that sends 64 MiB and never reads stalls nobody, and memory stays bounded" {
    never_reader_is_bounded "$CH" --threads 2
}

@test "11: out of descriptors (limit 64, 200 clients) it neither dies nor spins (reuseport)" {
    survives_emfile 50 "$CH" --threads 2
}

@test "11: out of descriptors (limit 64, 200 clients) it neither dies nor spins (acceptor)" {
    survives_emfile 50 "$CH" --threads 2 --balance acceptor
}

now_ms() {
    echo $(( $(date +%s%N) / 1000000 ))
}

@test "11: --work-thread: a blocking job stalls nobody, not even a client of the same loop" {
    start_server "$CH" --threads 1 --work-thread -v
    wait_until 5 has_threads 3          # main, the loop, the work thread
    local a b reply sent
    open_conn a
    open_conn b
    sent=$(now_ms)
    printf '/sleep 2000\n' >&"$a"
    printf 'after\n' >&"$a"             # must not overtake the job's echo
    wait_until 5 grep -Eq '^[0-9]+ job fd=[0-9]+ ms=2000 thread=1$' "$SERVER_ERR"
    # The only loop is free: b is echoed while a's job runs (a's echo is not
    # there yet, just after), not after it.
    echo_once "$b" "b is not kept waiting" 1
    run bash -c "IFS= read -r -t 0.2 reply <&$a"
    [ "$status" -gt 128 ]               # a's echo is not there yet
    IFS= read -r -t 5 reply <&"$a"
    [ "$reply" = "/sleep 2000" ]
    echo "a's echo after $(( $(now_ms) - sent )) ms"
    (( $(now_ms) - sent >= 1900 ))      # it did wait for the job
    IFS= read -r -t 5 reply <&"$a"
    [ "$reply" = "after" ]
    grep -Eq '^[0-9]+ done fd=[0-9]+ ms=2000 thread=1$' "$SERVER_ERR"
    close_conn "$a"; close_conn "$b"
    stop_server
}

@test "11: --work-thread: SIGTERM with a 10 s job running exits 0 at once, job freed" {
    start_server "$CH" --threads 2 --work-thread -v
    local a started
    open_conn a
    printf '/sleep 10000\n' >&"$a"
    wait_until 5 grep -q ' job fd=' "$SERVER_ERR"
    started=$(now_ms)
    stop_server TERM
    echo "stopped in $(( $(now_ms) - started )) ms"
    (( $(now_ms) - started < 1500 ))
    grep -Eq '^[0-9]+ stop clients=1 jobs=1 thread=[12]$' "$SERVER_ERR"
    close_conn "$a"
}

@test "11: without --work-thread, '/sleep' is only bytes: echoed at once" {
    start_server "$CH" --threads 1
    local a
    open_conn a
    echo_once "$a" "/sleep 3000" 1
    close_conn "$a"
    stop_server
}

@test "11: bad --threads and --balance exit 2 naming the value" {
    local server="$ROOT/chapters/$CH/server"
    run "$server" --threads 0
    [ "$status" -eq 2 ]
    [[ "$output" == *"'0'"*"--threads"* ]]
    [ "${#lines[@]}" -eq 1 ]
    run "$server" --threads 257
    [ "$status" -eq 2 ]
    run "$server" --balance foo
    [ "$status" -eq 2 ]
    [[ "$output" == *"'foo'"*"--balance"*"expected reuseport or acceptor"* ]]
    [ "${#lines[@]}" -eq 1 ]
    run "$server" --balance=round-robin
    [ "$status" -eq 2 ]
    [[ "$output" == *"round-robin"* ]]
    run "$server" --balance
    [ "$status" -eq 2 ]
    run "$server" --help
    [ "$status" -eq 0 ]
    [[ "$output" == *"--balance MODE"* ]]
}
