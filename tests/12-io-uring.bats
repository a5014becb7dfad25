#!/usr/bin/env bats
# Chapter 12's claims: the same echo on io_uring (completion-based I/O), with
# fewer than one system call per echo under load. Every test skips, saying
# why, where io_uring is not available (old kernel, sysctl, seccomp).

load helpers
load readiness

SERVER12="$ROOT/chapters/12-io-uring/server"

setup() {
    [[ -x "$SERVER12" ]] || skip "chapters/12-io-uring/server is not built"
    # The tests of the "not available" path fake it with strace: they run anyway.
    [[ "$BATS_TEST_DESCRIPTION" == *"not available"* ]] && return 0
    run "$SERVER12" --check
    (( status == 0 )) || skip "$output"
}

# start_server_strace INJECT [OPTIONS...]: start the server under strace,
# which makes a system call fail as INJECT says ("SYSCALL:error=E:when=W", in
# strace's syntax, for an error the kernel really returns: EBUSY, EAGAIN,
# EBADR from io_uring_enter, EINVAL from an older kernel); sets TRACER, the
# strace process, SERVER_PID, the server itself, and PORT. LeakSanitizer
# cannot run under ptrace: off for these (the other tests check leaks).
start_server_strace() {
    local inject=$1; shift
    SERVER_OUT="$BATS_TEST_TMPDIR/server.out"
    SERVER_ERR="$BATS_TEST_TMPDIR/server.err"
    ASAN_OPTIONS=detect_leaks=0:exitcode=23 strace -f -o /dev/null -e trace="${inject%%:*}" \
        -e inject="$inject" "$SERVER12" --port 0 "$@" >"$SERVER_OUT" 2>"$SERVER_ERR" 3>&- &
    TRACER=$!
    BACKGROUND_PIDS+=("$TRACER")
    wait_until 20 grep -q '^listening on ' "$SERVER_OUT"
    PORT=$(sed -n 's/^listening on .*:\([0-9][0-9]*\)$/\1/p' "$SERVER_OUT")
    SERVER_PID=$(child_pids "$TRACER")
    [[ -n "$PORT" && -n "$SERVER_PID" ]]
    BACKGROUND_PIDS+=("$SERVER_PID")     # teardown kills it even if strace is gone
}

# stop_server_strace: SIGTERM, and the exit status through strace (it exits
# with the server's); fails unless 0 within 5 s.
stop_server_strace() {
    kill -TERM "$SERVER_PID"
    wait_exit "$TRACER" 5
    tail -3 "$SERVER_ERR"
    [ "$EXIT_STATUS" -eq 0 ]
}

# The summary's "echoed N bytes".
echoed_bytes() {
    sed -n 's/^server: served [0-9]* connections\{0,1\}, echoed \([0-9]*\) bytes$/\1/p' "$SERVER_ERR"
}

@test "12: with one idle client, the server uses under 2% of a core (it sleeps in io_uring_enter)" {
    local cpu
    start_server 12-io-uring
    cpu=$(cpu_with_idle_client)
    echo "${cpu}% of a core"
    (( cpu < 2 ))
    stop_server
}

@test "12: 10,000 simultaneous connections all echo (multishot accept)" {
    ten_thousand_connections 12-io-uring
}

@test "12: 10,000 simultaneous connections all echo (--own-buffers --oneshot: a buffer each, one accept entry per client)" {
    ten_thousand_connections 12-io-uring --own-buffers --oneshot
}

@test "12: --own-buffers: a client that sends 64 MiB and never reads stalls nobody, and memory stays bounded" {
    never_reader_is_bounded 12-io-uring --own-buffers
}

# The largest count of pool buffers one connection held, from the -v trace
# ("buf fd=N id=I held=H": H buffers of its echo not yet sent).
max_held() {
    sed -n 's/^[0-9]* buf fd=[0-9]* id=[0-9]* held=\([0-9]*\)$/\1/p' "$SERVER_ERR" | sort -n | tail -1
}

