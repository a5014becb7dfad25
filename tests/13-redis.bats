#!/usr/bin/env bats
# Chapter 13's claims: real Redis clients (redis-cli, redis-benchmark) work
# against it, every command does what Redis's does, pipelined requests are
# answered in order in one write, expiry happens both on access and by the
# timer, pub/sub reaches another client and cuts off one that never reads,
# bad input gets an error and a closed connection (memory bounded, nobody
# else stalled), protected mode refuses non-loopback clients without a
# password, and the parts of the server contract that are not about echo
# (port 0, -v, SIGTERM, exit codes). tests/conformance.bats is about echo,
# so tests/run does not run it for this chapter.

load helpers

CH="$ROOT/chapters/13-redis"

# redis-cli and redis-benchmark come from Debian's redis-tools: installed here
# when missing and possible (root and apt-get, as .ci/run does), within a
# bounded time; where it is not possible, the tests that need them skip.
setup_file() {
    if ! command -v redis-cli >/dev/null && [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        export DEBIAN_FRONTEND=noninteractive
        { timeout 120 apt-get install -y -qq redis-tools ||
            { timeout 120 apt-get update -qq && timeout 120 apt-get install -y -qq redis-tools; }; } \
            >/dev/null 2>&1 3>&- || true
    fi
}

need_cli() {
    command -v redis-cli >/dev/null ||
        skip "redis-cli is not installed (apt-get install redis-tools; .ci/run installs it)"
}

# cli ARGS...: redis-cli against the server under test (no retries, 5 s at most).
cli() {
    timeout 5 redis-cli -p "$PORT" "$@"
}

# is CLI-ARGS... -- EXPECTED: redis-cli prints EXPECTED (several lines: \n).
is() {
    local args=() want
    while [[ "$1" != "--" ]]; do args+=("$1"); shift; done
    want=$2
    run cli "${args[@]}"
    if [[ "$output" != "$(printf '%b' "$want")" ]]; then
        echo "redis-cli ${args[*]}: got '$output', wanted '$(printf '%b' "$want")'"
        return 1
    fi
}

# send FD FORMAT...: write bytes (printf's format: \r\n) on a raw connection.
send() {
    local fd=$1; shift
    printf "$@" >&"$fd"
}

# reply FD: the next line the server sent, without its \r (5 s at most).
reply() {
    local line
    IFS= read -r -t 5 line <&"$1" || return 1
    printf '%s\n' "${line%$'\r'}"
}

# closed FD: the server has closed the connection (end of stream within 5 s;
# whatever came before it is skipped).
closed() {
    local line status
    while :; do
        IFS= read -r -t 5 line <&"$1" && continue
        status=$?
        (( status == 1 )) && return 0          # end of stream
        return 1                               # timed out
    done
}

# file_has FILE TEXT: FILE holds a line TEXT.
file_has() {
    grep -qxF -- "$2" "$1" 2>/dev/null
}

# Connections the server holds now (from ss), for waiting on a client.
client_count() {
    ss -Htn state established "( sport = :$PORT )" 2>/dev/null | wc -l
}

# ---- the keyspace alone (C unit tests, a clock moved by hand) ----

db_unit() { unit_case "$CH/test_db" "$1"; }

@test "13 db: set, get, delete, binary-safe values" { db_unit set-get-del; }
@test "13 db: a lookup at or after a key's deadline deletes it (lazy expiry)" { db_unit lazy-expiry; }
@test "13 db: KEEP_TTL keeps a deadline, a plain set clears it, a past deadline deletes" { db_unit keep-ttl; }
@test "13 db: the expiry cycle stays within its budget, deletes only expired keys, and empties an expired keyspace" { db_unit expire-cycle; }
@test "13 db: 100,000 keys, every one found after the table has doubled many times" { db_unit many-keys; }

# ---- the contract, where it is not about echo ----

@test "13 contract: --help names the options and the default port 6380; bad options exit 2" {
    run "$CH/server" --help
    [ "$status" -eq 0 ]
    [[ "$output" == *"default 6380"* ]]
    [[ "$output" == *"--requirepass PASSWORD"* && "$output" == *"--max-bulk BYTES"* ]]
    run "$CH/server" --bogus
    [ "$status" -eq 2 ]
    [[ "$output" == *"unknown option '--bogus'"* ]]
    run "$CH/server" --requirepass
    [ "$status" -eq 2 ]
    [[ "$output" == *"'--requirepass' needs a password"* ]]
    run "$CH/server" --max-bulk 0
    [ "$status" -eq 2 ]
    [[ "$output" == *"bad value '0' for --max-bulk"* ]]
}

@test "13 contract: --port 0, one line on stdout; a taken port exits 1 naming it; SIGTERM exits 0 with a summary" {
    need_cli
    start_server 13-redis
    [ "$(cat "$SERVER_OUT")" = "listening on 127.0.0.1:$PORT" ]
    local first=$SERVER_PID taken=$PORT
    run "$CH/server" --port "$taken"
    [ "$status" -eq 1 ]
    [[ "$output" == *"cannot listen on 127.0.0.1:$taken"* ]]
    is ping -- PONG
    stop_server
    grep -qx 'server: served 1 connections, 1 commands' "$SERVER_ERR"
}

@test "13 contract: SIGTERM with clients connected (one mid-command, one subscribed) exits 0 at once" {
    need_cli
    start_server 13-redis
    local a
    open_conn a
    send "$a" '*2\r\n$3\r\nGET\r\n$3\r\nfo'         # half a request
    background bash -c "exec redis-cli -p $PORT subscribe news >'$BATS_TEST_TMPDIR/sub.out'"
    wait_until 5 file_has "$BATS_TEST_TMPDIR/sub.out" 1
    stop_server
}

@test "13 contract: -v traces each peer and command batch on stderr, never on stdout" {
    need_cli
    start_server 13-redis -v
    is set k v -- OK
    stop_server
    grep -Eq '^[0-9]+ peer 127\.0\.0\.1:[0-9]+ fd=[0-9]+$' "$SERVER_ERR"
    grep -Eq '^[0-9]+ read fd=[0-9]+ n=[0-9]+$' "$SERVER_ERR"
    [ "$(wc -l <"$SERVER_OUT")" -eq 1 ]
}

# ---- every command, with redis-cli ----

@test "13 redis-cli: PING, ECHO, SET, GET, DEL, EXISTS, MSET, MGET" {
    need_cli
    start_server 13-redis
    is ping -- PONG
    is ping hi -- hi
    is echo "hello world" -- "hello world"
    is get nothing -- ""
    is set greeting "hello world" -- OK
    is get greeting -- "hello world"
    is mset a 1 b 2 -- OK
    is mget a nothing b -- '1\n\n2'
    is exists a b nothing a -- 3
    is del a b nothing -- 2
    is exists a -- 0
    # binary-safe: a value with NUL and CR LF in it comes back byte for byte
    printf 'x\0y\r\nz' | cli -x set bin >/dev/null
    [ "$(cli --no-raw get bin)" = '"x\x00y\r\nz"' ]
    stop_server
}

@test "13 redis-cli: SET NX and XX, INCR and DECR, and their errors" {
    need_cli
    start_server 13-redis
    is set k v nx -- OK
    is set k w nx -- ""
    is get k -- v
    is set k w xx -- OK
    is set missing w xx -- ""
    is exists missing -- 0
    is set k v nx xx -- "ERR syntax error"
    is incr counter -- 1
    is incr counter -- 2
    is decr counter -- 1
    is decr fresh -- -1
    is incr k -- "ERR value is not an integer or out of range"
    is set padded 007 -- OK                 # integers as Redis reads them: no leading zeros,
    is incr padded -- "ERR value is not an integer or out of range"
    printf '\n5' | cli -x set spaced >/dev/null    # no leading white space of any kind
    is incr spaced -- "ERR value is not an integer or out of range"
    is set big 9223372036854775807 -- OK
    is incr big -- "ERR increment or decrement would overflow"
    is get big -- 9223372036854775807
    stop_server
}

@test "13 redis-cli: SET EX/PX and EXPIRE set a TTL; TTL says -1 and -2; bad times are refused" {
    need_cli
    start_server 13-redis
    is set k v ex 100 -- OK
    is ttl k -- 100
    is set k v px 50000 -- OK
    is ttl k -- 50
    is set k v -- OK                    # a plain SET clears the TTL
    is ttl k -- -1
    is ttl missing -- -2
    is expire k 30 -- 1
    is ttl k -- 30
    is incr n -- 1
    is expire n 40 -- 1
    is incr n -- 2                      # INCR keeps the TTL
    is ttl n -- 40
    is expire missing 10 -- 0
    is set k v ex 0 -- "ERR invalid expire time in 'set' command"
    is set k v ex soon -- "ERR value is not an integer or out of range"
    is expire k 9223372036854775807 -- "ERR invalid expire time in 'expire' command"
    is expire k -1 -- 1                 # a deadline in the past deletes the key
    is exists k -- 0
    stop_server
}

@test "13 redis-cli: EXPIRE runs out: the key is gone, TTL says -2" {
    need_cli
    start_server 13-redis
    is set k v -- OK
    is expire k 1 -- 1
    is get k -- v
    wait_until 5 value_is "" cli get k
    is ttl k -- -2
    is set p v px 300 -- OK
    wait_until 5 value_is "" cli get p
    stop_server
}

@test "13 expiry: lazily, on access: with the timer's sampling off (--expire-budget 0), GET still never sees an expired key" {
    need_cli
    start_server 13-redis -v --expire-budget 0
    is set k v px 300 -- OK
    is get k -- v
    wait_until 5 value_is "" cli get k
    is exists k -- 0
    stop_server
    [ "$(grep_count ' expired keys=' "$SERVER_ERR")" -eq 0 ]      # the timer deleted nothing
}

@test "13 expiry: keys nobody reads again are deleted by the timer, a bounded sample per tick" {
    need_cli
    start_server 13-redis -v
    # 1000 keys with a 200 ms TTL, and never a lookup of any of them
    for i in $(seq 1000); do printf 'SET key:%d v PX 200\n' "$i"; done | cli >/dev/null
    wait_until 10 grep -q ' expired keys=.* left-with-deadline=0$' "$SERVER_ERR"
    # bounded per tick: no tick deleted more than its budget of 200
    awk '/ expired keys=/ { split($3, k, "="); if (k[2] > 200) bad = 1 } END { exit bad }' "$SERVER_ERR"
    # more than one tick did the work
    (( $(grep_count ' expired keys=' "$SERVER_ERR") >= 5 ))
    stop_server
}

@test "13 redis-cli: unknown commands and wrong arity get Redis's error, and the connection goes on" {
    need_cli
    start_server 13-redis
    run cli <<<$'FLUSHALL now\nGET\nSET k v\nGET k'
    echo "$output"
    [ "${lines[0]}" = "ERR unknown command 'FLUSHALL', with args beginning with: 'now' " ]
    [ "${lines[1]}" = "ERR wrong number of arguments for 'get' command" ]
    [ "${lines[2]}" = "OK" ]
    [ "${lines[3]}" = "v" ]
    stop_server
    # 5: redis-cli reading from stdin first asks COMMAND DOCS, for its hints
    grep -qx 'server: served 1 connections, 5 commands' "$SERVER_ERR"
}

@test "13 redis-cli: HELLO 2, HELLO 3 refused, CLIENT SETNAME/GETNAME/ID, COMMAND, CONFIG GET" {
    need_cli
    start_server 13-redis
    run cli hello 2
    [[ "$output" == *$'server\nredis\nversion\n'*$'proto\n2\n'* ]]
    is hello 3 -- "NOPROTO unsupported protocol version"
    run cli <<<$'CLIENT SETNAME me\nCLIENT GETNAME\nCLIENT ID\nCLIENT KILL x'
    [ "${lines[0]}" = OK ]
    [ "${lines[1]}" = me ]
    [[ "${lines[2]}" =~ ^[0-9]+$ ]]
    [ "${lines[3]}" = "ERR unknown subcommand 'KILL'. Try CLIENT HELP." ]
    is command count -- 21
    is command docs -- ""
    is config get save -- 'save\n'
    stop_server
}

# ---- publish / subscribe ----

@test "13 pub/sub: SUBSCRIBE in one redis-cli, PUBLISH in another: the message arrives; UNSUBSCRIBE" {
    need_cli
    start_server 13-redis
    local got="$BATS_TEST_TMPDIR/sub.out"
    background bash -c "exec redis-cli -p $PORT subscribe news sport >'$got'"
    wait_until 5 file_has "$got" 2              # subscribed to 2 channels
    is publish news "hello subscribers" -- 1
    is publish weather rain -- 0
    wait_until 5 file_has "$got" "hello subscribers"
    diff <(printf 'subscribe\nnews\n1\nsubscribe\nsport\n2\nmessage\nnews\nhello subscribers\n') "$got"
    # in subscribe mode, only the pub/sub commands (and PING, QUIT) are allowed
    local s
    open_conn s
    send "$s" '*2\r\n$9\r\nSUBSCRIBE\r\n$1\r\nc\r\n'
    [ "$(reply "$s")" = '*3' ]; reply "$s" >/dev/null; reply "$s" >/dev/null; reply "$s" >/dev/null
    reply "$s" >/dev/null; [ "$(reply "$s")" = ':1' ]
    send "$s" 'GET k\r\nPING\r\nUNSUBSCRIBE\r\nGET k\r\n'
    [ "$(reply "$s")" = "-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context" ]
    [ "$(reply "$s")" = '*2' ]; reply "$s" >/dev/null; [ "$(reply "$s")" = 'pong' ]
    reply "$s" >/dev/null; reply "$s" >/dev/null                    # $0 and the empty string
    [ "$(reply "$s")" = '*3' ]; reply "$s" >/dev/null; [ "$(reply "$s")" = unsubscribe ]
    reply "$s" >/dev/null; [ "$(reply "$s")" = c ]; [ "$(reply "$s")" = ':0' ]
    [ "$(reply "$s")" = '$-1' ]                                      # GET k: allowed again
    stop_server
}

@test "13 pub/sub: a subscriber that never reads is cut off; publishers and other clients never stall" {
    need_cli
    start_server 13-redis -v --pubsub-limit 65536
    # A subscriber with a small receive window, that never reads
    python3 - "$PORT" <<'EOF' &
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"SUBSCRIBE firehose\r\n")
time.sleep(60)
EOF
    BACKGROUND_PIDS+=($!)
    wait_until 5 value_is 1 cli publish firehose hello
    # 4 KiB messages until its unsent messages pass 64 KiB (after the
    # kernel's buffers have filled); each PUBLISH returns at once.
    local msg i
    msg=$(head -c 4096 /dev/zero | tr '\0' m)
    for i in $(seq 2000); do printf 'PUBLISH firehose %s\n' "$msg"; done | cli >"$BATS_TEST_TMPDIR/pub.out"
    grep -qx 0 "$BATS_TEST_TMPDIR/pub.out"                 # after the cut: nobody listens
    grep -Eq '^[0-9]+ cut fd=[0-9]+ queued=[0-9]+ reason=not-reading$' "$SERVER_ERR"
    is publish firehose again -- 0
    is ping -- PONG
    stop_server
}

