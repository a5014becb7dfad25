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
    wait_until 5 test "$(thread_count "$SERVER_PID")" -eq 1
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
    wait_until 5 test "$(grep -c ' accept fd=' "$SERVER_ERR")" -eq 2   # b is in the queue
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