@test "12: provided buffers: a client that sends 64 MiB and never reads has its recv paused, holds a bounded share of the pool, and stalls nobody" {
    # A pool of 4096 buffers (64 MiB): big enough that only the pause can
    # keep this client from taking a large part of it.
    start_server 12-io-uring -v --buffers 4096
    local before after sent
    before=$(rss_kib "$SERVER_PID")
    "$CLIENT" --port "$PORT" --bytes 67108864 --no-read --timeout 3 \
        2>"$BATS_TEST_TMPDIR/stuck.err" 3>&- &
    BACKGROUND_PIDS+=($!)
    run "$CLIENT" --port "$PORT" --bytes 1000000 --timeout 10
    [ "$status" -eq 0 ]
    wait_until 10 grep -q '^sent ' "$BATS_TEST_TMPDIR/stuck.err"
    sent=$(sed -n 's/^sent \([0-9]*\) bytes.*/\1/p' "$BATS_TEST_TMPDIR/stuck.err")
    after=$(rss_kib "$SERVER_PID")
    echo "rss before=${before} KiB after=${after} KiB; client sent ${sent} bytes; at most $(max_held) buffers held"
    # Its recv was cancelled once 4 buffers of its echo were waiting...
    grep -Eq '^[0-9]+ pause fd=[0-9]+ held=4$' "$SERVER_ERR"
    # ...and the completions already on their way (a multishot recv takes up
    # to about 33 buffers per wake) were copied out of the pool: it held 4, never more.
    (( $(max_held) <= 4 ))
    # Memory: the pool's pages become resident as the kernel first fills
    # them (what passes through, up to the socket buffers' size: several
    # MiB), never the 64 MiB the client tried to send.
    (( sent < 67108864 ))
    (( after - before < 16384 ))
    stop_server
}

# How many connections had their recv paused (a "pause fd=N" line each).
paused_conns() {
    sed -n 's/^[0-9]* pause fd=\([0-9]*\) .*/\1/p' "$SERVER_ERR" | sort -u | wc -l
}

@test "12: provided buffers: four clients that never read hold at most 4 buffers each, and leave a pool of 64 to a new client, which is served" {
    start_server 12-io-uring -v --buffers 64
    local i
    for i in 1 2 3 4; do
        background "$CLIENT" --port "$PORT" --bytes 67108864 --no-read --timeout 60
    done
    # Each fills the socket buffers both ways, then its echo waits and its
    # recv is paused: the completions already on their way (a wake of a
    # multishot recv takes about 33 buffers) are copied out of the pool.
    wait_until 60 value_at_least 4 paused_conns
    run "$CLIENT" --port "$PORT" --timeout 5 <<<"still served"
    echo "$output"
    echo "at most $(max_held) buffers held by one connection; at most $(sed -n 's/.* spilled=//p' "$SERVER_ERR" | sort -n | tail -1) bytes spilled"
    [ "$output" = "still served" ]
    (( $(max_held) <= 4 ))
    stop_server
    # The stuck clients still connected at the stop held 4 buffers each.
    local held
    held=$(sed -n 's/^[0-9]* pool: \([0-9]*\) of 64 buffers held by connections$/\1/p' "$SERVER_ERR")
    echo "pool: $held of 64 held at the stop"
    (( held <= 16 ))
}

