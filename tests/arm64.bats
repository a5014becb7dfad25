#!/usr/bin/env bats
# Chapter 10's task switch on AArch64: test_task cross-built for aarch64
# Linux and run under user-mode QEMU, with the assembly switch of switch.S
# (not ucontext). .ci/run runs this file (it installs the cross compiler and
# QEMU when it can); without them every test skips with one line.
#
#   bats tests/arm64.bats

load helpers

CROSS_CC=${CROSS_CC:-aarch64-linux-gnu-gcc}
QEMU=${QEMU:-qemu-aarch64}
SYSROOT=${SYSROOT:-/usr/aarch64-linux-gnu}
CH10="$ROOT/chapters/10-coroutines"

# Built once for the file: the same sources and flags as chapters/10's Makefile.
setup_file() {
    command -v "$CROSS_CC" >/dev/null && command -v "$QEMU" >/dev/null || return 0
    local sources=("$CH10"/test_task.c "$CH10"/task.c "$CH10"/task_stream.c "$CH10"/switch.c
                   "$CH10"/switch.S "$ROOT"/chapters/09-streams/stream.c
                   "$ROOT"/chapters/08-event-loop/loop.c "$ROOT"/common/*.c)
    local flags=(-std=c11 -Wall -Wextra -Wpedantic -Werror -O2 -fstack-clash-protection
                 -D_POSIX_C_SOURCE=200809L -I"$ROOT/common" -I"$ROOT/chapters/08-event-loop"
                 -I"$ROOT/chapters/09-streams")
    "$CROSS_CC" "${flags[@]}" -o "$BATS_FILE_TMPDIR/test_task" "${sources[@]}" -lpthread
    "$CROSS_CC" "${flags[@]}" -DCTX_PORTABLE -o "$BATS_FILE_TMPDIR/test_task_ucontext" "${sources[@]}" -lpthread
}

setup() {
    command -v "$CROSS_CC" >/dev/null || skip "no $CROSS_CC (apt-get install gcc-aarch64-linux-gnu)"
    command -v "$QEMU" >/dev/null || skip "no $QEMU (apt-get install qemu-user)"
    [ -x "$BATS_FILE_TMPDIR/test_task" ]
}

# Every case of a test_task binary under QEMU, within a bound: each must say ok.
all_cases_pass() {
    run timeout 300 "$QEMU" -L "$SYSROOT" "$1"
    echo "$output"
    [ "$status" -eq 0 ]
    ! grep -q '^not ok' <<<"$output"
    [ "$(grep -c '^ok ' <<<"$output")" -ge 20 ]
}

@test "arm64: test_task is an AArch64 program with the assembly switch, not swapcontext" {
    run aarch64-linux-gnu-readelf -h "$BATS_FILE_TMPDIR/test_task"
    [[ $output == *"Machine:"*AArch64* ]]
    run aarch64-linux-gnu-nm "$BATS_FILE_TMPDIR/test_task"
    [ "$status" -eq 0 ]
    grep -Eq ' T ctx_switch$' <<<"$output"
    grep -Eq ' T ctx_boot$' <<<"$output"
    ! grep -q swapcontext <<<"$output"
}

@test "arm64: every case of test_task passes under QEMU (guard pages included)" {
    all_cases_pass "$BATS_FILE_TMPDIR/test_task"
}

# QEMU refuses seccomp (it needs system calls itself), so the case runs the
# switches between two marks; qemu -strace logs every system call the
# program makes, and none may come between them.
@test "arm64: 1,000,000 switches make no system call (qemu -strace between two marks)" {
    local trace=$BATS_TEST_TMPDIR/strace.log
    run timeout 120 "$QEMU" -L "$SYSROOT" -strace -D "$trace" "$BATS_FILE_TMPDIR/test_task" switch-no-syscall
    echo "$output"
    [ "$status" -eq 0 ]
    [ "${lines[-1]}" = "ok switch-no-syscall" ]
    # The marks are 23 and 21 bytes written to fd 1, by the child.
    run awk '/ write\(1,0x[0-9a-f]+,23\)/ { inside = 1; next }
             inside && / write\(1,0x[0-9a-f]+,21\)/ { print "end"; exit }
             inside && /^[0-9]+ [a-z_0-9]+\(/ { print "syscall: " $0 }' "$trace"
    echo "$output"
    [ "$output" = "end" ]
}

@test "arm64: the portable switch (ucontext) passes too, in bounded time" {
    all_cases_pass "$BATS_FILE_TMPDIR/test_task_ucontext"
}
