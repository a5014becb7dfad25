#!/usr/bin/env bats
# Chapters 08-10 (and common/, tools/) on systems other than Linux: they must
# compile under strict POSIX with the portable loop backend (poll and a
# self-pipe), with no warning and no Linux header. Here that is checked on
# Linux by hiding __linux__, which is how every file here decides, and by
# building without _GNU_SOURCE or _DEFAULT_SOURCE. (That the poll backend
# works is proven by tests/run, which runs 08-10's suites again on it.)

load helpers

# Headers only Linux has: none may be included.
LINUX_ONLY_HEADERS='/(sys/(epoll|eventfd|signalfd|timerfd|prctl|syscall|sendfile|inotify)|linux/(seccomp|io_uring))\.h$'

@test "portable: 08-10, common and tools compile under strict POSIX with the poll backend: no warning, no Linux header, no GNU extension" {
    local cc=${CC:-cc} f log macros bad=0
    log=$BATS_TEST_TMPDIR/log
    for f in "$ROOT"/chapters/08-event-loop/*.c "$ROOT"/chapters/09-streams/*.c \
             "$ROOT"/chapters/10-coroutines/*.c "$ROOT"/chapters/10-coroutines/switch.S \
             "$ROOT"/common/*.c "$ROOT"/tools/*.c; do
        [[ $f == */loop_*.c ]] && continue     # backends: loop.c includes them
        local flags=(-std=c11 -Wall -Wextra -Wpedantic -Werror -O2 -D_POSIX_C_SOURCE=200809L
                     -U__linux__ -U__linux -Ulinux -DLOOP_BACKEND_POLL -I"$ROOT/common"
                     -I"$ROOT/chapters/08-event-loop" -I"$ROOT/chapters/09-streams")
        # -MD: the list of every header it read, into deps; stderr: warnings.
        if ! "$cc" "${flags[@]}" -MD -MF "$BATS_TEST_TMPDIR/deps" -c -o /dev/null "$f" 2>"$log"; then
            echo "$f does not compile:"; cat "$log"; bad=1; continue
        fi
        if [[ -s $log ]]; then
            echo "$f: the compiler said:"; cat "$log"; bad=1
        fi
        if tr ' \\' '\n\n' <"$BATS_TEST_TMPDIR/deps" | grep -Eq "$LINUX_ONLY_HEADERS"; then
            echo "$f includes a Linux header:"
            tr ' \\' '\n\n' <"$BATS_TEST_TMPDIR/deps" | grep -E "$LINUX_ONLY_HEADERS"; bad=1
        fi
        [[ $f == *.S ]] && continue
        macros=$("$cc" "${flags[@]}" -dM -E "$f")
        if grep -Eq '^#define __USE_(GNU|MISC) ' <<<"$macros"; then
            echo "$f asks for GNU or BSD extensions"; bad=1
        fi
    done
    [ "$bad" -eq 0 ]
}

# Apple's assembler wants _name and knows no .type or .size; clang can
# assemble for its targets from here, so the Mac's switch.S is checked too.
@test "portable: switch.S assembles for macOS on arm64 and x86-64 (Mach-O), and for ELF, naming both functions" {
    command -v clang >/dev/null && command -v llvm-nm >/dev/null || skip "needs clang and llvm-nm"
    local target prefix
    for target in arm64-apple-macos11 x86_64-apple-macos11 aarch64-linux-gnu x86_64-linux-gnu aarch64-unknown-freebsd; do
        prefix=; [[ $target == *apple* ]] && prefix=_
        clang --target="$target" -c -o "$BATS_TEST_TMPDIR/switch.o" "$ROOT/chapters/10-coroutines/switch.S"
        run llvm-nm "$BATS_TEST_TMPDIR/switch.o"
        echo "$target: $output"
        grep -Eq " T ${prefix}ctx_switch$" <<<"$output"
        grep -Eq " T ${prefix}ctx_boot$" <<<"$output"
    done
}