@test "12: provided buffers: 200 clients, distinct payloads, through a pool of 8 buffers: every byte verified, ENOBUFS re-arms the recv, every buffer comes back" {
    # loadgen gives each message of each connection its own bytes and checks
    # every byte that comes back: a buffer given back to the pool before its
    # send completed, or sent to the wrong connection, is a mismatch.
    start_server 12-io-uring -v --buffers 8
    run "$LOADGEN" --port "$PORT" --connections 200 --size 20000 --pipeline 4 --requests 20000 \
        --duration 60 --timeout 30
    echo "$output"
    [ "$status" -eq 0 ]
    [[ "$output" == *" requests=20000 "*"errors=0"* ]]
    # Every connection gone, so every buffer must be back in the pool.
    wait_until 10 value_is 200 grep_count ' close fd=' "$SERVER_ERR"
    stop_server
    grep -E '^[0-9]+ pool: [0-9]+ of 8 buffers held by connections$' "$SERVER_ERR"
    grep -Eq '^[0-9]+ pool: 0 of 8 buffers held by connections$' "$SERVER_ERR"
    local nobufs armed accepts
    nobufs=$(grep_count ' nobufs fd=[0-9]*: waits for a buffer$' "$SERVER_ERR")
    armed=$(grep_count ' recv fd=[0-9]* multishot armed$' "$SERVER_ERR")
    accepts=$(grep_count ' accept fd=' "$SERVER_ERR")
    echo "nobufs=$nobufs armed=$armed accepts=$accepts"
    # The pool ran dry, and each recv that found it empty was armed again
    # (not dropped): every connection stayed, and echoed all its bytes.
    (( nobufs > 0 && armed >= accepts + nobufs ))
    [ "$(echoed_bytes)" -eq $(( 20000 * 20000 )) ]
    [ "$accepts" -eq "$(grep -c ' close fd=' "$SERVER_ERR")" ]
}

@test "12: clients that reset mid-stream, during other clients' load, leave the server serving" {
    start_server 12-io-uring
    background "$LOADGEN" --port "$PORT" --connections 20 --size 4096 --duration 10 --timeout 10
    local i
    for i in $(seq 1 20); do
        run "$CLIENT" --port "$PORT" --reset-after 300000
        [ "$status" -eq 0 ]
    done
    run "$CLIENT" --port "$PORT" --bytes 1000000
    [ "$status" -eq 0 ]
    [ "$output" = "ok 1000000 bytes" ]
    stop_server
}

@test "12: SIGTERM with operations in flight (recvs, a blocked send, load) exits 0 promptly" {
    start_server 12-io-uring -v
    # A blocked send: a client that sends 64 MiB and never reads.
    background "$CLIENT" --port "$PORT" --bytes 67108864 --no-read --timeout 30
    # Idle connections: a recv in flight on each.
    local conns=() conn i
    for i in 1 2 3 4 5; do
        open_conn conn
        echo_once "$conn" "idle $i"
        conns+=("$conn")
    done
    # Echoes in flight at the moment the signal lands.
    "$LOADGEN" --port "$PORT" --connections 50 --size 64 --duration 10 --timeout 10 \
        >"$BATS_TEST_TMPDIR/load.out" 2>&1 3>&- &
    BACKGROUND_PIDS+=($!)
    wait_until 10 grep -q 'write fd=.* n=16384' "$SERVER_ERR"
    wait_until 30 value_at_least 56 grep_count ' accept fd=' "$SERVER_ERR"
    kill -TERM "$SERVER_PID"
    wait_exit "$SERVER_PID" 5
    SERVER_PID=
    grep -E '^[0-9]+ stop: cancelling [0-9]+ operations$' "$SERVER_ERR"
    tail -1 "$SERVER_ERR"
    [ "$EXIT_STATUS" -eq 0 ]
    tail -1 "$SERVER_ERR" | grep -Eq '^server: served [0-9]+ connections, echoed [0-9]+ bytes$'
    # Every connection was closed before the exit.
    [ "$(grep -c ' accept fd=' "$SERVER_ERR")" -eq "$(grep -c ' close fd=' "$SERVER_ERR")" ]
    for conn in "${conns[@]}"; do close_conn "$conn"; done
}

@test "12: out of descriptors (limit 64, 200 clients) it neither dies nor spins" {
    survives_emfile 50 12-io-uring
}

