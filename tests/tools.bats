#!/usr/bin/env bats
# The tools' own claims (tools/echo-client.c and tools/loadgen.c, their header
# comments): what they print and how they exit. Every other suite trusts them,
# so they have to be right too. tests/run runs this suite last.

load helpers

# refused_port: a port on which nothing listens (a server that just stopped held
# it), in REFUSED_PORT.
refused_port() {
    start_server 03-threads
    REFUSED_PORT=$PORT
    stop_server
}

@test "echo-client: prints the echo of its stdin and exits 0" {
    start_server 03-threads
    run "$CLIENT" --port "$PORT" <<<"hello"
    [ "$status" -eq 0 ]
    [ "$output" = "hello" ]
    stop_server
}

@test "echo-client: a refused connection exits 1 with 'cannot connect'" {
    refused_port
    run "$CLIENT" --port "$REFUSED_PORT" <<<"anyone?"
    [ "$status" -eq 1 ]
    [ "$output" = "echo-client: cannot connect to 127.0.0.1:$REFUSED_PORT: Connection refused" ]
}

@test "echo-client: a server that accepts but never answers exits 3 after --timeout" {
    start_server 01-blocking
    local first
    open_conn first
    echo_once "$first" "holding the server"     # 01 now serves only this client
    SECONDS=0
    run "$CLIENT" --port "$PORT" --timeout 1 <<<"nobody reads this"
    [ "$status" -eq 3 ]
    [[ "$output" == "echo-client: timeout after 1 s "* ]]
    (( SECONDS < 5 ))
    close_conn "$first"
    stop_server
}

@test "echo-client: bad options exit 2 with a one-line message" {
    run "$CLIENT" --no-such-option
    [ "$status" -eq 2 ]
    [[ "$output" == *"--no-such-option"* ]]
    [ "${#lines[@]}" -eq 1 ]
    run "$CLIENT" --bytes -1
    [ "$status" -eq 2 ]
    run "$CLIENT" --timeout 0
    [ "$status" -eq 2 ]
    run "$CLIENT" --keep-open
    [ "$status" -eq 2 ]
    [[ "$output" == *"need --bytes"* ]]
    run "$CLIENT" --bytes 10 --reset-after 10
    [ "$status" -eq 2 ]
}

@test "echo-client --bytes: checks every byte of the echo and prints 'ok N bytes'" {
    start_server 03-threads
    run "$CLIENT" --port "$PORT" --bytes 3000000
    [ "$status" -eq 0 ]
    [ "$output" = "ok 3000000 bytes" ]
    run "$CLIENT" --port "$PORT" --bytes 100000 --keep-open
    [ "$status" -eq 0 ]
    [ "$output" = "ok 100000 bytes" ]
    stop_server
    grep -q 'served 2 connections, echoed 3100000 bytes' "$SERVER_ERR"
}

@test "echo-client --bytes: a wrong byte in the echo exits 1 naming its offset" {
    # A broken "echo server" that flips one bit of byte 100: the test would pass
    # against a client that did not really check, so it needs a server that lies.
    cat >"$BATS_TEST_TMPDIR/liar.c" <<'EOF'
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>
int main(void)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof a;
    int l = socket(AF_INET, SOCK_STREAM, 0), c;
    if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) < 0 || listen(l, 1) < 0 ||
        getsockname(l, (struct sockaddr *)&a, &len) < 0)
        return 1;
    printf("listening on 127.0.0.1:%d\n", ntohs(a.sin_port));
    fflush(stdout);
    if ((c = accept(l, NULL, NULL)) < 0)
        return 1;
    char buf[4096];
    long off = 0;
    ssize_t n;
    while ((n = read(c, buf, sizeof buf)) > 0) {
        if (off <= 100 && 100 < off + n)
            buf[100 - off] ^= 1;
        off += n;
        if (write(c, buf, (size_t)n) != n)
            return 1;
    }
    return 0;
}
EOF
    "${CC:-cc}" -std=c11 -D_POSIX_C_SOURCE=200809L -o "$BATS_TEST_TMPDIR/liar" "$BATS_TEST_TMPDIR/liar.c"
    background "$BATS_TEST_TMPDIR/liar" >"$BATS_TEST_TMPDIR/liar.out"
    wait_until 10 grep -q '^listening on ' "$BATS_TEST_TMPDIR/liar.out"
    PORT=$(sed -n 's/^listening on .*:\([0-9][0-9]*\)$/\1/p' "$BATS_TEST_TMPDIR/liar.out")
    run "$CLIENT" --port "$PORT" --bytes 1000 --timeout 5
    [ "$status" -eq 1 ]
    [[ "$output" == "echo-client: mismatch at offset 100: "* ]]
}