# ---- pipelining ----

@test "13 pipelining: 200 requests in one write are answered in order, in one write" {
    need_cli
    start_server 13-redis -v
    local c i expect=""
    open_conn c
    local batch=""
    for i in $(seq 100); do
        batch+="*3\r\n\$3\r\nSET\r\n\$1\r\nk\r\n\$${#i}\r\n$i\r\n*2\r\n\$3\r\nGET\r\n\$1\r\nk\r\n"
    done
    send "$c" "$batch"
    for i in $(seq 100); do
        [ "$(reply "$c")" = "+OK" ]
        [ "$(reply "$c")" = "\$${#i}" ]
        [ "$(reply "$c")" = "$i" ]
    done
    close_conn "$c"
    stop_server
    # the 200 replies: one read (or a few, as TCP delivered them), and as many writes as reads
    local fd reads writes
    fd=$(sed -n 's/.* peer 127.0.0.1:[0-9]* fd=\([0-9]*\)$/\1/p' "$SERVER_ERR" | head -1)
    reads=$(grep -Ec " read fd=$fd n=[1-9]" "$SERVER_ERR")
    writes=$(grep -Ec " write fd=$fd n=" "$SERVER_ERR")
    echo "reads=$reads writes=$writes"
    (( writes <= reads && writes >= 1 ))
}