# count_enters CONNECTIONS ECHOES: ECHOES echoes of 64 bytes on CONNECTIONS
# connections under strace -c; sets ENTERS, READS and SENDS (system calls).
count_enters() {
    strace_load 12-io-uring "$1" "$2"
    ENTERS=$(syscalls io_uring_enter); READS=$(syscalls read); SENDS=$(syscalls sendto)
    echo "io_uring_enter=$ENTERS read=$READS sendto=$SENDS for $2 echoes on $1 connections"
}

@test "12: 1 connection: two io_uring_enter per echo (submit the send and wait; submit the recv and wait)" {
    count_enters 1 5000
    (( ENTERS >= 5000 && ENTERS <= 2 * 5000 + 50 ))
    (( READS < 100 && SENDS == 0 ))
}

@test "12: 100 connections x 64 bytes: well under one io_uring_enter per echo, and no read or send calls" {
    count_enters 100 20000
    (( ENTERS > 0 && ENTERS * 2 < 20000 ))
    (( READS < 100 && SENDS == 0 ))
}

@test "12: 1,000 connections x 64 bytes: fewer io_uring_enter calls than echoes, and no read or send calls" {
    count_enters 1000 50000
    (( ENTERS > 0 && ENTERS < 50000 ))
    # The recvs and sends were ring entries, not system calls.
    (( READS < 100 && SENDS == 0 ))
}

@test "12: provided buffers: 10,000 idle connections cost under 256 bytes each (a struct, no buffer)" {
    idle_memory_is_small 12-io-uring 256
}

@test "12: --own-buffers: 10,000 idle connections cost under 6 KiB each (only the page with the fields is touched before data comes)" {
    idle_memory_is_small 12-io-uring 6144 --own-buffers
}

@test "12: --check names the kernel the server needs (Linux 5.6: RECV, SEND, CLOSE, READ) and the receive design" {
    run "$SERVER12" --check
    echo "$output"
    [ "$status" -eq 0 ]
    [ "${#lines[@]}" -eq 1 ]
    [[ "$output" == "server: io_uring is available, with every operation this server uses (it needs Linux 5.6 or later;"* ]]
    [[ "$output" == *"; receives into a pool of 1024 provided buffers of 16384 bytes, one multishot recv per connection" ]]
    run "$SERVER12" --check --own-buffers --buffers 8
    echo "$output"
    [[ "$output" == *"; receives into a 16384-byte buffer per connection, one recv at a time (--own-buffers)" ]]
    run "$SERVER12" --check --buffers 8
    [[ "$output" == *"; receives into a pool of 8 provided buffers of 16384 bytes, one multishot recv per connection" ]]
}

@test "12: -v names the receive design at start" {
    start_server 12-io-uring -v
    grep -Eq '^[0-9]+ receives into a pool of 1024 provided buffers of 16384 bytes, one multishot recv per connection$' "$SERVER_ERR"
    stop_server
    start_server 12-io-uring -v --own-buffers
    grep -Eq '^[0-9]+ receives into a 16384-byte buffer per connection, one recv at a time \(--own-buffers\)$' "$SERVER_ERR"
    stop_server
}

