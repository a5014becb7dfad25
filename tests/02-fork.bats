#!/usr/bin/env bats
# Chapter 02's claims: clients are served at once, one process each, and no
# child is left behind: none as a zombie after its client leaves, none at all
# after the server stops.

load helpers

@test "02: five clients are served at once, each by its own process" {
    start_server 02-fork
    local conns=() fd i
    for i in 1 2 3 4 5; do
        open_conn fd
        conns+=("$fd")
    done
    # The last one to connect is echoed while the first four stay connected.
    for i in 4 3 2 1 0; do
        echo_once "${conns[$i]}" "client $i"
    done
    [ "$(child_count "$SERVER_PID")" -eq 5 ]
    for fd in "${conns[@]}"; do close_conn "$fd"; done
    stop_server
}

@test "02: no zombie is left once the clients leave" {
    start_server 02-fork
    local i
    for i in $(seq 1 20); do
        "$CLIENT" --port "$PORT" --bytes 1000 >/dev/null
    done
    # A child that exited but was never reaped stays in /proc as a zombie of
    # the server: waiting for zero children proves every one was reaped.
    wait_until 5 test "$(child_count "$SERVER_PID")" -eq 0
    stop_server
    grep -q 'served 20 connections, echoed 20000 bytes' "$SERVER_ERR"
}

@test "02: SIGTERM stops the children too, and counts their bytes" {
    start_server 02-fork
    local a b children pid
    open_conn a
    open_conn b
    echo_once "$a" "aaaa"
    echo_once "$b" "bbbb"
    children=$(child_pids "$SERVER_PID")
    [ "$(echo "$children" | wc -l)" -eq 2 ]
    stop_server
    for pid in $children; do
        [ ! -e "/proc/$pid" ]
    done
    grep -q 'served 2 connections, echoed 10 bytes' "$SERVER_ERR"
    close_conn "$a"; close_conn "$b"
}
