# Claims shared by the single-threaded readiness servers (chapters 04-07),
# each called from that chapter's own suite with the chapter (and options).

# A client that sends 64 MiB and never reads its echo: the server stops
# reading it once its buffer is full (back-pressure), so its memory stays
# bounded, and a second client is served meanwhile.
never_reader_is_bounded() {
    start_server "$@"
    local before after
    before=$(rss_kib "$SERVER_PID")
    "$CLIENT" --port "$PORT" --bytes 67108864 --no-read --timeout 3 \
        2>"$BATS_TEST_TMPDIR/stuck.err" 3>&- &
    BACKGROUND_PIDS+=($!)
    run "$CLIENT" --port "$PORT" --bytes 1000000 --timeout 10
    [ "$status" -eq 0 ]
    # The stuck client gives up sending after 3 s: the kernel's buffers and
    # the server's one buffer hold all it managed to send.
    wait_until 10 grep -q '^sent ' "$BATS_TEST_TMPDIR/stuck.err"
    local sent
    sent=$(sed -n 's/^sent \([0-9]*\) bytes.*/\1/p' "$BATS_TEST_TMPDIR/stuck.err")
    (( sent < 67108864 ))
    after=$(rss_kib "$SERVER_PID")
    echo "rss before=${before} KiB after=${after} KiB, client sent ${sent} bytes"
    (( after - before < 4096 ))
    # A connection whose buffer is full must leave the readable set, or a
    # readiness loop wakes for it forever. (04 spins anyway: not checked.)
    if [[ "$1" != 04-* ]]; then
        local cpu
        cpu=$(cpu_percent "$SERVER_PID" 1)
        echo "cpu with the stuck client connected: ${cpu}% of a core"
        (( cpu < 50 ))
    fi
    stop_server
}

# 10,000 connections at once, every one of them echoes.
ten_thousand_connections() {
    local hard
    hard=$(ulimit -Hn)
    [[ "$hard" == unlimited ]] || (( hard >= 10100 )) ||
        skip "the hard descriptor limit is $hard; 10,000 connections need 10,100"
    ulimit -n "$hard"
    start_server "$@"
    run "$LOADGEN" --port "$PORT" --idle --connections 10000 --timeout 60
    echo "$output"
    [ "$status" -eq 0 ]
    [[ "$output" == *"idle connections=10000 opened=10000 echoed=10000 errors=0"* ]]
    stop_server
    grep -q 'served 10000 connections' "$SERVER_ERR"
}

# With its descriptor limit at 64, 200 clients connect at once: the server
# sheds those it cannot hold instead of dying, and serves again afterwards.
# (Without the reserve descriptor, a level-triggered loop would spin on a
# listener that stays readable; 04 spins anyway, so its caller gives it a
# bound it cannot exceed: 200, since a one-second sample can read over 100.)
survives_emfile() {
    local max_cpu=$1; shift
    start_server_limited 64 "$@" -v
    "$LOADGEN" --port "$PORT" --idle --connections 200 --hold 3 --timeout 10 \
        >"$BATS_TEST_TMPDIR/flood.out" 2>&1 3>&- &
    BACKGROUND_PIDS+=($!)
    wait_until 10 grep -q 'shed reason=EMFILE' "$SERVER_ERR"
    local cpu
    cpu=$(cpu_percent "$SERVER_PID" 1)
    echo "cpu while out of descriptors: ${cpu}% of a core"
    (( cpu <= max_cpu ))
    wait_until 15 grep -q '^idle ' "$BATS_TEST_TMPDIR/flood.out"
    run "$CLIENT" --port "$PORT" --bytes 1000
    [ "$status" -eq 0 ]
    stop_server
}

# cpu_with_idle_client: echo the share of a core the running server uses
# over one second with one idle client connected. (It runs inside $(...), so
# it must not start the server: the test's teardown would not know the pid.)
cpu_with_idle_client() {
    local conn
    open_conn conn
    echo_once "$conn" "then silence"
    cpu_percent "$SERVER_PID" 1
    close_conn "$conn"
}

# idle_memory_is_small CHAPTER BYTES [OPTIONS...]: with 10,000 idle
# connections, the server's RSS grows by less than BYTES per connection.
idle_memory_is_small() {
    local chapter=$1 limit=$2 hard before after
    shift 2
    sanitized "$ROOT/chapters/$chapter/server" &&
        skip "AddressSanitizer's redzones and shadow memory: no per-connection bound to check"
    hard=$(ulimit -Hn)
    [[ "$hard" == unlimited ]] || (( hard >= 10100 )) ||
        skip "the hard descriptor limit is $hard; 10,000 connections need 10,100"
    ulimit -n "$hard"
    start_server "$chapter" -v "$@"
    before=$(rss_kib "$SERVER_PID")
    "$LOADGEN" --port "$PORT" --idle --connections 10000 --hold 60 --timeout 60 \
        >"$BATS_TEST_TMPDIR/idle.out" 2>&1 3>&- &
    BACKGROUND_PIDS+=($!)
    wait_until 60 grep -q '^connected=10000$' "$BATS_TEST_TMPDIR/idle.out"
    # "connected" means the client saw its handshake finish. When the listen
    # queue overflows, the server side drops the last ACK and completes the
    # connection only when it resends its SYN-ACK (after 1, 2, 4, ... s): on a
    # busy machine the last accepts can take a minute.
    wait_until 90 value_is 10000 grep_count ' accept fd=' "$SERVER_ERR"
    after=$(rss_kib "$SERVER_PID")
    echo "rss before=${before} KiB with 10,000 idle=${after} KiB: $(( (after - before) * 1024 / 10000 )) bytes each"
    (( (after - before) * 1024 / 10000 < limit ))
    stop_server
}