@test "12: a kernel before 6.0 (faked: no SINGLE_ISSUER, or no IORING_REGISTER_PBUF_RING): a buffer per connection, and it serves" {
    command -v strace >/dev/null || skip "strace is not installed"
    export ASAN_OPTIONS=detect_leaks=0     # LeakSanitizer cannot run under ptrace
    local older="; receives into a 16384-byte buffer per connection, one recv at a time (no provided buffers with multishot recv: a kernel before 6.0)"
    # io_uring_setup refuses the flags of 6.0 and 6.1: the third try, CQSIZE alone, is taken.
    run strace -o /dev/null -e trace=io_uring_setup -e inject=io_uring_setup:error=EINVAL:when=1..2 \
        "$SERVER12" --check
    echo "$output"
    [ "$status" -eq 0 ]
    [[ "$output" == *"$older" ]]
    # The 8th io_uring_register (after the 7 probes) registers the pool: 5.19's EINVAL.
    run strace -o /dev/null -e trace=io_uring_register -e inject=io_uring_register:error=EINVAL:when=8 \
        "$SERVER12" --check
    echo "$output"
    [ "$status" -eq 0 ]
    [[ "$output" == *"$older" ]]
    # And it serves that way: load, every byte checked, then a clean stop.
    start_server_strace io_uring_setup:error=EINVAL:when=1..2 -v
    grep -q "^[0-9]* receives into a 16384-byte buffer per connection" "$SERVER_ERR"
    run "$LOADGEN" --port "$PORT" --connections 20 --size 20000 --requests 2000 --duration 60 --timeout 30
    echo "$output"
    [[ "$output" == *" requests=2000 "*"errors=0"* ]]
    stop_server_strace
    ! grep -q ' multishot armed' "$SERVER_ERR"
}

@test "12: a kernel older than 5.6 (no IORING_REGISTER_PROBE, faked): exit 1 saying which kernel it needs" {
    command -v strace >/dev/null || skip "strace is not installed"
    export ASAN_OPTIONS=detect_leaks=0     # LeakSanitizer cannot run under ptrace
    # timeout: a server that does not refuse would serve forever.
    run timeout -s KILL 10 strace -o /dev/null -e trace=io_uring_register \
        -e inject=io_uring_register:error=EINVAL "$SERVER12" --port 0
    echo "$output"
    [ "$status" -eq 1 ]
    [ "${#lines[@]}" -eq 1 ]
    [ "$output" = "server: io_uring cannot run this server here: this kernel cannot list its io_uring operations (no IORING_REGISTER_PROBE); it needs Linux 5.6 or later" ]
}

@test "12: a kernel without IORING_FEAT_NODROP (faked): it refuses to run, since completions could be lost" {
    command -v cc >/dev/null || skip "no C compiler to build the LD_PRELOAD library"
    local lib="$BATS_TEST_TMPDIR/without_nodrop.so"
    cc -shared -fPIC -o "$lib" "$BATS_TEST_DIRNAME/without_nodrop.c" -ldl
    # Under SANITIZE=1, ASan wants to be the first library: let ours go first.
    # timeout: a server that does not refuse would serve forever.
    LD_PRELOAD="$lib" ASAN_OPTIONS=verify_asan_link_order=0:detect_leaks=1:exitcode=23 \
        run timeout 10 "$SERVER12" --port 0
    echo "$output"
    [ "$status" -eq 1 ]
    [ "${#lines[@]}" -eq 1 ]
    [ "$output" = "server: io_uring cannot run this server here: this kernel would drop the completions that overflow the CQ (no IORING_FEAT_NODROP); it needs Linux 5.6 or later" ]
}

@test "12: a CQ of 16 slots under 200 busy connections overflows: the server flushes what the kernel kept, and echoes every byte" {
    start_server 12-io-uring --ring-entries 1 -v
    grep -q ' io_uring sq=1 cq=16, ' "$SERVER_ERR"
    run "$LOADGEN" --port "$PORT" --connections 200 --size 64 --pipeline 4 --requests 100000 \
        --duration 60 --timeout 30
    echo "$output"
    [ "$status" -eq 0 ]
    [[ "$output" == *" requests=100000 "*"errors=0"* ]]
    run "$CLIENT" --port "$PORT" --bytes 4000000
    [ "$output" = "ok 4000000 bytes" ]
    stop_server
    # More completions came at once than the CQ holds, and the server had the
    # kernel hand over the rest (IORING_SQ_CQ_OVERFLOW, then GETEVENTS)...
    echo "$(grep_count ' cq overflow: flushing$' "$SERVER_ERR") flushes"
    (( $(grep_count ' cq overflow: flushing$' "$SERVER_ERR") > 0 ))
    # A multishot recv whose completion finds the CQ full ends there (its
    # last completion carries the bytes, without IORING_CQE_F_MORE): each was
    # armed again, or its connection would have stalled.
    local ended armed accepts
    ended=$(grep_count ' recv fd=[0-9]* ended$' "$SERVER_ERR")
    armed=$(grep_count ' recv fd=[0-9]* multishot armed$' "$SERVER_ERR")
    accepts=$(grep_count ' accept fd=' "$SERVER_ERR")
    echo "multishot recvs ended=$ended armed=$armed accepts=$accepts"
    (( ended > 0 && armed >= accepts + ended ))
    # ...and not one byte was lost: 100,000 echoes of 64 bytes, and 4 MB.
    [ "$(echoed_bytes)" -eq $(( 100000 * 64 + 4000000 )) ]
    [ "$(grep -c ' accept fd=' "$SERVER_ERR")" -eq "$(grep -c ' close fd=' "$SERVER_ERR")" ]
}

