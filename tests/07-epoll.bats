#!/usr/bin/env bats
# Chapter 07's claims, in both modes: epoll sleeps like poll, handles 10,000
# connections, and edge-triggered mode loses nothing.

load helpers
load readiness

@test "07: with one idle client, the server uses under 2% of a core (level and edge)" {
    local cpu
    start_server 07-epoll
    cpu=$(cpu_with_idle_client)
    echo "level: ${cpu}% of a core"
    (( cpu < 2 ))
    stop_server
    start_server 07-epoll --edge
    cpu=$(cpu_with_idle_client)
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
    run "$LOADGEN" --port "$PORT" --connections 20 --size 65536 --pipeline 8 --requests 2000 \
        --duration 60 --timeout 20
    echo "$output"
    [ "$status" -eq 0 ]
    [[ "$output" == *" requests=2000 "*"errors=0"* ]]
    stop_server
}

# count_syscalls OPTIONS...: 20,000 echoes on 100 connections x 64 bytes
# under strace -c; sets READS, SENDS, CTLS, WAITS and EAGAINS.
count_syscalls() {
    strace_load 07-epoll 100 20000 "$@"
    READS=$(syscalls read); SENDS=$(syscalls sendto); CTLS=$(syscalls epoll_ctl)
    WAITS=$(syscalls epoll_wait); EAGAINS=$(syscall_errors read)
    echo "read=$READS (EAGAIN $EAGAINS) sendto=$SENDS epoll_wait=$WAITS epoll_ctl=$CTLS for 20000 echoes"
}

@test "07: level-triggered, 100 connections x 64 bytes: one read and one send per echo, no epoll_ctl per message" {
    count_syscalls
    # One send per echo; one read per echo, plus one end-of-stream read per
    # connection (and a handful of EAGAINs at most; a sanitizer build's
    # runtime also reads a few /proc files at start); epoll_ctl only to add
    # and remove each connection.
    (( SENDS == 20000 ))
    (( READS <= 20000 + 100 + 20 + 200 ))
    (( EAGAINS <= 20 ))     # level-triggered reads only when told there is data
    (( CTLS <= 2 + 2 * 100 ))
}

@test "07: edge-triggered ends every drain with an EAGAIN read, and never calls epoll_ctl per message" {
    count_syscalls --edge
    (( SENDS == 20000 ))
    # Each wake-up drains each ready socket until read says EAGAIN: at least
    # one failed read per epoll_wait (about one per echo when the clients are
    # slower than the server; fewer when the next message is already there,
    # and far fewer when one client keeps its socket full and the drain
    # starves the others: the README's fairness paragraph).
    (( WAITS > 0 && EAGAINS >= WAITS - 5 ))
    (( READS <= 2 * 20000 + 400 ))
    (( CTLS <= 2 + 2 * 100 ))
}

# A client's bytes and its FIN, queued together while the server is stopped:
# edge-triggered, they make one report. A server that took a short read as
# proof of an empty socket would never read the FIN, and never close.
@test "07: edge-triggered, a short read is not proof that the socket is empty: the FIN behind it is seen" {
    command -v ss >/dev/null || skip "ss (iproute2) is not installed"
    start_server 07-epoll --edge
    kill -STOP "$SERVER_PID"
    "$CLIENT" --port "$PORT" --timeout 5 <<<"hello" >"$BATS_TEST_TMPDIR/echo" 2>&1 3>&- &
    BACKGROUND_PIDS+=($!)
    local client=$!
    # The server's kernel has the 6 bytes and the FIN once it has ACKed the
    # FIN: the client's side is then in FIN-WAIT-2.
    fin_acked() { ss -tn state fin-wait-2 "( dport = :$PORT )" | grep -q "$PORT"; }
    wait_until 5 fin_acked
    kill -CONT "$SERVER_PID"
    wait_exit "$client" 10
    cat "$BATS_TEST_TMPDIR/echo"
    [ "$EXIT_STATUS" -eq 0 ]
    [ "$(cat "$BATS_TEST_TMPDIR/echo")" = "hello" ]
    stop_server
}

@test "07: 10,000 idle connections cost under 6 KiB each (a 16 KiB buffer each, of which one page is touched)" {
    idle_memory_is_small 07-epoll 6144
}
