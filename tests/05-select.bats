#!/usr/bin/env bats
# Chapter 05's claims: select sleeps until a socket is ready (an idle server
# uses no CPU), and a client whose descriptor is past FD_SETSIZE is refused
# cleanly while everyone else is served.

load helpers
load readiness

@test "05: with one idle client, the server uses under 2% of a core" {
    local cpu
    start_server 05-select
    cpu=$(cpu_with_idle_client)
    echo "cpu: ${cpu}% of a core"
    (( cpu < 2 ))
    stop_server
}

@test "05: of 1,100 clients, those past FD_SETSIZE are refused and all others echo" {
    start_server 05-select -v
    run "$LOADGEN" --port "$PORT" --idle --connections 1100 --timeout 30
    echo "$output"
    local echoed refused
    echoed=$(sed -n 's/.* echoed=\([0-9]*\).*/\1/p' <<<"$output")
    refused=$(grep -c 'refuse fd=[0-9]* reason=FD_SETSIZE' "$SERVER_ERR")
    echo "echoed=$echoed refused=$refused"
    (( refused > 0 && echoed > 1000 ))
    (( echoed + refused == 1100 ))
    # and the server lives on
    run "$CLIENT" --port "$PORT" --bytes 1000
    [ "$status" -eq 0 ]
    stop_server
}

@test "05: a client that sends 64 MiB and never reads stalls nobody, and memory stays bounded" {
    never_reader_is_bounded 05-select
}

@test "05: out of descriptors (limit 64, 200 clients) it neither dies nor spins" {
    survives_emfile 50 05-select
}
