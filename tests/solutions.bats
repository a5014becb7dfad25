#!/usr/bin/env bats
# The worked solutions to each chapter's exercises (solutions/, kept apart so
# that a teacher can leave them out). For every chapter:
#
#   solutions/NN-name/README.md      one "## N." section per exercise of the
#                                    chapter's README: the answer, and how to
#                                    check it by hand
#   solutions/NN-name/N-slug.patch   a solution that changes code: a diff
#                                    from the top of the repository (-p1)
#   solutions/NN-name/N-slug.check   what the patched code must then do: bash,
#                                    run here with the helpers loaded and
#                                    SERVER_ROOT set to the patched copy, so
#                                    that start_server NN-name runs it
#
# This suite checks that every exercise has its section, and that every patch
# applies to today's code, builds with zero warnings, and passes its check.

load helpers

# How many exercises a chapter's README lists ("1. ..." under "## Exercises").
exercises_in() {
    awk '/^## Exercises/ { f = 1; next } /^## / { f = 0 } f && /^[0-9]+\. /' "$1" | wc -l
}

# patched_copy CHAPTER PATCH: the repository's files in a scratch folder,
# PATCH applied, CHAPTER built; sets SERVER_ROOT to the copy.
patched_copy() {
    local chapter=$1 patch=$2
    SERVER_ROOT="$BATS_TEST_TMPDIR/$(basename "$patch" .patch)"
    mkdir -p "$SERVER_ROOT"
    (cd "$ROOT" && git ls-files -z | tar --null -T - -cf -) | tar -xf - -C "$SERVER_ROOT"
    (cd "$SERVER_ROOT" && patch -p1 --quiet --no-backup-if-mismatch <"$patch") || {
        echo "$(basename "$patch") does not apply to today's code"; return 1; }
    # Built plain, whatever this run was built with (make passes SANITIZE=1
    # down through MAKEFLAGS): a patch is an experiment, not the product.
    MAKEFLAGS= make -C "$SERVER_ROOT/chapters/$chapter" SANITIZE= WERROR=1 >"$BATS_TEST_TMPDIR/build.log" 2>&1 || {
        cat "$BATS_TEST_TMPDIR/build.log"; return 1; }
}

check_chapter() {
    local chapter=$1 dir="$ROOT/solutions/$1" patch check want got
    if [[ "$(uname -s)" != Linux ]] && grep -q 'LINUX_ONLY = 1' "$ROOT/chapters/$chapter/Makefile"; then
        skip "chapter $chapter is Linux only"
    fi
    [[ -f "$dir/README.md" ]] || { echo "solutions/$chapter/README.md is missing"; return 1; }
    want=$(exercises_in "$ROOT/chapters/$chapter/README.md")
    got=$(grep -c '^## [0-9][0-9]*\. ' "$dir/README.md" || true)
    echo "$want exercises, $got answers"
    (( want > 0 && got == want ))
    for patch in "$dir"/*.patch; do
        [[ -e "$patch" ]] || continue
        check=${patch%.patch}.check
        [[ -f "$check" ]] || { echo "$(basename "$patch") has no .check beside it"; return 1; }
        echo "# $(basename "$patch")"
        patched_copy "$chapter" "$patch"
        source "$check"
        stop_server     # if the check left one running: it must still stop cleanly
    done
    unset SERVER_ROOT
}

@test "solutions 01-blocking: an answer to every exercise; each patch applies, builds and does what it says" { check_chapter 01-blocking; }
@test "solutions 02-fork: an answer to every exercise; each patch applies, builds and does what it says" { check_chapter 02-fork; }
@test "solutions 03-threads: an answer to every exercise; each patch applies, builds and does what it says" { check_chapter 03-threads; }
@test "solutions 04-nonblocking: an answer to every exercise; each patch applies, builds and does what it says" { check_chapter 04-nonblocking; }
@test "solutions 05-select: an answer to every exercise; each patch applies, builds and does what it says" { check_chapter 05-select; }
@test "solutions 06-poll: an answer to every exercise; each patch applies, builds and does what it says" { check_chapter 06-poll; }
@test "solutions 07-epoll: an answer to every exercise; each patch applies, builds and does what it says" { check_chapter 07-epoll; }
@test "solutions 08-event-loop: an answer to every exercise; each patch applies, builds and does what it says" { check_chapter 08-event-loop; }
@test "solutions 09-streams: an answer to every exercise; each patch applies, builds and does what it says" { check_chapter 09-streams; }
@test "solutions 10-coroutines: an answer to every exercise; each patch applies, builds and does what it says" { check_chapter 10-coroutines; }
@test "solutions 11-multicore: an answer to every exercise; each patch applies, builds and does what it says" { check_chapter 11-multicore; }
@test "solutions 12-io-uring: an answer to every exercise; each patch applies, builds and does what it says" { check_chapter 12-io-uring; }
@test "solutions 13-redis: an answer to every exercise; each patch applies, builds and does what it says" { check_chapter 13-redis; }
