#!/usr/bin/env bats
# Chapter 10's claims: tasks keep their promises (C unit tests), the asyncio
# examples translated line by line behave as the Python does, and the echo
# server and chat on tasks keep chapter 09's claims.

load helpers
load readiness
load chat

CH="$ROOT/chapters/10-coroutines"
TEST_TASK="$CH/test_task"

unit() { unit_case "$TEST_TASK" "$1"; }

@test "10 task: sleepers wake in deadline order" { unit sleep-order; }
@test "10 task: join and gather return the tasks' results" { unit join-gather; }
@test "10 task: cancel while sleeping: sleep returns -ECANCELED and the task finishes normally" { unit cancel-sleeping; }
@test "10 task: cancel while reading: the read is withdrawn, and the next one loses nothing" { unit cancel-reading; }
@test "10 task: cancel while draining to a peer that never reads" { unit cancel-draining; }
@test "10 task: a timeout that fires (-ETIMEDOUT) and the line that comes later is not lost" { unit timeout-fires; }
@test "10 task: a timeout that does not fire, and ends with its section" { unit timeout-not-fired; }
@test "10 task: a task that returns while others wait" { unit returns-while-others-wait; }
@test "10 task: 10,000 tasks spawned and finished, twice, joined and detached" { unit ten-thousand-tasks; }
@test "10 task: run_coroutine_threadsafe from another thread, 200 times" { unit threadsafe; }
@test "10 task: a stack overflow hits the guard page and is reported" { unit stack-overflow; }
@test "10 task: a frame larger than the stack cannot jump the guard page (-fstack-clash-protection)" { unit big-frame; }
@test "10 task: after a timeout, a read of any kind or size, a drain, a wait_closed do exactly what they say" { unit exact-after-timeout; }
@test "10 task: a task cancelled before it starts never runs its body" { unit cancel-before-start; }
@test "10 task: the server closed before a new client's task started: no crash, the handler never runs" { unit server-close-before-start; }
@test "10 task: a cancel is delivered once; the task's cleanup call is not cancelled again" { unit cancel-once; }
@test "10 task: detaching a task that another task is joining: the join still gets its result" { unit detach-while-joined; }
@test "10 task: open_connection whose deadline fires before the connect starts reads nothing of the task's stack later" { unit connect-deadline; }
@test "10 task: a task looping on sleep(0) lets I/O run between its sleeps" { unit sleep-zero; }
@test "10 task: 40,000 tasks at once, past vm.max_map_count / 2 (guard regions, Linux 6.13+)" { unit many-tasks; }
@test "10 task: a cancelled wait_closed aborts the close and still returns with the stream freed" { unit cancel-wait-closed; }
@test "10 task: a SIZE_MAX stack is refused and a UINT64_MAX timeout never fires, instead of wrapping" { unit huge-values; }
@test "10 task: gather refuses a task join would refuse before joining any" { unit gather-refuses; }
@test "10 task: 1,000,000 switches make no system call (seccomp strict mode)" { unit switch-no-syscall; }

@test "10 task: the portable switch (swapcontext) passes every case, and makes a system call per switch" {
    [ -x "$CH/test_task_ucontext" ] || skip "built on Linux only (macOS has deprecated ucontext)"
    run "$CH/test_task_ucontext"
    echo "$output"
    [ "$status" -eq 0 ]
    [[ "$output" == *"ok switch-no-syscall"* ]]     # there: seccomp kills it, as expected
    ! grep -q '^not ok' <<<"$output"
}

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

@test "10: when no more stacks can be mapped (ulimit -v), new clients are shed with a trace line; the rest are served" {
    sanitized "$CH/server" && skip "AddressSanitizer reserves terabytes of address space: ulimit -v cannot apply"
    # The address space an idle server maps, plus 16 MiB: room for about a
    # hundred stacks of 64 KiB with their 64 KiB guard, not for 300.
    start_server 10-coroutines
    local base
    base=$(awk '/^VmSize/ { print $2 }' "/proc/$SERVER_PID/status")
    stop_server
    SERVER_OUT="$BATS_TEST_TMPDIR/server.out"
    SERVER_ERR="$BATS_TEST_TMPDIR/server.err"
    bash -c 'ulimit -v "$1" && shift && exec "$@"' limit "$(( base + 16384 ))" \
        "$CH/server" --port 0 -v >"$SERVER_OUT" 2>"$SERVER_ERR" 3>&- &
    SERVER_PID=$!
    wait_until 10 grep -q '^listening on ' "$SERVER_OUT"
    PORT=$(sed -n 's/^listening on .*:\([0-9][0-9]*\)$/\1/p' "$SERVER_OUT")
    "$LOADGEN" --port "$PORT" --idle --connections 300 --hold 2 --timeout 10 \
        >"$BATS_TEST_TMPDIR/flood.out" 2>&1 3>&- &
    BACKGROUND_PIDS+=($!)
    wait_until 30 grep -q 'shed fd=[0-9]* reason=no memory for a task' "$SERVER_ERR"
    wait_until 30 grep -q '^idle ' "$BATS_TEST_TMPDIR/flood.out"
    cat "$BATS_TEST_TMPDIR/flood.out"
    echo "shed: $(grep_count ' shed fd=' "$SERVER_ERR") of 300"
    ! exited "$SERVER_PID"
    # Some were served: their echo came back.
    [[ "$(cat "$BATS_TEST_TMPDIR/flood.out")" =~ echoed=([1-9][0-9]*) ]]
    # Once they have gone, their stacks are free again.
    run "$CLIENT" --port "$PORT" --bytes 100000
    [ "$status" -eq 0 ]
    stop_server
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
