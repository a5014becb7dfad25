#!/usr/bin/env bats
# The contract every server keeps (README.md, "The contract every server
# keeps"), run against one chapter's server:
#   CHAPTER=05-select bats tests/conformance.bats
#   CHAPTER=07-epoll SERVER_ARGS=--edge bats tests/conformance.bats
# tests/run runs it for every chapter that is built, and again for each
# option that changes a chapter's model (03 --pool, 07 --edge).
# The last test stops the server at random moments, STOP_TRIES times (default
# 50); to hunt a rare race, try harder:
#   STOP_TRIES=500 CHAPTER=02-fork bats -f 'random moments' tests/conformance.bats

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

# The stop contract under races. SIGTERM lands at a random moment around
# fresh connections: as soon as the server listens (1-4 clients connect just
# after), right as the last of 1-4 clients connects (while the server accepts
# them and forks or starts a thread for each), or 0-10 ms later (while it
# reads); some clients have sent a line. Each time the server must exit 0
# within STOP_BOUND seconds (the contract says one, so the slowest stop is
# reported; the bound leaves room for a busy machine), print exactly one
# summary line on stderr, and leave no process and no connection behind.
#   STOP_TRIES  how many tries (default 50: about 1 s per server, 2 s under
#               ASan). A race lost once in 30 tries (as 02's fork race was)
#               fails the test in 4 runs of 5 at the default; at 500, all
#               but always.
#   STOP_SEED   replays a run's schedule (clients, lines, moments) from the
#               seed it printed; the timing itself cannot be replayed.
STOP_TRIES=${STOP_TRIES:-50}
STOP_BOUND=5

# nap US: sleep US microseconds (under a second) without starting a process
# (sleep(1) takes longer than the delays here): a read that times out on a
# FIFO nobody writes (NAP_FD).
nap() {
    (( $1 > 0 )) || return 0
    read -r -t "0.$(printf '%06d' "$1")" -u "$NAP_FD" || true
}

# now_us: sets NOW to the time in microseconds (no subshell: cheap in a loop).
now_us() {
    NOW=${EPOCHREALTIME/./}
}

# start_server_now TAG: start the server with its stdout on a FIFO and read
# its "listening on" line from there: the read returns the moment the line is
# written, so a signal sent next can land while the server is still starting
# up. TAG goes in the server's environment, where any process it forks keeps
# it. Sets SERVER_PID, PORT and OUT_FD (the FIFO, for stop_try).
start_server_now() {
    local line
    SERVER_ERR="$BATS_TEST_TMPDIR/server.err"
    STOP_TRY_TAG=$1 "$ROOT/chapters/$CHAPTER/server" --port 0 $SERVER_ARGS \
        >"$BATS_TEST_TMPDIR/out" 2>"$SERVER_ERR" 3>&- {NAP_FD}>&- &
    SERVER_PID=$!
    exec {OUT_FD}<"$BATS_TEST_TMPDIR/out"    # waits for the server's end to open
    if ! IFS= read -r -t 10 -u "$OUT_FD" line || ! [[ "$line" =~ ^listening\ on\ .*:([0-9]+)$ ]]; then
        echo "the server did not start; its stderr:"; cat "$SERVER_ERR"
        exited "$SERVER_PID" || kill -KILL "$SERVER_PID"
        wait "$SERVER_PID"
        exec {OUT_FD}<&-
        return 1
    fi
    PORT=${BASH_REMATCH[1]}
}

