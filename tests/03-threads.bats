#!/usr/bin/env bats
# Chapter 03's claims: a thread per client serves clients at once and leaves no
# thread behind; with --pool N at most N are served at once and the next waits.

load helpers

@test "03: five clients are served at once, a thread each" {
    start_server 03-threads
    local conns=() fd i
    for i in 1 2 3 4 5; do
        open_conn fd
        conns+=("$fd")
    done
    for i in 4 3 2 1 0; do
        echo_once "${conns[$i]}" "client $i"
    done
    [ "$(thread_count "$SERVER_PID")" -eq 6 ]     # main + one per client
    for fd in "${conns[@]}"; do close_conn "$fd"; done
    # Each thread ends with its client: back to the main thread alone.
    wait_until 5 value_is 1 thread_count "$SERVER_PID"
    stop_server
}

@test "03: --pool 2 serves two clients; a third waits until one of them leaves" {
    start_server 03-threads --pool 2
    [ "$(thread_count "$SERVER_PID")" -eq 3 ]     # main + the pool
    local a b c reply
    open_conn a
    open_conn b
    echo_once "$a" "first"
    echo_once "$b" "second"
    open_conn c
    printf 'third\n' >&"$c"
    run bash -c "IFS= read -r -t 1 reply <&$c"
    [ "$status" -gt 128 ]                        # no echo within a second: queued
    close_conn "$a"
    IFS= read -r -t 5 reply <&"$c"
    [ "$reply" = "third" ]
    [ "$(thread_count "$SERVER_PID")" -eq 3 ]     # the pool did not grow
    close_conn "$b"; close_conn "$c"
    stop_server
}

@test "03: SIGTERM with busy pool threads and a queued client exits 0" {
    start_server 03-threads --pool 1 -v
    local a b
    open_conn a
    echo_once "$a" "busy"
    open_conn b
    printf 'queued\n' >&"$b"
    wait_until 5 value_is 2 grep_count ' accept fd=' "$SERVER_ERR"   # b is in the queue
    stop_server
    grep -q 'served 2 connections, echoed 5 bytes' "$SERVER_ERR"
    close_conn "$a"; close_conn "$b"
}

@test "03: SIGTERM with a thread per client exits 0 and counts every byte" {
    start_server 03-threads
    local a b
    open_conn a
    open_conn b
    echo_once "$a" "one"
    echo_once "$b" "two"
    stop_server
    grep -q 'served 2 connections, echoed 8 bytes' "$SERVER_ERR"
    close_conn "$a"; close_conn "$b"
}

@test "03: --pool takes a number from 1 to 10000" {
    run "$ROOT/chapters/03-threads/server" --pool 0
    [ "$status" -eq 2 ]
    [[ "$output" == *"--pool"* ]]
    run "$ROOT/chapters/03-threads/server" --pool many
    [ "$status" -eq 2 ]
    run "$ROOT/chapters/03-threads/server" --pool
    [ "$status" -eq 2 ]
}

@test "03: --pool 1 queues 64 clients behind a busy one and closes the next at once" {
    start_server 03-threads --pool 1 -v
    local busy queued=() fd i reply
    open_conn busy
    echo_once "$busy" "busy"                     # the only pool thread serves it
    for i in $(seq 1 64); do
        open_conn fd
        queued+=("$fd")
    done
    # The main thread accepts in order: once 65 accepts are traced, the queue is full.
    wait_until 5 value_is 65 grep_count ' accept fd=' "$SERVER_ERR"
    open_conn fd
    printf 'one too many\n' >&"$fd"
    run bash -c "IFS= read -r -t 5 reply <&$fd"
    [ "$status" -eq 1 ]                          # closed at once (EOF or reset), not a timeout (>128)
    grep -Eq '^[0-9]+ refuse fd=[0-9]+ reason=queue full$' "$SERVER_ERR"
    close_conn "$fd"
    # The refused client cost no queued one its place: the first in line is served next.
    close_conn "$busy"
    echo_once "${queued[0]}" "first in line"
    [ "$(thread_count "$SERVER_PID")" -eq 2 ]    # main + the one pool thread
    for fd in "${queued[@]}"; do close_conn "$fd"; done
    stop_server
    grep -q 'served 65 connections' "$SERVER_ERR"
}

