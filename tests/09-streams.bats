#!/usr/bin/env bats
# Chapter 09's claims: the stream module keeps asyncio's stream semantics (C
# unit tests, after asyncio's own), and the programs built on it work.

load helpers
load readiness

TEST_STREAM="$ROOT/chapters/09-streams/test_stream"

unit() {
    run "$TEST_STREAM" "$1"
    echo "$output"
    [ "$status" -eq 0 ]
    [ "$output" = "ok $1" ]
}

@test "09 stream: readline over the limit reports it, drops the long line, keeps the next" { unit readline-limit; }
@test "09 stream: readuntil over the limit reports it and keeps the data" { unit readuntil-limit-keeps-data; }
@test "09 stream: readuntil finds a separator split across reads" { unit readuntil-split-separator; }
@test "09 stream: readexactly at end of stream reports the partial bytes" { unit readexactly-eof; }
@test "09 stream: at_eof only once the end is seen and the buffer empty" { unit at-eof; }
@test "09 stream: a second pending read is an error, not a crash" { unit second-read-busy; }
@test "09 stream: ten queued writes arrive in order; drain fires once, at the low-water mark" { unit writes-in-order-drain-once; }
@test "09 stream: close with writes pending delivers them, then closes" { unit close-delivers-pending-writes; }
@test "09 stream: write after close fails cleanly (EPIPE)" { unit write-after-close; }
@test "09 stream: a reset reaches the pending read as an error, and later reads too" { unit reset-reaches-read; }
@test "09 stream: half-close: read to the end, still write, then close" { unit half-close; }
@test "09 stream: a refused connect and an unresolvable name are reported from the loop" { unit connect-refused; }
@test "09 stream: a connect that gets no answer times out" { unit connect-timeout; }
@test "09 stream: reading pauses past twice the limit when nobody reads" { unit reading-pauses; }

@test "09: with one idle client, the server uses under 2% of a core" {
    start_server 09-streams
    local cpu
    cpu=$(cpu_with_idle_client)
    echo "cpu: ${cpu}% of a core"
    (( cpu < 2 ))
    stop_server
}

@test "09: 10,000 simultaneous connections all echo" {
    ten_thousand_connections 09-streams
}

@test "09: 10,000 idle streams cost under 4 MiB above an idle server (under 420 bytes each)" {
    idle_memory_is_small 09-streams 420
}

@test "09: a client that sends 64 MiB and never reads stalls nobody, and memory stays bounded" {
    never_reader_is_bounded 09-streams
}

@test "09: out of descriptors (limit 64, 200 clients) it neither dies nor spins" {
    survives_emfile 50 09-streams
}

@test "09: client sends its arguments (or stdin) and prints the answer" {
    start_server 09-streams
    run "$ROOT/chapters/09-streams/client" --port "$PORT" hello from the client
    [ "$status" -eq 0 ]
    [ "$output" = "hello from the client" ]
    seq 1 1000 >"$BATS_TEST_TMPDIR/lines"
    "$ROOT/chapters/09-streams/client" --port "$PORT" <"$BATS_TEST_TMPDIR/lines" >"$BATS_TEST_TMPDIR/back"
    cmp "$BATS_TEST_TMPDIR/lines" "$BATS_TEST_TMPDIR/back"
    stop_server
    run "$ROOT/chapters/09-streams/client" --port "$PORT" nobody listens
    [ "$status" -eq 1 ]
    [[ "$output" == *"cannot connect"*"refused"* ]]
}

# expect FD TEXT: the next line on FD is TEXT (within 5 s).
expect() {
    local line
    IFS= read -r -t 5 line <&"$1" || { echo "no line on fd $1, expected: $2"; return 1; }
    [[ "$line" == "$2" ]] || { echo "got '$line', expected '$2'"; return 1; }
}

join_chat() {     # join_chat VAR NICK COUNT
    local -n conn=$1
    open_conn conn
    expect "$conn" "nickname?"
    printf '%s\n' "$2" >&"$conn"
    expect "$conn" "* welcome, $2 ($3 here)"
}

@test "09 chat: nicknames, broadcast to the others, /quit, and a line over the limit" {
    PROGRAM=chat start_server 09-streams --line-limit 64
    local a b c
    join_chat a ada 1
    join_chat b bob 2
    expect "$a" "* bob joined"
    join_chat c cy 3
    expect "$a" "* cy joined"
    expect "$b" "* cy joined"
    printf 'hello all\n' >&"$a"
    expect "$b" "[ada] hello all"
    expect "$c" "[ada] hello all"
    printf 'hi ada\n' >&"$b"
    expect "$a" "[bob] hi ada"              # not her own line first: nobody gets an echo
    expect "$c" "[bob] hi ada"
    printf '/quit\n' >&"$c"
    expect "$c" "bye"
    run bash -c "IFS= read -r -t 5 line <&$c"
    [ "$status" -eq 1 ]                     # then the server closes
    expect "$a" "* cy left"
    expect "$b" "* cy left"
    printf '%0200d\n' 7 >&"$a"              # 200 bytes: over the 64-byte limit
    expect "$a" "error: line too long (limit 64 bytes)"
    printf 'still here\n' >&"$a"
    expect "$b" "[ada] still here"          # connected, and no tail of the long line
    close_conn "$a"; close_conn "$b"; close_conn "$c"
    stop_server
}

@test "09 chat: a member who never reads is cut off at the cap; the others chat on; memory stays bounded" {
    PROGRAM=chat start_server 09-streams --max-queue 65536 -v
    local a b c before after
    before=$(rss_kib "$SERVER_PID")
    join_chat a ada 1
    join_chat b bob 2
    expect "$a" "* bob joined"
    join_chat c cy 3                        # cy will never read again
    expect "$a" "* cy joined"
    expect "$b" "* cy joined"
    cat <&"$b" >"$BATS_TEST_TMPDIR/bob.txt" 3>&- &
    BACKGROUND_PIDS+=($!)
    # 10 MB of chat from ada: far more than cy's socket buffers and 64 KiB cap.
    yes "$(printf '%0190d' 0)" | head -n 50000 >&"$a"
    wait_until 20 grep -q ' cut fd=[0-9]* nick=cy ' "$SERVER_ERR"
    printf 'after the cut\n' >&"$a"
    wait_until 20 grep -q '^\[ada\] after the cut$' "$BATS_TEST_TMPDIR/bob.txt"
    grep -q '^\* cy was disconnected (not reading)$' "$BATS_TEST_TMPDIR/bob.txt"
    [ "$(grep -c '^\[ada\] 0' "$BATS_TEST_TMPDIR/bob.txt")" -eq 50000 ]   # bob missed nothing
    after=$(rss_kib "$SERVER_PID")
    echo "rss before=${before} KiB after=${after} KiB"
    # (AddressSanitizer's quarantine holds freed buffers: no bound to check there.)
    sanitized "$ROOT/chapters/09-streams/chat" || (( after - before < 8192 ))
    close_conn "$a"; close_conn "$b"; close_conn "$c"
    stop_server
}

@test "09 chat: SIGTERM with members connected exits 0 with its summary" {
    PROGRAM=chat start_server 09-streams
    local a
    join_chat a ada 1
    stop_server
    grep -q '^chat: served 1 members, relayed 0 bytes$' "$SERVER_ERR"
    close_conn "$a"
}
