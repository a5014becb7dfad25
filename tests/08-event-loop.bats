#!/usr/bin/env bats
# Chapter 08's claims: the loop module keeps its promises (C unit tests), and
# the server on it adds idle timeouts, --max-conns, EMFILE survival and a
# graceful stop through the loop's signal API.

load helpers
load readiness

TEST_LOOP="$ROOT/chapters/08-event-loop/test_loop"

unit() { unit_case "$TEST_LOOP" "$1"; }

@test "08 loop: timers fire in deadline order, equal deadlines first-scheduled first" { unit timer-order; }
@test "08 loop: cancel before and during dispatch" { unit cancel; }
@test "08 loop: call_soon is FIFO and a self-requeuing callback cannot starve I/O" { unit soon-fifo-no-starvation; }
@test "08 loop: a reader removed (or whose fd is reused) by another callback in the same batch is not called" { unit removed-in-batch; }
@test "08 loop: 4 threads x 10,000 call_soon_threadsafe all arrive, exactly once, in order" { unit threadsafe; }
@test "08 loop: a signal arrives as a callback on the loop" { unit signal; }
@test "08 loop: SIGINT and SIGTERM reach the one stop handler; removing it leaves nothing registered" { unit stop-handler; }
@test "08 loop: free refuses while handles are registered" { unit free-refuses; }
@test "08 loop: run returns when nothing is left to wait for" { unit run-returns-when-empty; }
@test "08 loop: a 1 ms timer does not make the loop spin" { unit no-spin; }
@test "08 loop: a repeating timer repeats until it cancels itself" { unit repeating; }
@test "08 loop: adding a reader again replaces it; readers and writers are separate" { unit replace-and-directions; }
@test "08 loop: a timer that re-arms itself with no delay runs once per iteration, and I/O and call_soon still run" { unit zero-delay-timer; }
@test "08 loop: remove_reader calls nothing: not the callback, then or later" { unit remove-calls-nothing; }
@test "08 loop: a timer re-armed at a past time runs once per iteration, and older due timers still run" { unit past-timer-no-starvation; }
@test "08 loop: a delay too long to count in microseconds means never, not a time in the past" { unit far-timers; }
@test "08 loop: loop_current: each thread sees its own loop, the running one first" { unit current-per-thread; }
@test "08 loop: with more descriptors ready than one wait reports, the next wait serves the rest" { unit many-ready; }

@test "08: --idle-timeout closes a silent client after about the timeout" {
    start_server 08-event-loop --idle-timeout 1 -v
    local conn reply
    open_conn conn
    echo_once "$conn" "then silence"
    run bash -c "IFS= read -r -t 0.5 reply <&$conn"
    [ "$status" -gt 128 ]               # still open half a second later
    run bash -c "IFS= read -r -t 5 reply <&$conn"
    [ "$status" -eq 1 ]                 # then end of stream: the server closed it
    grep -Eq '^[0-9]+ idle fd=[0-9]+ after=1000ms$' "$SERVER_ERR"
    close_conn "$conn"
    stop_server
}

@test "08: --idle-timeout leaves an active client alone" {
    start_server 08-event-loop --idle-timeout 1 -v
    local conn i
    open_conn conn
    for i in 1 2 3 4 5 6 7 8; do       # 8 x 0.3 s: well past the timeout
        echo_once "$conn" "still talking $i"
        sleep 0.3                       # the client's pace, not a wait for the server
    done
    echo_once "$conn" "still here"
    [ "$(grep_count ' idle fd=' "$SERVER_ERR")" -eq 0 ]
    close_conn "$conn"
    stop_server
}

@test "08: --max-conns 2 accepts and closes a third client at once, and serves again later" {
    start_server 08-event-loop --max-conns 2 -v
    local a b c reply
    open_conn a
    open_conn b
    echo_once "$a" "one"
    echo_once "$b" "two"
    open_conn c
    run bash -c "IFS= read -r -t 5 reply <&$c"
    [ "$status" -eq 1 ]                 # end of stream at once
    grep -Eq '^[0-9]+ refuse fd=[0-9]+ reason=max-conns$' "$SERVER_ERR"
    close_conn "$c"
    close_conn "$a"
    wait_until 5 grep -q "close fd=" "$SERVER_ERR"
    run "$CLIENT" --port "$PORT" <<<"three"
    [ "$output" = "three" ]
    close_conn "$b"
    stop_server
}

@test "08: with one idle client, the server uses under 2% of a core" {
    start_server 08-event-loop
    local cpu
    cpu=$(cpu_with_idle_client)
    echo "cpu: ${cpu}% of a core"
    (( cpu < 2 ))
    stop_server
}

@test "08: 10,000 simultaneous connections all echo" {
    ten_thousand_connections 08-event-loop
}

@test "08: an idle connection costs under 512 bytes of server memory (10,000 of them)" {
    idle_memory_is_small 08-event-loop 512
}

@test "08: a client that sends 64 MiB and never reads stalls nobody, and memory stays bounded" {
    never_reader_is_bounded 08-event-loop
}

@test "08: out of descriptors (limit 64, 200 clients) it neither dies nor spins" {
    survives_emfile 50 08-event-loop
}

@test "08: SIGTERM with 1,000 open connections: exit 0 and the summary line" {
    start_server 08-event-loop
    "$LOADGEN" --port "$PORT" --idle --connections 1000 --hold 60 --timeout 30 \
        >"$BATS_TEST_TMPDIR/idle.out" 2>&1 3>&- &
    BACKGROUND_PIDS+=($!)
    wait_until 30 grep -q '^connected=1000$' "$BATS_TEST_TMPDIR/idle.out"
    stop_server
    grep -Eq '^server: served 1000 connections, echoed 0 bytes$' "$SERVER_ERR"
}

@test "08: a slow callback stalls every client (--slow-ms: what an event loop is not)" {
    start_server 08-event-loop --slow-ms 1000
    local a b reply
    open_conn a
    open_conn b
    printf 'a\n' >&"$a"                 # its read callback now sleeps 1 s...
    printf 'b\n' >&"$b"                 # ...and b, though ready, must wait
    run bash -c "IFS= read -r -t 0.8 reply <&$b"
    [ "$status" -gt 128 ]
    IFS= read -r -t 10 reply <&"$b"
    [ "$reply" = "b" ]
    close_conn "$a"; close_conn "$b"
    stop_server
}

# tests/run runs this suite again with LOOP_BACKEND=poll after rebuilding:
# this proves that second run tests the poll backend, not a stale epoll build.
@test "08 loop: built with the backend asked for (LOOP_BACKEND=poll: poll and a pipe, no epoll, no eventfd)" {
    command -v nm >/dev/null || skip "nm is not installed"
    [[ $(uname -s) == Linux ]] || skip "off Linux the poll backend is the only one"
    run nm -u "$TEST_LOOP"
    if [[ ${LOOP_BACKEND:-} == poll ]]; then
        [[ $output == *" poll"* && $output == *" pipe"* ]]
        [[ $output != *epoll_wait* && $output != *eventfd* ]]
    else
        [[ $output == *epoll_wait* && $output == *eventfd* ]]
    fi
}
