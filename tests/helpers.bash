# Shared by every suite: start a chapter's server on --port 0, wait for it to
# be ready, talk to it, and always stop it. Every wait is bounded, so a broken
# server fails its test instead of hanging the suite.

ROOT="$(cd "$BATS_TEST_DIRNAME/.." && pwd)"
TOOLS="$ROOT/tools"
CLIENT="$TOOLS/echo-client"
LOADGEN="$TOOLS/loadgen"

# Under SANITIZE=1: a leak or undefined behaviour makes the server exit non-zero,
# and every test that stops a server checks its exit status.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:exitcode=23}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"
# Under SANITIZE=thread: a data race makes the server exit 66 when it stops.
export TSAN_OPTIONS="${TSAN_OPTIONS:-exitcode=66:second_deadlock_stack=1}"

# wait_until SECONDS COMMAND...: run COMMAND every 20 ms until it succeeds;
# fail once SECONDS have passed.
wait_until() {
    local tries=$(( $1 * 50 )); shift
    while (( tries-- > 0 )); do
        "$@" && return 0
        sleep 0.02
    done
    echo "gave up waiting for: $*" >&2
    return 1
}

# start_server CHAPTER [OPTIONS...]: run chapters/CHAPTER/server (or the
# program named by $PROGRAM) on a port the kernel chooses; sets SERVER_PID and
# PORT once "listening on" has been printed. The chapters are the ones under
# $SERVER_ROOT if it is set (a patched copy: tests/solutions.bats), else ours.
start_server() {
    local chapter=$1; shift
    SERVER_OUT="$BATS_TEST_TMPDIR/server.out"
    SERVER_ERR="$BATS_TEST_TMPDIR/server.err"
    # Emptied here, not only by the background redirection below, which may
    # run late: a test that starts servers in a loop would read the last
    # one's "listening on" line, and its port.
    : >"$SERVER_OUT"
    # 3>&-: bats waits for every process holding its fd 3; a server must not.
    "${SERVER_ROOT:-$ROOT}/chapters/$chapter/${PROGRAM:-server}" --port 0 "$@" >"$SERVER_OUT" 2>"$SERVER_ERR" 3>&- &
    SERVER_PID=$!
    if ! wait_until 10 grep -q '^listening on ' "$SERVER_OUT"; then
        echo "server did not start; its stderr:" >&2
        cat "$SERVER_ERR" >&2
        return 1
    fi
    PORT=$(sed -n 's/^listening on .*:\([0-9][0-9]*\)$/\1/p' "$SERVER_OUT")
    [[ -n "$PORT" ]]
}

