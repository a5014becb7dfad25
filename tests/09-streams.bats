#!/usr/bin/env bats
# Chapter 09's claims: the stream module keeps asyncio's stream semantics (C
# unit tests, after asyncio's own), and the programs built on it work.

load helpers
load readiness
load chat

TEST_STREAM="$ROOT/chapters/09-streams/test_stream"

unit() { unit_case "$TEST_STREAM" "$1"; }

@test "09 stream: readline over the limit reports it, drops the long line, keeps the next" { unit readline-limit; }
@test "09 stream: readuntil over the limit reports it and keeps the data" { unit readuntil-limit-keeps-data; }
@test "09 stream: readuntil finds a separator split across reads" { unit readuntil-split-separator; }
@test "09 stream: readexactly at end of stream reports the partial bytes" { unit readexactly-eof; }
@test "09 stream: at_eof only once the end is seen and the buffer empty" { unit at-eof; }
@test "09 stream: a second pending read is an error, not a crash" { unit second-read-busy; }
@test "09 stream: ten queued writes arrive in order; drain (over the high-water mark) fires once, at the low-water mark" { unit writes-in-order-drain-once; }
@test "09 stream: close with writes pending delivers them, then closes" { unit close-delivers-pending-writes; }
@test "09 stream: write after close fails cleanly (EPIPE)" { unit write-after-close; }
@test "09 stream: a reset reaches the pending read as an error, and later reads too" { unit reset-reaches-read; }
@test "09 stream: half-close: read to the end, still write, then close" { unit half-close; }
@test "09 stream: a refused connect and an unresolvable name are reported from the loop" { unit connect-refused; }
@test "09 stream: a connect that gets no answer times out" { unit connect-timeout; }
@test "09 stream: reading pauses past twice the limit when nobody reads" { unit reading-pauses; }
@test "09 stream: drain completes at once below the 64 KiB high-water mark; past it, waits until the queue is back at 16 KiB" { unit drain-high-water; }
@test "09 stream: a withdrawn read never calls back and loses nothing; the next read gets exactly what it asks" { unit cancel-read; }
@test "09 stream: a connect given up before it completes never calls back and leaves nothing open" { unit cancel-connect; }

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

@test "09 chat: nicknames, broadcast to the others, /quit, and a line over the limit" {
    chat_conversation 09-streams
}

@test "09 chat: a member who never reads is cut off at the cap; the others chat on; memory stays bounded" {
    chat_cut_off 09-streams
}

@test "09 chat: SIGTERM with members connected exits 0 with its summary" {
    chat_sigterm 09-streams
}