@test "12: when the kernel refuses entries (EBUSY, every other io_uring_enter) with a 1-slot SQ: connections wait a round, none is dropped" {
    command -v strace >/dev/null || skip "strace is not installed"
    # Older kernels answer EBUSY while they hold completions that overflowed
    # the CQ; any kernel may answer EAGAIN when short of memory. Either way
    # the SQ stays full, and an entry must wait, not be dropped.
    start_server_strace io_uring_enter:error=EBUSY:when=2+2 --ring-entries 1 -v
    run "$LOADGEN" --port "$PORT" --connections 50 --size 64 --pipeline 2 --requests 20000 \
        --duration 60 --timeout 30
    echo "$output"
    [ "$status" -eq 0 ]
    [[ "$output" == *" requests=20000 "*"errors=0"* ]]
    stop_server_strace
    echo "$(grep_count ' sq full fd=' "$SERVER_ERR") entries waited a round"
    (( $(grep_count ' sq full fd=' "$SERVER_ERR") > 0 ))
    [ "$(echoed_bytes)" -eq $(( 20000 * 64 )) ]
}

@test "12: SIGTERM when the kernel refuses entries (EBUSY) with a 1-slot SQ: every cancel still goes out, all closed, exit 0" {
    command -v strace >/dev/null || skip "strace is not installed"
    start_server_strace io_uring_enter:error=EBUSY:when=2+2 --ring-entries 1 -v
    # Idle connections, each with a recv in flight that only a cancel ends.
    local conns=() conn i
    for i in 1 2 3 4 5 6 7 8; do
        open_conn conn
        echo_once "$conn" "idle $i"
        conns+=("$conn")
    done
    stop_server_strace
    # Some cancels found the SQ full with the kernel refusing: they waited.
    grep -E '^[0-9]+ sq full fd=[0-9]+: waits a round$' "$SERVER_ERR"
    [ "$(grep -c ' accept fd=' "$SERVER_ERR")" -eq 8 ]
    [ "$(grep -c ' close fd=' "$SERVER_ERR")" -eq 8 ]
    for conn in "${conns[@]}"; do close_conn "$conn"; done
}

@test "12: the kernel lost completions (EBADR from io_uring_enter, faked): exit 1 saying so, not a silent stall" {
    command -v strace >/dev/null || skip "strace is not installed"
    # The 3rd call: after the first round, once a client makes the server go on.
    start_server_strace io_uring_enter:error=EBADR:when=3
    "$CLIENT" --port "$PORT" --timeout 5 <<<hello || true
    wait_exit "$TRACER" 5
    cat "$SERVER_ERR"
    [ "$EXIT_STATUS" -eq 1 ]
    grep -qx 'server: completions were lost (the kernel had no memory to keep those that overflowed the CQ): stopping' "$SERVER_ERR"
}

