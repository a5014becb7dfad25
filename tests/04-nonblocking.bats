#!/usr/bin/env bats
# Chapter 04's claims: one thread serves every client at once with non-blocking
# sockets, and, never sleeping, it burns a core even when idle.

load helpers
load readiness

@test "04: five clients are served at once by one thread" {
    start_server 04-nonblocking
    local conns=() fd i
    for i in 1 2 3 4 5; do
        open_conn fd
        conns+=("$fd")
    done
    for i in 4 3 2 1 0; do
        echo_once "${conns[$i]}" "client $i"
    done
    [ "$(thread_count "$SERVER_PID")" -eq 1 ]
    for fd in "${conns[@]}"; do close_conn "$fd"; done
    stop_server
}

@test "04: with one idle client, the busy loop uses more than half a core" {
    local cpu
    start_server 04-nonblocking
    cpu=$(cpu_with_idle_client)
    echo "cpu: ${cpu}% of a core"
    (( cpu > 50 ))
    stop_server
}

@test "04: a client that sends 64 MiB and never reads stalls nobody, and memory stays bounded" {
    never_reader_is_bounded 04-nonblocking
}

@test "04: out of descriptors (limit 64, 200 clients) it survives and serves again" {
    survives_emfile 100 04-nonblocking
}
