#!/usr/bin/env bats
# Chapter 07's claims, in both modes: epoll sleeps like poll, handles 10,000
# connections, and edge-triggered mode loses nothing.

load helpers
load readiness

@test "07: with one idle client, the server uses under 2% of a core (level and edge)" {
    local cpu
    cpu=$(cpu_with_idle_client 07-epoll)
    echo "level: ${cpu}% of a core"
    (( cpu < 2 ))
    stop_server
    cpu=$(cpu_with_idle_client 07-epoll --edge)
    echo "edge: ${cpu}% of a core"
    (( cpu < 2 ))
    stop_server
}

@test "07: 10,000 simultaneous connections all echo (level-triggered)" {
    ten_thousand_connections 07-epoll
}

@test "07: 10,000 simultaneous connections all echo (edge-triggered)" {
    ten_thousand_connections 07-epoll --edge
}

@test "07: a client that sends 64 MiB and never reads stalls nobody, and memory stays bounded (level)" {
    never_reader_is_bounded 07-epoll
}

@test "07: a client that sends 64 MiB and never reads stalls nobody, and memory stays bounded (edge)" {
    never_reader_is_bounded 07-epoll --edge
}

@test "07: out of descriptors (limit 64, 200 clients) it neither dies nor spins (level and edge)" {
    survives_emfile 50 07-epoll
    survives_emfile 50 07-epoll --edge
}

@test "07: edge-triggered, a pipelined 8 MiB burst is drained whole (nothing left unannounced)" {
    start_server 07-epoll --edge
    run "$LOADGEN" --port "$PORT" --connections 20 --size 65536 --pipeline 8 --requests 2000 --timeout 20
    echo "$output"
    [ "$status" -eq 0 ]
    [[ "$output" == *"errors=0"* ]]
    stop_server
}

@test "07: level-triggered asks for EPOLLOUT only while echo is pending: no epoll_ctl per message" {
    command -v strace >/dev/null || skip "strace is not installed"
    start_server 07-epoll
    strace -f -c -o "$BATS_TEST_TMPDIR/strace.txt" -p "$SERVER_PID" 3>&- &
    local tracer=$!
    wait_until 5 grep -q . /proc/"$SERVER_PID"/status   # attached almost at once
    sleep 0.5   # strace -p attaches asynchronously and has no ready signal
    run "$LOADGEN" --port "$PORT" --connections 10 --size 64 --requests 5000 --timeout 20
    [ "$status" -eq 0 ]
    kill -INT "$tracer"; wait "$tracer" || true
    cat "$BATS_TEST_TMPDIR/strace.txt"
    local ctl
    ctl=$(awk '$NF == "epoll_ctl" { print $4 }' "$BATS_TEST_TMPDIR/strace.txt")
    (( ${ctl:-0} < 100 ))      # 10 ADDs, a few MODs at most: not one per message
    stop_server
}
