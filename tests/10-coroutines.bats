#!/usr/bin/env bats
# Chapter 10's claims: tasks keep their promises (C unit tests), the asyncio
# examples translated line by line behave as the Python does, and the echo
# server and chat on tasks keep chapter 09's claims.

load helpers
load readiness
load chat

CH="$ROOT/chapters/10-coroutines"
TEST_TASK="$CH/test_task"

unit() {
    run "$TEST_TASK" "$1"
    echo "$output"
    [ "$status" -eq 0 ]
    [ "${lines[-1]}" = "ok $1" ]
}

@test "10 task: sleepers wake in deadline order" { unit sleep-order; }
@test "10 task: join and gather return the tasks' results" { unit join-gather; }
@test "10 task: cancel while sleeping: sleep returns -ECANCELED and the task finishes normally" { unit cancel-sleeping; }
@test "10 task: cancel while reading; the read picked up again loses nothing" { unit cancel-reading; }
@test "10 task: cancel while draining to a peer that never reads" { unit cancel-draining; }
@test "10 task: a timeout that fires (-ETIMEDOUT) and the line that comes later is not lost" { unit timeout-fires; }
@test "10 task: a timeout that does not fire, and ends with its section" { unit timeout-not-fired; }
@test "10 task: a task that returns while others wait" { unit returns-while-others-wait; }
@test "10 task: 10,000 tasks spawned and finished, twice, joined and detached" { unit ten-thousand-tasks; }
@test "10 task: run_coroutine_threadsafe from another thread, 200 times" { unit threadsafe; }
@test "10 task: a stack overflow hits the guard page and is reported" { unit stack-overflow; }
@test "10 task: 1,000,000 switches make no system call (seccomp strict mode)" { unit switch-no-syscall; }

@test "10 task: switch cost is measured (reported, never asserted)" {
    unit switch-cost
    [[ "${lines[0]}" =~ ^#\ [0-9.]+\ ns\ per\ switch ]]
}

@test "10 task: strace sees no rt_sigprocmask per switch" {
    command -v strace >/dev/null || skip "strace is not installed"
    strace -f -c -o "$BATS_TEST_TMPDIR/strace.txt" "$TEST_TASK" switch-cost >/dev/null 2>&1 ||
        skip "strace cannot trace here"
    cat "$BATS_TEST_TMPDIR/strace.txt"
    local calls
    calls=$(awk '$NF == "total" { print $(NF-2) }' "$BATS_TEST_TMPDIR/strace.txt")
    echo "system calls in all, for 2,000,000 switches: $calls"
    (( calls < 10000 ))
}

@test "10 hello: Hello Hello World World: two tasks sleep at the same time" {
    run "$CH/hello"
    [ "$status" -eq 0 ]
    [ "$output" = "$(printf 'Hello\nHello\nWorld\nWorld')" ]
}

@test "10 client: sends its message to the server and prints the answer" {
    start_server 10-coroutines
    run "$CH/client" --port "$PORT" Hello World!
    [ "$status" -eq 0 ]
    [ "$output" = "Hello World!" ]
    run "$CH/client" --port "$PORT" --bytes 5 Hello World!
    [ "$status" -eq 0 ]
    [ "$output" = "Hello" ]                 # read(5): up to 5 bytes
    stop_server
    grep -q 'served 2 connections, echoed 26 bytes' "$SERVER_ERR"
    run "$CH/client" --port "$PORT" nobody listens
    [ "$status" -eq 1 ]
    [[ "$output" == *"cannot connect"*"refused"* ]]
}

@test "10 server: -v names each peer on stderr, never on stdout" {
    start_server 10-coroutines -v
    run "$CH/client" --port "$PORT" hi
    [ "$output" = "hi" ]
    stop_server
    grep -Eq '^[0-9]+ peer 127\.0\.0\.1:[0-9]+ fd=[0-9]+$' "$SERVER_ERR"
    [ "$(wc -l <"$SERVER_OUT")" -eq 1 ]
}

@test "10: with one idle client, the server uses under 2% of a core" {
    start_server 10-coroutines
    local cpu
    cpu=$(cpu_with_idle_client)
    echo "cpu: ${cpu}% of a core"
    (( cpu < 2 ))
    stop_server
}

@test "10: 10,000 simultaneous connections all echo, a task each" {
    ten_thousand_connections 10-coroutines
}

@test "10: 10,000 idle connections, each task waiting in a read, cost under 6 KiB each" {
    idle_memory_is_small 10-coroutines 6144
}

@test "10: a client that sends 64 MiB and never reads stalls nobody, and memory stays bounded" {
    never_reader_is_bounded 10-coroutines
}

@test "10: out of descriptors (limit 64, 200 clients) it neither dies nor spins" {
    survives_emfile 50 10-coroutines
}

# ---- chapter 09's chat tests, against 10's chat ----

@test "10 chat: nicknames, broadcast to the others, /quit, and a line over the limit" {
    chat_conversation 10-coroutines
}

@test "10 chat: a member who never reads is cut off at the cap; the others chat on; memory stays bounded" {
    chat_cut_off 10-coroutines
}

@test "10 chat: SIGTERM with members connected exits 0 with its summary" {
    chat_sigterm 10-coroutines
}
