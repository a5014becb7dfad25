#!/usr/bin/env bats
# Chapter 06's claims: poll sleeps like select, without its FD_SETSIZE ceiling.

load helpers
load readiness

@test "06: with one idle client, the server uses under 2% of a core" {
    local cpu
    start_server 06-poll
    cpu=$(cpu_with_idle_client)
    echo "cpu: ${cpu}% of a core"
    (( cpu < 2 ))
    stop_server
}

@test "06: 10,000 simultaneous connections all echo" {
    ten_thousand_connections 06-poll
}

@test "06: a client that sends 64 MiB and never reads stalls nobody, and memory stays bounded" {
    never_reader_is_bounded 06-poll
}

@test "06: out of descriptors (limit 64, 200 clients) it neither dies nor spins" {
    survives_emfile 50 06-poll
}