@test "echo-client: a connection the server drops exits 1" {
    start_server 01-blocking
    local first
    open_conn first
    echo_once "$first" "holding the server"
    # The second client waits in the listen queue; stopping the server closes
    # the listening socket, and the kernel resets every connection still in it.
    "$CLIENT" -v --port "$PORT" --bytes 1000 --timeout 10 \
        >"$BATS_TEST_TMPDIR/out" 2>"$BATS_TEST_TMPDIR/err" 3>&- &
    local client=$!
    wait_until 5 grep -q ' sent all 1000 bytes$' "$BATS_TEST_TMPDIR/err"
    stop_server
    wait_exit "$client" 10
    [ "$EXIT_STATUS" -eq 1 ]
    grep -q '^echo-client: receive: Connection reset by peer (sent 1000, received 0 bytes)$' \
        "$BATS_TEST_TMPDIR/err"
    close_conn "$first"
}

@test "echo-client --reset-after N: sends N bytes, then resets the connection" {
    start_server 03-threads -v
    run "$CLIENT" --port "$PORT" --reset-after 50000
    [ "$status" -eq 0 ]
    [ "$output" = "reset after 50000 bytes" ]
    wait_until 5 grep -q ' close fd=' "$SERVER_ERR"
    # A reset, not an orderly close: the server's read or send fails (no "eof").
    grep -Eq '^[0-9]+ (read|write) fd=[0-9]+ error=Connection reset by peer$' "$SERVER_ERR"
    run grep -c ' eof fd=' "$SERVER_ERR"
    [ "$output" = "0" ]
    stop_server
}

@test "echo-client --no-read: sends, never reads, and waits for SIGTERM to exit 0" {
    start_server 03-threads
    "$CLIENT" --port "$PORT" --bytes 1000 --no-read >"$BATS_TEST_TMPDIR/out" \
        2>"$BATS_TEST_TMPDIR/err" 3>&- &
    local client=$!
    wait_until 5 grep -q '^sent 1000 bytes$' "$BATS_TEST_TMPDIR/err"
    kill -0 "$client"                           # still there, holding the connection
    kill -TERM "$client"
    wait_exit "$client" 5
    [ "$EXIT_STATUS" -eq 0 ]
    stop_server
}

@test "loadgen: ping-pong prints one line of results with errors=0" {
    start_server 03-threads
    run "$LOADGEN" --port "$PORT" --duration 1
    [ "$status" -eq 0 ]
    [ "${#lines[@]}" -eq 1 ]
    [[ "$output" =~ ^connections=10\ size=64\ pipeline=1\ requests=([0-9]+)\ seconds=[0-9]+\.[0-9]{2}\ rps=[0-9]+\ p50_us=[0-9]+\ p99_us=[0-9]+\ max_us=[0-9]+\ errors=0$ ]]
    (( BASH_REMATCH[1] > 0 ))
    stop_server
}

@test "loadgen --requests N: stops after N echoes in all" {
    start_server 03-threads
    run "$LOADGEN" --port "$PORT" --connections 4 --size 1000 --pipeline 4 --requests 500 --duration 60
    [ "$status" -eq 0 ]
    [[ "$output" == *" requests=500 "*" errors=0" ]]
    stop_server
    grep -q 'served 4 connections, echoed 500000 bytes' "$SERVER_ERR"
}

@test "loadgen --idle: 50 idle connections, then one echo on each" {
    start_server 03-threads
    run "$LOADGEN" --port "$PORT" --idle --connections 50
    [ "$status" -eq 0 ]
    [ "${lines[0]}" = "connected=50" ]
    [ "${lines[1]}" = "idle connections=50 opened=50 echoed=50 errors=0" ]
    stop_server
    grep -q 'served 50 connections, echoed 800 bytes' "$SERVER_ERR"
}

@test "loadgen: a refused port counts one error per connection and exits 1" {
    refused_port
    run "$LOADGEN" --port "$REFUSED_PORT" --connections 3 --duration 1
    [ "$status" -eq 1 ]
    [[ "$output" == *" requests=0 "*" errors=3"* ]]
    [[ "$output" == *"loadgen: 3 errors; the first: connection "*": connect to 127.0.0.1:$REFUSED_PORT: Connection refused"* ]]
}

@test "loadgen: bad options exit 2" {
    run "$LOADGEN" --connections 0
    [ "$status" -eq 2 ]
    [[ "$output" == *"--connections"* ]]
    run "$LOADGEN" --size many
    [ "$status" -eq 2 ]
    run "$LOADGEN" --no-such-option
    [ "$status" -eq 2 ]
}

@test "build: every chapter is built optimized (-O2; -O1 under SANITIZE=1), whatever flags it adds" {
    local stamp count=0
    for stamp in "$ROOT"/chapters/*/.cflags "$ROOT"/tools/.cflags; do
        [[ -f "$stamp" ]] || continue
        echo "$stamp: $(cat "$stamp")"
        grep -Eq -- ' -O[12] ' "$stamp"
        count=$(( count + 1 ))
    done
    (( count >= 12 ))
}