# exited PID: true once PID has exited (gone, or a zombie not yet waited for).
exited() {
    local stat
    read -r stat 2>/dev/null <"/proc/$1/stat" || return 0
    stat=${stat##*) }
    [[ "${stat:0:1}" == Z ]]
}

# wait_exit PID SECONDS: wait for a child to exit; sets EXIT_STATUS (137 if it
# had to be killed because it did not exit in time).
wait_exit() {
    local pid=$1 seconds=$2
    if ! wait_until "$seconds" exited "$pid"; then
        kill -KILL "$pid" 2>/dev/null || true
    fi
    EXIT_STATUS=0
    wait "$pid" || EXIT_STATUS=$?
}

# stop_server [SIGNAL]: ask the server to stop (SIGTERM by default), wait up to
# 5 s, and fail unless it exited 0.
stop_server() {
    local signal=${1:-TERM}
    [[ -n "${SERVER_PID:-}" ]] || return 0
    kill "-$signal" "$SERVER_PID" 2>/dev/null
    wait_exit "$SERVER_PID" 5
    SERVER_PID=
    if (( EXIT_STATUS != 0 )); then
        echo "server exited with status $EXIT_STATUS; its stderr:" >&2
        cat "$SERVER_ERR" >&2
        return 1
    fi
}

# Background helpers (clients that hold connections) are recorded here so
# teardown can always clean them up.
BACKGROUND_PIDS=()
background() {
    "$@" 2>>"$BATS_TEST_TMPDIR/background.err" 3>&- &
    BACKGROUND_PIDS+=($!)
}

teardown() {
    local pid
    for pid in "${BACKGROUND_PIDS[@]}"; do
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null     # reaped quietly: no "Killed" line in the output
    done
    if [[ -n "${SERVER_PID:-}" ]]; then
        kill -KILL "$SERVER_PID" 2>/dev/null
        wait "$SERVER_PID" 2>/dev/null
    fi
    return 0
}

# open_conn VAR: open a TCP connection to the server with bash's /dev/tcp and
# store its descriptor in VAR. Bash's descriptors make a client that holds a
# connection open, writes a little and reads with a timeout, without any tool.
open_conn() {
    local -n fd_var=$1
    exec {fd_var}<>"/dev/tcp/127.0.0.1/$PORT"
}

# close_conn FD: close a connection opened by open_conn (an orderly FIN).
close_conn() {
    local fd=$1
    exec {fd}>&-
}

# echo_once FD TEXT [SECONDS]: write one line on FD and read it back.
echo_once() {
    local fd=$1 text=$2 seconds=${3:-5} reply
    printf '%s\n' "$text" >&"$fd" || return 1
    IFS= read -r -t "$seconds" reply <&"$fd" || return 1
    [[ "$reply" == "$text" ]]
}

# The server's CPU time so far in clock ticks (user + system), from /proc.
cpu_ticks() {
    local stat
    read -r stat <"/proc/$1/stat"
    stat=${stat##*) }                 # drop "pid (comm) ": comm may hold spaces
    set -- $stat
    echo $(( ${12} + ${13} ))         # fields 14 and 15 of the full line
}

# cpu_percent PID SECONDS: the share of one core PID used over the next SECONDS.
cpu_percent() {
    local before after hz
    hz=$(getconf CLK_TCK)
    before=$(cpu_ticks "$1")
    sleep "$2"                        # the measurement window itself
    after=$(cpu_ticks "$1")
    echo $(( (after - before) * 100 / (hz * $2) ))
}

# rss_kib PID: resident memory of PID in KiB.
rss_kib() {
    awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"
}

# The chapters whose server exists (built by make).
built_chapters() {
    local dir
    for dir in "$ROOT"/chapters/[0-9][0-9]-*/; do
        [[ -x "$dir/server" ]] && basename "$dir"
    done
}

# child_pids PID: the processes whose parent is PID (zombies included), from /proc.
child_pids() {
    local parent=$1 stat rest pid
    for stat in /proc/[0-9]*/stat; do
        read -r rest <"$stat" 2>/dev/null || continue
        pid=${rest%% *}
        rest=${rest##*) }                    # "STATE PPID ...", after "pid (comm) "
        set -- $rest
        [[ "$2" == "$parent" ]] && echo "$pid"
    done
    return 0
}

# child_count PID: how many children PID has (a zombie still counts).
child_count() {
    child_pids "$1" | wc -l
}

# thread_count PID: the number of threads in process PID.
thread_count() {
    local n
    n=$(awk '/^Threads:/ { print $2 }' "/proc/$1/status")
    [[ -n "$n" ]] && (( n > 1 )) && n=$(( n - $(sanitizer_threads "$1") ))
    echo "$n"
}

# blocked_stop_signals PID TID: which of SIGINT (bit 2, 0x2) and SIGTERM (bit 15,
# 0x4000) thread TID of PID blocks, from its SigBlk mask: 0x4002 means both.
blocked_stop_signals() {
    local mask
    mask=$(awk '/^SigBlk:/ { print $2 }' "/proc/$1/task/$2/status")
    printf '0x%x\n' $(( 0x$mask & 0x4002 ))
}

# sanitizer_threads PID: threads of PID that are not the program's own.
# ThreadSanitizer (SANITIZE=thread) starts one along with the program's
# first thread; a single-threaded program has none.
sanitizer_threads() {
    if grep -q __tsan_init "/proc/$1/exe" 2>/dev/null &&
        (( $(awk '/^Threads:/ { print $2 }' "/proc/$1/status") > 1 )); then
        echo 1
    else
        echo 0
    fi
}

# start_server_limited FDS CHAPTER [OPTIONS...]: like start_server, with the
# server's descriptor limit (soft and hard) lowered to FDS first.
start_server_limited() {
    local fds=$1 chapter=$2; shift 2
    SERVER_OUT="$BATS_TEST_TMPDIR/server.out"
    SERVER_ERR="$BATS_TEST_TMPDIR/server.err"
    : >"$SERVER_OUT"        # as in start_server
    bash -c 'ulimit -n "$1" && shift && exec "$@"' limit "$fds" \
        "${SERVER_ROOT:-$ROOT}/chapters/$chapter/${PROGRAM:-server}" --port 0 "$@" >"$SERVER_OUT" 2>"$SERVER_ERR" 3>&- &
    SERVER_PID=$!
    wait_until 10 grep -q '^listening on ' "$SERVER_OUT" || { cat "$SERVER_ERR" >&2; return 1; }
    PORT=$(sed -n 's/^listening on .*:\([0-9][0-9]*\)$/\1/p' "$SERVER_OUT")
}

# sanitized PROGRAM: true if PROGRAM was built with SANITIZE=1 or =thread.
# AddressSanitizer keeps freed memory in quarantine, and both sanitizers map
# shadow memory, so RSS and address-space bounds mean little there.
sanitized() {
    grep -Eq '__asan_init|__tsan_init' "$1" 2>/dev/null
}

# For wait_until, which runs its command again on every try: a command
# substitution in its arguments would be expanded only once, before the wait.
#   wait_until 5 value_is 0 child_count "$SERVER_PID"
#   wait_until 9 value_at_least 56 grep_count ' accept fd=' "$SERVER_ERR"
value_is() {
    [[ "$("${@:2}")" == "$1" ]]
}

value_at_least() {
    local value
    value=$("${@:2}")
    (( value >= $1 ))
}

# grep_count PATTERN FILE: how many lines match (0, not an error, when none).
grep_count() {
    grep -c -- "$1" "$2" || true
}

# unit_case PROGRAM CASE: run one case of a C unit-test program (common/unit.h);
# it passes if the program exits 0 and its last line is "ok CASE" (lines
# before it, starting with "#", are information).
unit_case() {
    run "$1" "$2"
    echo "$output"
    [ "$status" -eq 0 ]
    [ "${lines[-1]}" = "ok $2" ]
}

# strace_load CHAPTER CONNECTIONS ECHOES [OPTIONS...]: run the chapter's server
# under strace -c while loadgen makes ECHOES echoes of 64 bytes on CONNECTIONS
# connections; the server must then stop with status 0. Afterwards
# `syscalls NAME` prints how many NAME calls the server made, and
# `syscall_errors NAME` how many of them failed (strace's error column).
strace_load() {
    local chapter=$1 connections=$2 echoes=$3 hard tracer; shift 3
    command -v strace >/dev/null || skip "strace is not installed"
    hard=$(ulimit -Hn)
    [[ "$hard" == unlimited ]] || (( hard >= connections + 100 )) || skip "the hard descriptor limit is $hard"
    ulimit -n "$hard"
    SERVER_OUT="$BATS_TEST_TMPDIR/server.out"
    SERVER_ERR="$BATS_TEST_TMPDIR/server.err"
    STRACE_COUNTS="$BATS_TEST_TMPDIR/strace.txt"
    # LeakSanitizer cannot run under ptrace: off for this run (the other tests check leaks).
    ASAN_OPTIONS=detect_leaks=0:exitcode=23 strace -f -c -o "$STRACE_COUNTS" \
        "$ROOT/chapters/$chapter/server" --port 0 "$@" >"$SERVER_OUT" 2>"$SERVER_ERR" 3>&- &
    tracer=$!
    BACKGROUND_PIDS+=("$tracer")
    wait_until 20 grep -q '^listening on ' "$SERVER_OUT"
    PORT=$(sed -n 's/^listening on .*:\([0-9][0-9]*\)$/\1/p' "$SERVER_OUT")
    SERVER_PID=$(child_pids "$tracer")
    run "$LOADGEN" --port "$PORT" --connections "$connections" --size 64 --requests "$echoes" \
        --duration 60 --timeout 30
    echo "$output"
    [ "$status" -eq 0 ]
    [[ "$output" == *" requests=$echoes "*"errors=0"* ]]
    kill -TERM "$SERVER_PID"
    SERVER_PID=
    wait_exit "$tracer" 10      # strace exits with the server's status
    [ "$EXIT_STATUS" -eq 0 ]
    cat "$STRACE_COUNTS"
}
syscalls() { awk -v name="$1" '$NF == name { n = $4 } END { print n + 0 }' "$STRACE_COUNTS"; }
syscall_errors() { awk -v name="$1" '$NF == name { n = (NF == 6 ? $5 : 0) } END { print n + 0 }' "$STRACE_COUNTS"; }
