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
    [[ "$output" =~ ^connections=10\ size=64\ pipeline=1\ requests=([0-9]+)\ seconds=[0-9]+\.[0-9]{2}\ rps=[0-9]+\ p50_us=[0-9]+\ p99_us=[0-9]+\ max_us=[0-9]+\ errors=0\ idle_extra=0\ echoes_min=[0-9]+\ echoes_median=[0-9]+\ echoes_max=[0-9]+\ jain=[01]\.[0-9]{4}\ wait_share=[01]\.[0-9]{2}$ ]]
    (( BASH_REMATCH[1] > 0 ))
    stop_server
}

@test "loadgen --requests N: stops after N echoes in all" {
    start_server 03-threads
    run "$LOADGEN" --port "$PORT" --connections 4 --size 1000 --pipeline 4 --requests 500 --duration 60
    [ "$status" -eq 0 ]
    [[ "$output" == *" requests=500 "*" errors=0 "* ]]
    stop_server
    grep -q 'served 4 connections, echoed 500000 bytes' "$SERVER_ERR"
}

@test "loadgen: messages of a tag or less, several in flight, are sent as they are checked" {
    # A message of 8 bytes or less is one iovec, not two: each still needs its own tag.
    start_server 03-threads
    for shape in "--size 1 --pipeline 4" "--size 8 --pipeline 2" "--size 9 --pipeline 4"; do
        run "$LOADGEN" --port "$PORT" --connections 2 $shape --requests 400 --duration 60
        echo "$shape: $output"
        [ "$status" -eq 0 ]
        [[ "$output" == *" requests=400 "*" errors=0 "* ]]
    done
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
    [[ "$output" == *" requests=0 "*" errors=3 idle_extra=0 echoes_min=0 echoes_median=0 echoes_max=0 jain=0.0000 "* ]]
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
    run "$LOADGEN" --threads 0
    [ "$status" -eq 2 ]
    [[ "$output" == *"--threads"* ]]
    run "$LOADGEN" --threads 65
    [ "$status" -eq 2 ]
    run "$LOADGEN" --idle-extra -1
    [ "$status" -eq 2 ]
    [[ "$output" == *"--idle-extra"* ]]
    run "$LOADGEN" --spin=yes
    [ "$status" -eq 2 ]
    run "$LOADGEN" --idle --spin
    [ "$status" -eq 2 ]
    [[ "$output" == *"--idle takes none of"* ]]
}

# fairness_of OUTPUT: split a ping-pong line's per-connection keys into
# REQUESTS MIN MEDIAN MAX JAIN WAIT, failing unless they are all there.
fairness_of() {
    [[ "$1" =~ \ requests=([0-9]+)\ .*\ echoes_min=([0-9]+)\ echoes_median=([0-9]+)\ echoes_max=([0-9]+)\ jain=([0-9.]+)\ wait_share=([0-9.]+)$ ]] || return 1
    REQUESTS=${BASH_REMATCH[1]} MIN=${BASH_REMATCH[2]} MEDIAN=${BASH_REMATCH[3]}
    MAX=${BASH_REMATCH[4]} JAIN=${BASH_REMATCH[5]} WAIT=${BASH_REMATCH[6]}
}

# server_conns N: true when the server holds exactly N established connections.
server_conns() {
    [ "$(ss -Htn state established "( sport = :$PORT )" | wc -l)" -eq "$1" ]
}

@test "loadgen: echoes per connection add up, min <= median <= max, jain in (0,1], wait_share in [0,1]" {
    start_server 03-threads
    local opts
    for opts in "" "--threads 2" "--spin --threads 2" "--spin --pipeline 4"; do
        echo "with: $opts"
        # 3 connections: min + median + max is every echo; 301 does not split evenly.
        run "$LOADGEN" --port "$PORT" --connections 3 --requests 301 --duration 60 $opts
        echo "$output"
        [ "$status" -eq 0 ]
        fairness_of "$output"
        (( REQUESTS == 301 && MIN + MEDIAN + MAX == 301 ))
        (( MIN <= MEDIAN && MEDIAN <= MAX ))
        awk -v j="$JAIN" -v w="$WAIT" 'BEGIN { exit !(j > 0 && j <= 1 && w >= 0 && w <= 1) }'
    done
    stop_server
    grep -q 'served 12 connections, echoed 77056 bytes' "$SERVER_ERR"     # 4 x 301 x 64
}