@test "13 inline commands: what a person types at nc works, quotes included; QUIT closes" {
    start_server 13-redis
    local c
    open_conn c
    send "$c" 'PING\r\nSET greeting "hello world"\r\n\r\nget greeting\nECHO "unterminated\r\nPING\r\n'
    [ "$(reply "$c")" = "+PONG" ]
    [ "$(reply "$c")" = "+OK" ]
    [ "$(reply "$c")" = '$11' ]
    [ "$(reply "$c")" = 'hello world' ]
    [ "$(reply "$c")" = "-ERR Protocol error: unbalanced quotes in request" ]
    closed "$c"
    open_conn c
    send "$c" 'QUIT\r\nPING\r\n'
    [ "$(reply "$c")" = "+OK" ]
    closed "$c"             # nothing after QUIT is answered
    stop_server
}

# ---- bad input ----

# bad INPUT ERROR [OPTIONS...]: a fresh server gets INPUT on a raw socket,
# replies -ERROR and closes; the server still serves another client.
bad() {
    local input=$1 error=$2 c; shift 2
    start_server 13-redis "$@"
    open_conn c
    send "$c" "$input"
    local got
    got=$(reply "$c")
    echo "got: $got"
    [ "$got" = "-$error" ]
    closed "$c"
    open_conn c
    send "$c" 'PING\r\n'
    [ "$(reply "$c")" = "+PONG" ]
    stop_server
}