# shut_listener PID PORT: take a copy of the server's listening socket from
# outside (pidfd_getfd, Linux 5.6) and shut it down for reading: the server's
# accept then fails with EINVAL, as with a listener broken under it. Exits 3,
# saying why, if the kernel refuses the copy (no pidfd_getfd, no permission).
shut_listener() {
    python3 - "$1" "$2" <<'EOF'
import ctypes, os, socket, sys
pid, port = int(sys.argv[1]), int(sys.argv[2])
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
SYS_pidfd_getfd = 438       # the same number on every architecture
try:
    pidfd = os.pidfd_open(pid)
except OSError as e:
    sys.exit(print("pidfd_open refused:", e) or 3)
for name in os.listdir(f"/proc/{pid}/fd"):
    try:
        if not os.readlink(f"/proc/{pid}/fd/{name}").startswith("socket:"):
            continue
    except OSError:
        continue            # closed meanwhile
    fd = libc.syscall(SYS_pidfd_getfd, pidfd, int(name), 0)
    if fd < 0:
        sys.exit(print("pidfd_getfd refused:", os.strerror(ctypes.get_errno())) or 3)
    s = socket.socket(fileno=fd)
    if (s.family in (socket.AF_INET, socket.AF_INET6) and s.getsockname()[1] == port
            and s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)):
        s.shutdown(socket.SHUT_RD)
        sys.exit(print("shut down the listener, fd", name) or 0)
    s.close()
sys.exit(print("no listening socket on port", port) or 1)
EOF
}

@test "12: a fatal accept error (its listener shut down under it) exits 1 with a message, not a hang" {
    command -v python3 >/dev/null || skip "python3 is not installed"
    start_server 12-io-uring -v
    # A client served first: the multishot accept works (a later -EINVAL is
    # no sign of an old kernel), and a connection is in flight at the stop.
    local conn
    open_conn conn
    echo_once "$conn" "before"
    run shut_listener "$SERVER_PID" "$PORT"
    echo "$output"
    (( status != 3 )) || skip "$output"
    [ "$status" -eq 0 ]
    # The stop cancels everything in flight, the signalfd read included:
    # without that cancel the server sleeps in io_uring_enter for ever.
    wait_exit "$SERVER_PID" 5
    SERVER_PID=
    cat "$SERVER_ERR"
    [ "$EXIT_STATUS" -eq 1 ]
    grep -qx 'server: accept: Invalid argument' "$SERVER_ERR"
    [ "$(grep -c 'multishot accept not supported' "$SERVER_ERR")" -eq 0 ]
    [ "$(grep -c ' accept fd=' "$SERVER_ERR")" -eq "$(grep -c ' close fd=' "$SERVER_ERR")" ]
    close_conn "$conn"
}

@test "12: io_uring not available (faked ENOSYS, EPERM): exit 1 with one line saying so and why" {
    command -v strace >/dev/null || skip "strace is not installed"
    export ASAN_OPTIONS=detect_leaks=0     # LeakSanitizer cannot run under ptrace
    run strace -o /dev/null -e inject=io_uring_setup:error=ENOSYS "$SERVER12" --port 0
    echo "$output"
    [ "$status" -eq 1 ]
    [ "${#lines[@]}" -eq 1 ]
    [[ "$output" == "server: io_uring is not available: io_uring_setup: this kernel has no io_uring"* ]]
    run strace -o /dev/null -e inject=io_uring_setup:error=EPERM "$SERVER12" --port 0
    echo "$output"
    [ "$status" -eq 1 ]
    [ "${#lines[@]}" -eq 1 ]
    [[ "$output" == "server: io_uring is not available: io_uring_setup: not permitted (sysctl kernel.io_uring_disabled"* ]]
    # Nothing on stdout: it never got to listen.
    strace -o /dev/null -e inject=io_uring_setup:error=EPERM "$SERVER12" --port 0 \
        >"$BATS_TEST_TMPDIR/stdout" 2>/dev/null || true
    [ ! -s "$BATS_TEST_TMPDIR/stdout" ]
}
