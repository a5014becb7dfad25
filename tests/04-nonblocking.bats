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

# "Burns a core": with one idle client, the server takes as much CPU as a
# process that does nothing but spin, measured beside it over the same second
# (so a busy machine, which gives both less, does not change the verdict).
@test "04: with one idle client, the busy loop uses as much CPU as a bare spin loop" {
    local conn spinner server_before spin_before server_cpu spin_cpu
    start_server 04-nonblocking
    open_conn conn
    echo_once "$conn" "then silence"
    background bash -c 'while :; do :; done'
    spinner=${BACKGROUND_PIDS[-1]}
    server_before=$(cpu_ticks "$SERVER_PID"); spin_before=$(cpu_ticks "$spinner")
    sleep 1                             # the measurement window itself
    server_cpu=$(( $(cpu_ticks "$SERVER_PID") - server_before ))
    spin_cpu=$(( $(cpu_ticks "$spinner") - spin_before ))
    echo "in one second: the server ran $server_cpu ticks, a bare spin loop $spin_cpu"
    (( spin_cpu > 0 && server_cpu * 2 > spin_cpu ))
    close_conn "$conn"
    stop_server
}

@test "04: a client that sends 64 MiB and never reads stalls nobody, and memory stays bounded" {
    never_reader_is_bounded 04-nonblocking
}

@test "04: out of descriptors (limit 64, 200 clients) it survives and serves again" {
    survives_emfile 200 04-nonblocking      # it spins anyway: no bound on its CPU here
}