@test "13 bad input: a malformed request gets a protocol error and a closed connection" {
    bad '*1\r\n+PING\r\n' "ERR Protocol error: expected '\$', got '+'"
    bad '*x\r\n' "ERR Protocol error: invalid multibulk length"
    bad '*1\r\n$abc\r\n' "ERR Protocol error: invalid bulk length"
    bad '*1\r\n$4\r\nPINGxx' "ERR Protocol error: expected CRLF after a bulk string"
    bad '*1\r\n$-1\r\n' "ERR Protocol error: invalid bulk length"
    bad '*12345678901234567890123456789012\r\n' "ERR Protocol error: too big mbulk count string"
}

@test "13 bad input: a bulk over the limit (default 1 MiB, --max-bulk) is refused at its header" {
    bad '*2\r\n$4\r\nECHO\r\n$1048577\r\n' "ERR Protocol error: invalid bulk length"
    bad '*2\r\n$4\r\nECHO\r\n$11\r\n' "ERR Protocol error: invalid bulk length" --max-bulk 10
    # exactly the limit is fine
    start_server 13-redis --max-bulk 10
    local c
    open_conn c
    send "$c" '*2\r\n$4\r\nECHO\r\n$10\r\n0123456789\r\n'
    [ "$(reply "$c")" = '$10' ]
    [ "$(reply "$c")" = 0123456789 ]
    stop_server
}