@test "loadgen --idle-extra N: N more connections are open at the server during the run, each echoes at the end" {
    command -v ss >/dev/null || skip "ss (iproute2) is not installed"
    start_server 03-threads
    "$LOADGEN" --port "$PORT" --connections 2 --idle-extra 20 --duration 60 \
        >"$BATS_TEST_TMPDIR/out" 2>"$BATS_TEST_TMPDIR/err" 3>&- &
    local loadgen=$!
    BACKGROUND_PIDS+=("$loadgen")
    wait_until 10 server_conns 22
    ! exited "$loadgen"                         # still in its 60 s run, with all 22
    kill -TERM "$loadgen"                       # ends the run: then the idle ones are checked
    wait_exit "$loadgen" 10
    cat "$BATS_TEST_TMPDIR/out" "$BATS_TEST_TMPDIR/err"
    [ "$EXIT_STATUS" -eq 0 ]
    fairness_of "$(cat "$BATS_TEST_TMPDIR/out")"
    grep -q ' errors=0 idle_extra=20 ' "$BATS_TEST_TMPDIR/out"
    stop_server
    # The server echoed every counted message, 16 bytes on each idle connection,
    # and at most the one message each active connection had in flight at the stop.
    local echoed
    echoed=$(sed -n 's/.*served 22 connections, echoed \([0-9]*\) bytes.*/\1/p' "$SERVER_ERR")
    echo "echoed=$echoed requests=$REQUESTS"
    (( echoed - REQUESTS * 64 - 20 * 16 >= 0 && echoed - REQUESTS * 64 - 20 * 16 <= 2 * 64 ))
}

@test "loadgen --idle-extra: an idle connection the server closes during the run is an error" {
    command -v ss >/dev/null || skip "ss (iproute2) is not installed"
    start_server 08-event-loop --idle-timeout 1
    "$LOADGEN" --port "$PORT" --connections 2 --idle-extra 3 --duration 60 \
        >"$BATS_TEST_TMPDIR/out" 2>"$BATS_TEST_TMPDIR/err" 3>&- &
    local loadgen=$!
    BACKGROUND_PIDS+=("$loadgen")
    wait_until 10 server_conns 5
    wait_until 20 server_conns 2               # the idle three timed out; the busy two did not
    kill -TERM "$loadgen"
    wait_exit "$loadgen" 10
    cat "$BATS_TEST_TMPDIR/out" "$BATS_TEST_TMPDIR/err"
    [ "$EXIT_STATUS" -eq 1 ]
    grep -q ' errors=3 idle_extra=3 ' "$BATS_TEST_TMPDIR/out"
    grep -Eq '^loadgen: 3 errors; the first: idle connection [234]: the server closed the connection$' \
        "$BATS_TEST_TMPDIR/err"
    stop_server
}

# start_liar MODE: a broken echo server, compiled here, that takes two clients
# and lies to them in one way: flip (one bit of byte 20000 of each stream
# changes), swap (each client gets the other's bytes), replay (past the first
# 64 bytes, each client gets its first 64 again and again). Sets PORT.
start_liar() {
    cat >"$BATS_TEST_TMPDIR/liar2.c" <<'EOF'
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
static int write_all(int fd, const char *p, size_t n)
{
    for (ssize_t w; n > 0; p += w, n -= (size_t)w)
        if ((w = write(fd, p, n)) < 0)
            return -1;
    return 0;
}
int main(int argc, char **argv)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof a;
    int l = socket(AF_INET, SOCK_STREAM, 0), c[2];
    const char *mode = argc > 1 ? argv[1] : "";
    signal(SIGPIPE, SIG_IGN);
    if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) < 0 || listen(l, 2) < 0 ||
        getsockname(l, (struct sockaddr *)&a, &len) < 0)
        return 1;
    printf("listening on 127.0.0.1:%d\n", ntohs(a.sin_port));
    fflush(stdout);
    if ((c[0] = accept(l, NULL, NULL)) < 0 || (c[1] = accept(l, NULL, NULL)) < 0)
        return 1;
    struct pollfd p[2] = { { .fd = c[0], .events = POLLIN }, { .fd = c[1], .events = POLLIN } };
    long off[2] = { 0, 0 };
    char buf[65536], first[2][64];
    while (poll(p, 2, -1) > 0) {
        for (int i = 0; i < 2; i++) {
            ssize_t n;
            if (p[i].revents == 0)
                continue;
            if ((n = read(c[i], buf, sizeof buf)) <= 0)
                return 0;
            for (ssize_t k = 0; k < n; k++, off[i]++) {
                if (strcmp(mode, "flip") == 0 && off[i] == 20000)
                    buf[k] ^= 1;
                if (strcmp(mode, "replay") == 0 && off[i] < 64)
                    first[i][off[i]] = buf[k];
                else if (strcmp(mode, "replay") == 0)
                    buf[k] = first[i][off[i] % 64];
            }
            if (write_all(c[strcmp(mode, "swap") == 0 ? 1 - i : i], buf, (size_t)n) < 0)
                return 0;
        }
    }
    return 1;
}
EOF
    "${CC:-cc}" -std=c11 -D_POSIX_C_SOURCE=200809L -o "$BATS_TEST_TMPDIR/liar2" "$BATS_TEST_TMPDIR/liar2.c"
    background "$BATS_TEST_TMPDIR/liar2" "$1" >"$BATS_TEST_TMPDIR/liar2.out"
    wait_until 10 grep -q '^listening on ' "$BATS_TEST_TMPDIR/liar2.out"
    PORT=$(sed -n 's/^listening on .*:\([0-9][0-9]*\)$/\1/p' "$BATS_TEST_TMPDIR/liar2.out")
}