# workers_block_stop_signals OPTIONS...: with two clients being served, every
# worker thread blocks SIGINT and SIGTERM and the main thread blocks neither.
workers_block_stop_signals() {
    start_server 03-threads "$@"
    local a b task tid workers=0
    open_conn a
    open_conn b
    echo_once "$a" "one"
    echo_once "$b" "two"
    for task in /proc/"$SERVER_PID"/task/*; do
        tid=${task##*/}
        if [[ "$tid" == "$SERVER_PID" ]]; then
            echo "main thread $tid blocks $(blocked_stop_signals "$SERVER_PID" "$tid")"
            [ "$(blocked_stop_signals "$SERVER_PID" "$tid")" = 0x0 ]
        else
            echo "worker $tid blocks $(blocked_stop_signals "$SERVER_PID" "$tid")"
            [ "$(blocked_stop_signals "$SERVER_PID" "$tid")" = 0x4002 ]
            workers=$(( workers + 1 ))
        fi
    done
    [ "$workers" -eq $(( 2 + $(sanitizer_threads "$SERVER_PID") )) ]
    close_conn "$a"; close_conn "$b"
    stop_server
}

@test "03: each client thread blocks SIGINT and SIGTERM (SigBlk in /proc); the main thread does not" {
    workers_block_stop_signals
}

@test "03: each --pool thread blocks SIGINT and SIGTERM (SigBlk in /proc); the main thread does not" {
    workers_block_stop_signals --pool 2
}

# all_asleep PID: every thread of PID is asleep (state S), here in accept() or
# read(): a signal that came a moment earlier, between two calls, would
# interrupt nothing.
all_asleep() {
    local stat
    for stat in /proc/"$1"/task/*/stat; do
        read -r stat <"$stat" || return 1
        stat=${stat##*) }
        [[ "${stat:0:1}" == S ]] || return 1
    done
}

@test "03: SIGTERM sent to a worker's id is taken by the main thread: its accept() is interrupted" {
    start_server 03-threads -v
    local a b tid worker=
    open_conn a
    open_conn b
    echo_once "$a" "one"
    echo_once "$b" "two"
    for tid in /proc/"$SERVER_PID"/task/*; do
        tid=${tid##*/}
        [[ "$tid" != "$SERVER_PID" ]] && worker=$tid
    done
    [ -n "$worker" ]
    wait_until 5 all_asleep "$SERVER_PID"
    # kill(TID) on Linux signals the whole process but offers the signal to that
    # thread first. The workers block SIGTERM, so the main thread takes it: its
    # accept() returns EINTR, and it stops the rest, whose reads then see end of
    # stream. Were the worker to take it, that worker's read would fail with
    # EINTR instead, and only the handler's shutdown() of the listener would
    # wake accept() (EINVAL, and on Linux alone: see the README).
    kill -TERM "$worker"
    wait_exit "$SERVER_PID" 5
    SERVER_PID=
    [ "$EXIT_STATUS" -eq 0 ]
    grep -q 'served 2 connections, echoed 8 bytes' "$SERVER_ERR"
    grep -Eq '^[0-9]+ accept error=Interrupted system call$' "$SERVER_ERR"
    [ "$(grep_count ' read fd=[0-9]* error=' "$SERVER_ERR")" -eq 0 ]   # the workers saw end of stream
    close_conn "$a"; close_conn "$b"
}

@test "03: when no thread can be started, that client is closed and the others go on" {
    local server="$ROOT/chapters/03-threads/server"
    sanitized "$server" && skip "a sanitizer needs more address space than this test allows"
    # What the server needs without a client thread, from one run...
    start_server 03-threads -v
    local base
    base=$(awk '/^VmSize:/ { print $2 }' "/proc/$SERVER_PID/status")
    stop_server
    # ...and a second run with room for one more 256 KiB thread stack, not two.
    SERVER_OUT="$BATS_TEST_TMPDIR/server.out"
    SERVER_ERR="$BATS_TEST_TMPDIR/server.err"
    ( ulimit -v $(( base + 384 )) && exec "$server" --port 0 -v ) >"$SERVER_OUT" 2>"$SERVER_ERR" 3>&- &
    SERVER_PID=$!
    wait_until 10 grep -q '^listening on ' "$SERVER_OUT"
    PORT=$(sed -n 's/^listening on .*:\([0-9][0-9]*\)$/\1/p' "$SERVER_OUT")
    local a b c reply
    open_conn a
    echo_once "$a" "one"                         # the one thread there is room for
    open_conn b
    printf 'two\n' >&"$b"
    run bash -c "IFS= read -r -t 5 reply <&$b"
    [ "$status" -eq 1 ]                          # closed at once, not left hanging
    grep -Eq '^[0-9]+ refuse fd=[0-9]+ reason=no thread$' "$SERVER_ERR"
    echo_once "$a" "still served"
    # Once a thread ends, the next client gets one again.
    close_conn "$a"
    wait_until 5 value_is 1 thread_count "$SERVER_PID"
    open_conn c
    echo_once "$c" "three"
    close_conn "$b"; close_conn "$c"
    stop_server
    grep -q 'served 2 connections' "$SERVER_ERR"
}