@test "13 bad input: an absurd multibulk count costs nothing and is refused; a request over 4x the bulk limit too" {
    bad '*9999999999\r\n' "ERR Protocol error: invalid multibulk length"
    # a million arguments announced, and only the ones that come are stored
    start_server 13-redis --max-bulk 16
    local c
    open_conn c
    send "$c" '*1000000\r\n$4\r\nMSET\r\n'
    # 4 x 16 + 64 KiB = 65,600 bytes at most: 2,990 arguments of 22 bytes pass
    # it. The server may close while the last few are still being written: in
    # a subshell that ignores SIGPIPE, so that the write fails instead of the test.
    (trap '' PIPE; printf '$16\r\n0123456789abcdef\r\n%.0s' $(seq 2990)) >&"$c" 2>/dev/null || true
    [ "$(reply "$c")" = "-ERR Protocol error: request too big" ]
    closed "$c"
    is_alive
    stop_server
}

is_alive() {
    local c
    open_conn c
    send "$c" 'PING\r\n'
    [ "$(reply "$c")" = "+PONG" ]
    close_conn "$c"
}

@test "13 bad input: trickling the end of a 3.5 MB request costs the bytes sent, not a re-parse of the request each time" {
    # *500301, DEL and 499,999 one-byte keys at once (3.5 MB, inside the
    # request limit); then 300 more keys, 7 bytes each, each sent only once
    # the -v trace shows the server has read the one before: 300 reads of 7
    # bytes. A parser that went back to the request's start would scan
    # 500,000 headers on each (milliseconds of CPU); a resumed one parses the
    # 7 bytes. CPU time from /proc, per read: accounting, not a stopwatch.
    start_server 13-redis -v
    run timeout 120 python3 - "$PORT" "$SERVER_PID" "$SERVER_ERR" <<'EOF'
import os, socket, sys, time
port, pid, trace_path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
HEAD, KEY, TRICKLE = b"*500301\r\n$3\r\nDEL\r\n", b"$1\r\nx\r\n", 300

def cpu_ticks():        # user + system time of the server, in clock ticks
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])