@test "loadgen --spin --threads: a flipped bit deep in a 16 KiB message is caught, with its place" {
    start_liar flip
    run "$LOADGEN" --port "$PORT" --connections 2 --size 16384 --spin --threads 2 --duration 30
    [ "$status" -eq 1 ]
    [[ "$output" == *" errors=2 "* ]]
    # Byte 20000 of the stream is byte 3616 of message 1.
    [[ "$output" == *"the first: connection "[01]": mismatch in message 1 at offset 3616: got 0x"* ]]
}

@test "loadgen --spin --threads: a server that gives a client another client's echo is caught" {
    start_liar swap
    run "$LOADGEN" --port "$PORT" --connections 2 --spin --threads 2 --duration 30
    [ "$status" -eq 1 ]
    [[ "$output" == *" errors=2 "* ]]
    [[ "$output" == *"the first: connection "[01]": mismatch in message 0 at offset "* ]]
}

@test "loadgen --spin --threads: a server that replays an old message is caught" {
    start_liar replay
    run "$LOADGEN" --port "$PORT" --connections 2 --spin --threads 2 --duration 30
    [ "$status" -eq 1 ]
    [[ "$output" == *" errors=2 "* ]]
    [[ "$output" == *"the first: connection "[01]": mismatch in message 1 at offset "* ]]
}

@test "loadgen built with poll() instead of epoll (as off Linux) does the same" {
    "${CC:-cc}" -std=c11 -D_POSIX_C_SOURCE=200809L -DLOADGEN_POLL -I"$ROOT/common" \
        -o "$BATS_TEST_TMPDIR/loadgen-poll" "$TOOLS/loadgen.c" "$ROOT"/common/*.c -lpthread
    start_server 03-threads
    run "$BATS_TEST_TMPDIR/loadgen-poll" --port "$PORT" --connections 20 --idle-extra 10 \
        --threads 2 --pipeline 2 --requests 2000 --duration 60
    echo "$output"
    [ "$status" -eq 0 ]
    [[ "$output" == *" requests=2000 "*" errors=0 idle_extra=10 "* ]]
    stop_server
    grep -q 'served 30 connections, echoed 128160 bytes' "$SERVER_ERR"    # 2000 x 64 + 10 x 16
    start_liar swap
    run "$BATS_TEST_TMPDIR/loadgen-poll" --port "$PORT" --connections 2 --spin --duration 30
    [ "$status" -eq 1 ]
    [[ "$output" == *"mismatch in message 0 at offset "* ]]
}

@test "floor: spins a ping-pong load and prints its rate" {
    [[ "$(uname -s)" == Linux ]] || skip "floor uses epoll"
    start_server 03-threads
    run "$TOOLS/floor" --port "$PORT" --connections 3 --size 1000 --duration 1
    [ "$status" -eq 0 ]
    [[ "$output" =~ ^connections=3\ size=1000\ requests=([0-9]+)\ seconds=[0-9.]+\ rps=[0-9]+$ ]]
    (( BASH_REMATCH[1] > 0 ))
    stop_server
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
