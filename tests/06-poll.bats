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

@test "06: a client's reset comes back from poll as POLLIN|POLLERR|POLLHUP; the read says why, and the connection closes" {
    command -v strace >/dev/null || skip "strace is not installed"
    local trace="$BATS_TEST_TMPDIR/poll.txt" tracer
    SERVER_OUT="$BATS_TEST_TMPDIR/server.out"
    SERVER_ERR="$BATS_TEST_TMPDIR/server.err"
    # LeakSanitizer cannot run under ptrace: off for this run (the other tests check leaks).
    ASAN_OPTIONS=detect_leaks=0:exitcode=23 strace -o "$trace" -e trace=poll \
        "$ROOT/chapters/06-poll/server" --port 0 -v >"$SERVER_OUT" 2>"$SERVER_ERR" 3>&- &
    tracer=$!
    BACKGROUND_PIDS+=("$tracer")
    wait_until 20 grep -q '^listening on ' "$SERVER_OUT"
    PORT=$(sed -n 's/^listening on .*:\([0-9][0-9]*\)$/\1/p' "$SERVER_OUT")
    SERVER_PID=$(child_pids "$tracer")
    "$CLIENT" --port "$PORT" --reset-after 0       # connect, then reset at once
    wait_until 10 grep -q ' close fd=' "$SERVER_ERR"
    grep 'revents=POLLIN|POLLERR|POLLHUP' "$trace"
    grep ' error=Connection reset by peer' "$SERVER_ERR"
    kill -TERM "$SERVER_PID"
    wait_exit "$tracer" 5
    SERVER_PID=
    [ "$EXIT_STATUS" -eq 0 ]
}