trace, pending, read_bytes, reads = open(trace_path), "", 0, 0
def poll_trace():       # the server's reads, from its -v trace ("123 read fd=5 n=7")
    global pending, read_bytes, reads
    pending += trace.read()
    *lines, pending = pending.split("\n")
    for words in (line.split() for line in lines):
        if len(words) == 4 and words[1] == "read" and words[3].startswith("n="):
            reads += 1
            read_bytes += int(words[3][2:])

def wait_for_server_to_read(total, seconds):
    deadline = time.monotonic() + seconds
    poll_trace()
    while read_bytes < total:
        if time.monotonic() > deadline:
            sys.exit(f"gave up after {seconds} s: the server read {read_bytes} bytes of {total}")
        time.sleep(0.001)
        poll_trace()

s = socket.create_connection(("127.0.0.1", port))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
s.sendall(HEAD + KEY * 499999)
sent = len(HEAD) + len(KEY) * 499999
wait_for_server_to_read(sent, 60)
ticks, reads_before = cpu_ticks(), reads
for _ in range(TRICKLE):
    s.sendall(KEY)
    sent += len(KEY)
    wait_for_server_to_read(sent, 10)
ticks, trickle_reads = cpu_ticks() - ticks, reads - reads_before
s.sendall(KEY)                          # the last key: the request is complete
s.settimeout(60)
reply = s.recv(100)
print(f"{trickle_reads} reads, {ticks * 1000 // os.sysconf('SC_CLK_TCK')} ms of server CPU, reply {reply!r}")
EOF
    echo "$output"
    [ "$status" -eq 0 ]
    local reads ms
    read -r reads _ ms _ <<<"$output"
    # DEL of 500,300 keys nobody set: the request came whole, and parsed right
    [[ "$output" == *"reply b':0\\r\\n'" ]]
    # 300 reads (fewer if TCP joined some): well under 0.5 ms of CPU each
    (( reads >= 1 && ms < 150 ))
    is_alive
    stop_server
}

@test "13 bad input: an inline line over 64 KiB without its end is refused" {
    start_server 13-redis
    local c
    open_conn c
    # (the server may close before the last bytes are written: a broken pipe is fine)
    head -c 70000 /dev/zero | tr '\0' 'a' >&"$c" 2>/dev/null || true
    [ "$(reply "$c")" = "-ERR Protocol error: too big inline request" ]
    closed "$c"
    is_alive
    stop_server
}

@test "13 bad input: a client that pipelines GETs of a 1 MiB value and never reads holds bounded memory, and stalls nobody" {
    need_cli
    start_server 13-redis
    head -c 1000000 /dev/zero | tr '\0' v | cli -x set big >/dev/null
    local base
    base=$(awk '/^VmHWM:/ { print $2 }' "/proc/$SERVER_PID/status")     # peak so far
    # 2,000 GETs of 1 MB each (2 GB of replies) from a client that never reads
    python3 - "$PORT" <<'EOF' &
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
req = b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n" * 2000
s.settimeout(30)
try:
    s.sendall(req)
except OSError:
    pass
time.sleep(30)
EOF
    BACKGROUND_PIDS+=($!)
    wait_until 10 value_at_least 1 client_count
    # Others are served meanwhile, with the big value too
    local i
    for i in 1 2 3; do
        [ "$(cli get big | wc -c)" -eq 1000001 ]
    done
    is ping -- PONG
    # It is held, not dropped: its task waits in drain, and it is not read
    (( $(client_count) >= 1 ))
    local peak
    peak=$(awk '/^VmHWM:/ { print $2 }' "/proc/$SERVER_PID/status")
    echo "rss before: $base KiB, peak with the never-reader and three 1 MB GETs: $peak KiB"
    sanitized "$CH/server" || (( peak - base < 8 * 1024 ))
    stop_server
}

@test "13 bad input: out of descriptors (limit 64, 200 clients) it neither dies nor spins, and serves again after" {
    need_cli
    start_server_limited 64 13-redis -v
    python3 - "$PORT" <<'EOF' &
import socket, sys, time
held = []
for _ in range(200):
    try:
        held.append(socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5))
    except OSError:
        pass
time.sleep(3)
EOF
    BACKGROUND_PIDS+=($!)
    wait_until 10 grep -q 'shed reason=EMFILE' "$SERVER_ERR"
    local cpu
    cpu=$(cpu_percent "$SERVER_PID" 1)
    echo "cpu while out of descriptors: ${cpu}% of a core"
    (( cpu <= 50 ))
    wait_until 15 value_is PONG cli ping
    stop_server
}

