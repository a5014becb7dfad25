#!/usr/bin/env bats
# The contract every server keeps (README.md, "The contract every server
# keeps"), run against one chapter's server:
#   CHAPTER=05-select bats tests/conformance.bats
#   CHAPTER=07-epoll SERVER_ARGS=--edge bats tests/conformance.bats
# tests/run runs it for every chapter that is built, and again for each
# option that changes a chapter's model (03 --pool, 07 --edge).

load helpers

SERVER_ARGS=${SERVER_ARGS:-}
LABEL="${CHAPTER:-}${SERVER_ARGS:+ $SERVER_ARGS}"

setup() {
    [[ -n "${CHAPTER:-}" ]] || skip "set CHAPTER to a folder of chapters/ (tests/run does)"
    [[ -x "$ROOT/chapters/$CHAPTER/server" ]] || skip "chapters/$CHAPTER/server is not built"
    if [[ "$CHAPTER" == 12-* ]]; then
        # io_uring may be missing or forbidden (old kernel, sysctl, seccomp).
        local why
        why=$("$ROOT/chapters/$CHAPTER/server" --check 2>&1) || skip "$why"
    fi
}

# 01 serves one client at a time by design: a client that stays connected
# stalls everyone else. Tests that need two clients served at once skip it.
serves_one_at_a_time() {
    [[ "$CHAPTER" == 01-* ]]
}

@test "$LABEL: prints exactly one 'listening on' line on stdout, then the summary on exit" {
    start_server "$CHAPTER" $SERVER_ARGS
    [[ "$(cat "$SERVER_OUT")" =~ ^listening\ on\ 127\.0\.0\.1:[0-9]+$ ]]
    (( PORT > 0 ))
    stop_server
    [ "$(wc -l <"$SERVER_OUT")" -eq 1 ]
    grep -Eq '^server: served 0 connections, echoed 0 bytes( \(per thread:[0-9 ]+\))?$' "$SERVER_ERR"
}

@test "$LABEL: echoes a line" {
    start_server "$CHAPTER" $SERVER_ARGS
    run "$CLIENT" --port "$PORT" <<<"hello, echo"
    [ "$status" -eq 0 ]
    [ "$output" = "hello, echo" ]
    stop_server
    grep -q 'served 1 connection, echoed 12 bytes' "$SERVER_ERR"
}

@test "$LABEL: echoes every byte value, NUL included, with no newline" {
    start_server "$CHAPTER" $SERVER_ARGS
    run "$CLIENT" --port "$PORT" --bytes 65537
    [ "$status" -eq 0 ]
    [ "$output" = "ok 65537 bytes" ]
    stop_server
}

@test "$LABEL: echoes 8 MiB sent all at once" {
    start_server "$CHAPTER" $SERVER_ARGS
    run "$CLIENT" --port "$PORT" --bytes 8388608 --timeout 60
    [ "$status" -eq 0 ]
    [ "$output" = "ok 8388608 bytes" ]
    stop_server
}

@test "$LABEL: 5,000 lines sent in one write come back whole and in order" {
    start_server "$CHAPTER" $SERVER_ARGS
    seq 1 5000 >"$BATS_TEST_TMPDIR/lines"
    "$CLIENT" --port "$PORT" <"$BATS_TEST_TMPDIR/lines" >"$BATS_TEST_TMPDIR/echo"
    cmp "$BATS_TEST_TMPDIR/lines" "$BATS_TEST_TMPDIR/echo"
    stop_server
}

@test "$LABEL: echoes without a half-close, on a connection that stays open" {
    start_server "$CHAPTER" $SERVER_ARGS
    run "$CLIENT" --port "$PORT" --bytes 100000 --keep-open
    [ "$status" -eq 0 ]
    local conn
    open_conn conn
    echo_once "$conn" "first"
    echo_once "$conn" "second"
    close_conn "$conn"
    stop_server
}

@test "$LABEL: after a half-close the client gets all its echo, then the server closes" {
    start_server "$CHAPTER" $SERVER_ARGS
    # echo-client shuts down its sending side once stdin ends and exits 0 only
    # when the server then closes the connection (end of stream).
    run "$CLIENT" --port "$PORT" --timeout 10 <<<"half-closed"
    [ "$status" -eq 0 ]
    [ "$output" = "half-closed" ]
    stop_server
}

@test "$LABEL: ten clients at once all get their own bytes back" {
    start_server "$CHAPTER" $SERVER_ARGS
    local pids=() i
    for i in $(seq 1 10); do
        "$CLIENT" --port "$PORT" --bytes $((100000 + i)) --timeout 30 >"$BATS_TEST_TMPDIR/c$i" 3>&- &
        pids+=($!)
    done
    for i in $(seq 1 10); do
        wait "${pids[$((i - 1))]}"
        [ "$(cat "$BATS_TEST_TMPDIR/c$i")" = "ok $((100000 + i)) bytes" ]
    done
    stop_server
    grep -q 'served 10 connections' "$SERVER_ERR"
}

