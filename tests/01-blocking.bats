#!/usr/bin/env bats
# Chapter 01's claim: one client at a time. A second client is accepted by the
# kernel (it waits in the listen queue) but gets no echo until the first leaves.

load helpers

@test "01: a second client gets no echo while the first is connected, and gets it once the first leaves" {
    start_server 01-blocking
    local first second reply
    open_conn first
    echo_once "$first" "first client"
    open_conn second                     # connect succeeds: the kernel queues it
    printf 'second client\n' >&"$second"
    run bash -c "IFS= read -r -t 1 reply <&$second"
    [ "$status" -gt 128 ]                # read timed out: no echo within a second
    close_conn "$first"
    IFS= read -r -t 5 reply <&"$second"
    [ "$reply" = "second client" ]
    close_conn "$second"
    stop_server
    grep -q 'served 2 connections' "$SERVER_ERR"
}

@test "01: clients queued behind a busy one are all served, in turn" {
    start_server 01-blocking
    local pids=() i
    for i in 1 2 3 4 5; do
        "$CLIENT" --port "$PORT" --bytes $((5000 * i)) --timeout 20 >"$BATS_TEST_TMPDIR/c$i" 3>&- &
        pids+=($!)
    done
    for i in 1 2 3 4 5; do
        wait "${pids[$((i - 1))]}"
        [ "$(cat "$BATS_TEST_TMPDIR/c$i")" = "ok $((5000 * i)) bytes" ]
    done
    stop_server
}

@test "01: one process, one thread, whatever the number of clients" {
    start_server 01-blocking
    local a b
    open_conn a
    open_conn b
    echo_once "$a" "hello"
    [ "$(thread_count "$SERVER_PID")" -eq 1 ]
    [ "$(child_count "$SERVER_PID")" -eq 0 ]
    close_conn "$a"; close_conn "$b"
    stop_server
}

@test "01: SIGTERM right after an echo, twenty times over, always stops the server" {
    # The signal often lands between two blocking calls, after the flag was
    # checked: only the handler's shutdown() of the socket wakes the next one.
    local i conn
    for i in $(seq 1 20); do
        start_server 01-blocking
        open_conn conn
        echo_once "$conn" "then stop"
        stop_server
        close_conn "$conn"
    done
}