# ---- protected mode and AUTH ----

# A non-loopback address of this machine, to connect from (the kernel uses it
# as the source when we connect to it), or nothing.
own_address() {
    local addr
    addr=$(hostname -I 2>/dev/null | tr ' ' '\n' | grep -E '^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$' | grep -v '^127\.' | head -1)
    [[ -n "$addr" ]] && echo "$addr"
}

@test "13 protected mode: without --requirepass, a client from a non-loopback address is refused with DENIED" {
    local addr c
    addr=$(own_address) || skip "this machine has no non-loopback IPv4 address to connect from"
    start_server 13-redis --host 0.0.0.0 -v
    exec {c}<>"/dev/tcp/$addr/$PORT"
    # sent at once, before any request (one sent now would be unread when the
    # server closes, and the kernel would answer it with a reset)
    [[ "$(reply "$c")" == "-DENIED Running in protected mode"* ]]
    closed "$c"
    grep -Eq " denied fd=[0-9]+ reason=protected-mode$" "$SERVER_ERR"
    # loopback clients are served as always
    is_alive
    stop_server
}

@test "13 AUTH: with --requirepass, every client must AUTH first (a non-loopback one is then accepted)" {
    need_cli
    local addr c
    addr=$(own_address) || skip "this machine has no non-loopback IPv4 address to connect from"
    start_server 13-redis --host 0.0.0.0 --requirepass 's3cret pass'
    exec {c}<>"/dev/tcp/$addr/$PORT"
    send "$c" 'PING\r\nAUTH wrong\r\nAUTH nobody "s3cret pass"\r\nAUTH "s3cret pass"\r\nPING\r\n'
    [ "$(reply "$c")" = "-NOAUTH Authentication required." ]
    [ "$(reply "$c")" = "-WRONGPASS invalid username-password pair or user is disabled." ]
    [ "$(reply "$c")" = "-WRONGPASS invalid username-password pair or user is disabled." ]
    [ "$(reply "$c")" = "+OK" ]
    [ "$(reply "$c")" = "+PONG" ]
    # loopback clients must AUTH too; redis-cli does it with -a
    is ping -- "NOAUTH Authentication required."
    run bash -c "timeout 5 redis-cli -p $PORT -a 's3cret pass' --no-auth-warning set k v"
    [ "$output" = OK ]
    run bash -c "timeout 5 redis-cli -p $PORT --user default --pass 's3cret pass' --no-auth-warning get k"
    [ "$output" = v ]
    stop_server
}

@test "13 AUTH: without a password set, AUTH says so, as Redis does" {
    need_cli
    start_server 13-redis
    is auth x -- "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"
    stop_server
}

# ---- real clients, and the fuzzer ----

@test "13 redis-benchmark: SET, GET, INCR, MSET, PING, at pipeline 1 and 16, without a complaint" {
    command -v redis-benchmark >/dev/null ||
        skip "redis-benchmark is not installed (apt-get install redis-tools; .ci/run installs it)"
    start_server 13-redis
    local pipeline
    for pipeline in 1 16; do
        run timeout 60 redis-benchmark -p "$PORT" -n 2000 -c 10 -P "$pipeline" -t ping,set,get,incr,mset -q
        echo "$output"
        [ "$status" -eq 0 ]
        [ "$(grep -c 'requests per second' <<<"$output")" -eq 6 ]     # PING is two tests
        if grep -Ei 'error|warn|could not' <<<"$output"; then return 1; fi     # (! would not fail a test)
    done
    stop_server
}

@test "13 fuzz: the request parser runs clean under libFuzzer for a few seconds (make fuzz)" {
    command -v clang >/dev/null || skip "clang is not installed (apt-get install clang)"
    # MAKEFLAGS cleared: the fuzzer has its own sanitizers, whatever this run was built with
    run env MAKEFLAGS= make --no-print-directory -C "$CH" fuzz FUZZ_SECONDS=5
    echo "$output" | tail -5
    [[ "$output" != *"fuzzer"*"unsupported"* ]] || skip "clang here cannot build libFuzzer targets"
    [ "$status" -eq 0 ]
    [[ "$output" == *"Done "*" runs in "* ]]
}
