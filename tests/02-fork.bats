#!/usr/bin/env bats
# Chapter 02's claims: clients are served at once, one process each, and no
# child is left behind: none as a zombie after its client leaves, none at all
# after the server stops.

load helpers

@test "02: five clients are served at once, each by its own process" {
    start_server 02-fork
    local conns=() fd i
    for i in 1 2 3 4 5; do
        open_conn fd
        conns+=("$fd")
    done
    # The last one to connect is echoed while the first four stay connected.
    for i in 4 3 2 1 0; do
        echo_once "${conns[$i]}" "client $i"
    done
    [ "$(child_count "$SERVER_PID")" -eq 5 ]
    for fd in "${conns[@]}"; do close_conn "$fd"; done
    stop_server
}

@test "02: no zombie is left once the clients leave" {
    start_server 02-fork
    local i
    for i in $(seq 1 20); do
        "$CLIENT" --port "$PORT" --bytes 1000 >/dev/null
    done
    # A child that exited but was never reaped stays in /proc as a zombie of
    # the server: waiting for zero children proves every one was reaped.
    wait_until 5 value_is 0 child_count "$SERVER_PID"
    stop_server
    grep -q 'served 20 connections, echoed 20000 bytes' "$SERVER_ERR"
}

@test "02: SIGTERM stops the children too, and counts their bytes" {
    start_server 02-fork
    local a b children pid
    open_conn a
    open_conn b
    echo_once "$a" "aaaa"
    echo_once "$b" "bbbb"
    children=$(child_pids "$SERVER_PID")
    [ "$(echo "$children" | wc -l)" -eq 2 ]
    stop_server
    for pid in $children; do
        [ ! -e "/proc/$pid" ]
    done
    grep -q 'served 2 connections, echoed 10 bytes' "$SERVER_ERR"
    close_conn "$a"; close_conn "$b"
}

# sockets PID: the sockets process PID holds open, one "socket:[INODE]" a line.
sockets() {
    local fd
    for fd in /proc/"$1"/fd/*; do
        fd=$(readlink "$fd") && [[ "$fd" == socket:* ]] && echo "$fd"
    done
    return 0
}

@test "02: each process keeps only the socket it uses: the parent its listener, a child its client" {
    start_server 02-fork
    local a b listener child
    open_conn a
    open_conn b
    echo_once "$a" "one"
    echo_once "$b" "two"
    # The parent closed its copy of each client socket after the fork: only the
    # listening socket is left, however many clients there are.
    listener=$(sockets "$SERVER_PID")
    [ "$(echo "$listener" | wc -l)" -eq 1 ]
    # Each child closed its copy of the listening socket: one socket, its client's.
    for child in $(child_pids "$SERVER_PID"); do
        [ "$(sockets "$child" | wc -l)" -eq 1 ]
        [ "$(sockets "$child")" != "$listener" ]
    done
    close_conn "$a"; close_conn "$b"
    stop_server
}

@test "02: Ctrl-C (SIGINT to the whole process group) stops parent and children, exit 0" {
    command -v setsid >/dev/null || skip "no setsid here"
    SERVER_OUT="$BATS_TEST_TMPDIR/server.out"
    SERVER_ERR="$BATS_TEST_TMPDIR/server.err"
    # Its own process group, as a shell gives a foreground job: Ctrl-C signals
    # every process in that group, so each child gets SIGINT directly.
    setsid "$ROOT/chapters/02-fork/server" --port 0 >"$SERVER_OUT" 2>"$SERVER_ERR" 3>&- &
    SERVER_PID=$!
    wait_until 10 grep -q '^listening on ' "$SERVER_OUT"
    PORT=$(sed -n 's/^listening on .*:\([0-9][0-9]*\)$/\1/p' "$SERVER_OUT")
    [ "$(ps -o pgid= -p "$SERVER_PID" | tr -d ' ')" = "$SERVER_PID" ]
    local a b children pid
    open_conn a
    open_conn b
    echo_once "$a" "ctrl"
    echo_once "$b" "c"
    children=$(child_pids "$SERVER_PID")
    [ "$(echo "$children" | wc -l)" -eq 2 ]
    kill -INT -- "-$SERVER_PID"
    wait_exit "$SERVER_PID" 5
    SERVER_PID=
    [ "$EXIT_STATUS" -eq 0 ]
    for pid in $children; do
        [ ! -e "/proc/$pid" ]
    done
    grep -q '^server: served 2 connections, echoed 7 bytes$' "$SERVER_ERR"
    close_conn "$a"; close_conn "$b"
}

@test "02: SIGTERM right after an echo, twenty times over, always stops the server" {
    # The signal often lands between two blocking calls, after the flag was
    # checked: only the handler's shutdown() of the socket wakes the next one.
    local i conn
    for i in $(seq 1 20); do
        start_server 02-fork
        open_conn conn
        echo_once "$conn" "then stop"
        stop_server
        close_conn "$conn"
    done
}