# stop_try N: one try. Prints what went wrong and returns 1 if anything did;
# sets STOP_MS to the time the server took to exit.
stop_try() {
    local try=$1 tag="stop-try-$$-$1" clients=$(( 1 + RANDOM % 4 )) when=$(( RANDOM % 3 ))
    local delay=0 fds=() fd i sent=0 senders="" started line leftover failed=0 rc
    (( when == 2 )) && delay=$(( (RANDOM << 15 | RANDOM) % 10001 ))
    STOP_MS=0
    start_server_now "$tag" || return 1
    # when 0: the clients connect just after the signal, and may be refused.
    if (( when == 0 )); then
        now_us; started=$NOW
        kill -TERM "$SERVER_PID"
    fi
    for (( i = 0; i < clients; i++ )); do
        if ! { exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"; } 2>/dev/null; then
            (( when == 0 )) && continue
            echo "try $try: client $i cannot connect"
            failed=1
            break
        fi
        fds+=("$fd")
        # Only before the signal: a write to a connection the server has
        # reset would raise SIGPIPE here.
        if (( when > 0 && RANDOM % 2 )); then
            printf 'try %d client %d\n' "$try" "$i" >&"$fd"
            sent=$(( sent + ${#try} + ${#i} + 13 ))
            senders+="$i "
        fi
    done
    if (( when > 0 )); then
        nap "$delay"
        now_us; started=$NOW
        kill -TERM "$SERVER_PID"
    fi
    # The server and every process it forked hold the FIFO open: end of file
    # there says they are all gone. A line instead would break the contract.
    local more_output=""
    rc=0
    while (( rc == 0 )); do
        IFS= read -r -t "$STOP_BOUND" -u "$OUT_FD" line || rc=$?
        [[ -n "$line" ]] && more_output+="$line "
    done
    now_us; STOP_MS=$(( (NOW - started) / 1000 ))
    exec {OUT_FD}<&-
    for (( i = 0; i < 1000 && rc == 1; i++ )); do     # its exit follows the close
        exited "$SERVER_PID" && break
        nap 1000
    done
    exited "$SERVER_PID" || kill -KILL "$SERVER_PID"
    EXIT_STATUS=0
    wait "$SERVER_PID" 2>/dev/null || EXIT_STATUS=$?
    SERVER_PID=

    local what="try $try: $clients clients (a line from: ${senders:-none}), SIGTERM "
    case $when in
        0) what+="as soon as it listened, before they connected" ;;
        *) what+="$delay us after the last one connected" ;;
    esac
    if [[ -n "$more_output" ]]; then
        echo "$what: more on stdout than the 'listening on' line: $more_output"
        failed=1
    fi
    if (( EXIT_STATUS != 0 )); then
        (( EXIT_STATUS == 137 )) && EXIT_STATUS+=" (still running after $STOP_BOUND s: killed)"
        echo "$what: exit status $EXIT_STATUS after $STOP_MS ms"
        failed=1
    fi
    local summary='^server: served ([0-9]+) connections?, echoed ([0-9]+) bytes( \(per thread:[0-9 ]+\))?$'
    if ! { read -r line <"$SERVER_ERR" && [[ "$(wc -l <"$SERVER_ERR")" -eq 1 && "$line" =~ $summary ]]; }; then
        echo "$what: stderr is not exactly one summary line"
        failed=1
    elif (( BASH_REMATCH[1] > clients || BASH_REMATCH[2] > sent )); then
        echo "$what: the summary counts more than the $clients clients and $sent bytes sent"
        failed=1
    fi
    # A process the server forked carries its environment, and so the tag.
    leftover=$(grep -lsa "STOP_TRY_TAG=$tag" /proc/[0-9]*/environ | cut -d/ -f3 | tr '\n' ' ')
    if [[ -n "$leftover" ]]; then
        echo "$what: processes left behind: $leftover"
        kill -KILL $leftover 2>/dev/null
        failed=1
    fi
    # Every connection has been closed: whatever echo there is, then the end.
    # A client that connected while the listener was being torn down can be
    # left half-open by the kernel (it saw the handshake complete; no socket
    # is left on the server's side, nor any process to hold one). A byte sent
    # then draws a reset: only a connection that something still holds stays
    # open after it. (A subshell ignores the SIGPIPE a closed one may raise.)
    for fd in "${fds[@]}"; do
        rc=0
        while (( rc == 0 )); do
            IFS= read -r -t 2 -u "$fd" line 2>/dev/null || rc=$?
        done
        if (( rc > 128 )); then
            ( trap '' PIPE; printf 'anyone?\n' >&"$fd" ) 2>/dev/null
            rc=0
            while (( rc == 0 )); do
                IFS= read -r -t 2 -u "$fd" line 2>/dev/null || rc=$?
            done
        fi
        if (( rc > 128 )); then
            echo "$what: a connection is still open 2 s after the server exited"
            failed=1
        fi
        exec {fd}>&-
    done
    if (( failed )); then
        echo "its stderr:"; sed 's/^/    /' "$SERVER_ERR"
    fi
    return "$failed"
}

@test "$LABEL: SIGTERM at random moments around fresh connections: exit 0, one summary, nothing left" {
    # bats runs a DEBUG trap before every command (about 0.3 ms each on a
    # 2-core machine): far coarser than the moments these tries aim at. Off
    # for the tries, back on for the verdict.
    local debug_trap
    debug_trap=$(trap -p DEBUG)
    trap - DEBUG
    mkfifo "$BATS_TEST_TMPDIR/nap" "$BATS_TEST_TMPDIR/out"
    exec {NAP_FD}<>"$BATS_TEST_TMPDIR/nap"
    local try failures=0 slowest=0 over_1s=0 seed=${STOP_SEED:-$$} begun
    now_us; begun=$NOW
    RANDOM=$seed
    # Three failed tries are evidence enough, and each may have cost STOP_BOUND.
    for (( try = 1; try <= STOP_TRIES && failures < 3; try++ )); do
        stop_try "$try" || (( ++failures ))
        (( STOP_MS > slowest )) && slowest=$STOP_MS
        (( STOP_MS > 1000 )) && (( ++over_1s ))
    done
    exec {NAP_FD}>&-
    eval "$debug_trap"
    now_us
    echo "# $LABEL: $(( try - 1 )) tries in $(( (NOW - begun) / 1000 )) ms (STOP_SEED=$seed):" \
         "$failures failed; slowest stop $slowest ms, $over_1s over 1 s" >&3
    (( failures == 0 ))
}