@test "$LABEL: clients that reset mid-stream leave the server serving" {
    start_server "$CHAPTER" $SERVER_ARGS
    local i
    for i in $(seq 1 20); do
        run "$CLIENT" --port "$PORT" --reset-after 200000
        [ "$status" -eq 0 ]
    done
    run "$CLIENT" --port "$PORT" --bytes 1000
    [ "$status" -eq 0 ]
    stop_server
}

@test "$LABEL: a client that never reads does not stall another client" {
    serves_one_at_a_time && skip "01 serves one client at a time: a client that never reads stalls the rest by design"
    start_server "$CHAPTER" $SERVER_ARGS
    background "$CLIENT" --port "$PORT" --bytes 67108864 --no-read --timeout 60
    run "$CLIENT" --port "$PORT" --bytes 100000 --timeout 10
    [ "$status" -eq 0 ]
    stop_server
}

@test "$LABEL: SIGTERM with a client connected: summary line and exit 0" {
    start_server "$CHAPTER" $SERVER_ARGS
    local conn
    open_conn conn
    echo_once "$conn" "still here"
    stop_server TERM
    grep -Eq '^server: served 1 connection, echoed 11 bytes( \(per thread:[0-9 ]+\))?$' "$SERVER_ERR"
    close_conn "$conn"
}

@test "$LABEL: SIGINT stops it too" {
    start_server "$CHAPTER" $SERVER_ARGS
    stop_server INT
    grep -q '^server: served 0 connections' "$SERVER_ERR"
}

@test "$LABEL: -v traces accept, read, write and close with a time stamp" {
    start_server "$CHAPTER" $SERVER_ARGS -v
    run "$CLIENT" --port "$PORT" <<<"traced"
    [ "$status" -eq 0 ]
    stop_server
    grep -Eq '^[0-9]+ accept fd=[0-9]+ peer=127\.0\.0\.1:[0-9]+( thread=[0-9]+)?$' "$SERVER_ERR"
    grep -Eq '^[0-9]+ read fd=[0-9]+ n=7( thread=[0-9]+)?$' "$SERVER_ERR"
    grep -Eq '^[0-9]+ write fd=[0-9]+ n=7( thread=[0-9]+)?$' "$SERVER_ERR"
    grep -Eq '^[0-9]+ close fd=[0-9]+( thread=[0-9]+)?$' "$SERVER_ERR"
}

@test "$LABEL: without -v nothing but the summary reaches stderr" {
    start_server "$CHAPTER" $SERVER_ARGS
    run "$CLIENT" --port "$PORT" <<<"quiet"
    stop_server
    [ "$(wc -l <"$SERVER_ERR")" -eq 1 ]
}

@test "$LABEL: listens on IPv6 with --host ::1" {
    start_server "$CHAPTER" $SERVER_ARGS --host ::1 || skip "no IPv6 loopback on this machine"
    grep -Eq '^listening on \[::1\]:[0-9]+$' "$SERVER_OUT"
    run "$CLIENT" --host ::1 --port "$PORT" <<<"six"
    [ "$status" -eq 0 ]
    [ "$output" = "six" ]
    stop_server
}

@test "$LABEL: bad options exit 2 with a one-line message naming the problem" {
    local server="$ROOT/chapters/$CHAPTER/server"
    run "$server" --port 70000
    [ "$status" -eq 2 ]
    [[ "$output" == *"70000"* ]]
    [ "${#lines[@]}" -eq 1 ]
    run "$server" --port abc
    [ "$status" -eq 2 ]
    [[ "$output" == *"abc"* ]]
    run "$server" --no-such-option
    [ "$status" -eq 2 ]
    [[ "$output" == *"--no-such-option"* ]]
    run "$server" --port
    [ "$status" -eq 2 ]
    run "$server" stray-argument
    [ "$status" -eq 2 ]
}

@test "$LABEL: --help prints the usage and exits 0" {
    run "$ROOT/chapters/$CHAPTER/server" --help
    [ "$status" -eq 0 ]
    [[ "${lines[0]}" == usage:* ]]
}

@test "$LABEL: a port in use exits 1 with a clear message" {
    start_server "$CHAPTER" $SERVER_ARGS
    run "$ROOT/chapters/$CHAPTER/server" --port "$PORT"
    [ "$status" -eq 1 ]
    [[ "$output" == "server: cannot listen on 127.0.0.1:$PORT: Address already in use" ]]
    stop_server
}

@test "$LABEL: an address that does not resolve exits 1" {
    run "$ROOT/chapters/$CHAPTER/server" --host no-such-host.invalid --port 0
    [ "$status" -eq 1 ]
    [[ "$output" == "server: cannot listen on no-such-host.invalid:0: "* ]]
}
