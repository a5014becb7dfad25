# The chat server's claims, shared by chapter 09 (callbacks) and chapter 10
# (tasks): the same behaviour, so the same tests.

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

# chat_conversation CHAPTER: nicknames, broadcast to the others, /quit, a line over the limit.
chat_conversation() {
    PROGRAM=chat start_server "$1" --line-limit 64
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

# chat_cut_off CHAPTER: a member who never reads is cut off at the cap; the others
# chat on; memory stays bounded.
chat_cut_off() {
    PROGRAM=chat start_server "$1" --max-queue 65536 -v
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
    sanitized "$ROOT/chapters/$1/chat" || (( after - before < 8192 ))
    close_conn "$a"; close_conn "$b"; close_conn "$c"
    stop_server
}

# chat_sigterm CHAPTER: SIGTERM with members connected exits 0 with its summary.
chat_sigterm() {
    PROGRAM=chat start_server "$1"
    local a
    join_chat a ada 1
    stop_server
    grep -q '^chat: served 1 members, relayed 0 bytes$' "$SERVER_ERR"
    close_conn "$a"
}
