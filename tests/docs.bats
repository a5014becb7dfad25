#!/usr/bin/env bats
# The docs are part of the product: what they show must be true. Every
# one-line cc command a README shows builds, from the folder it names, with
# zero warnings; every relative link resolves; every file or project name a
# comment or a README points at exists. tests/doccheck.py finds them.

load helpers

DOCCHECK="$ROOT/tests/doccheck.py"

setup() {
    command -v python3 >/dev/null || skip "python3 is not installed (apt-get install python3)"
}

@test "docs: every relative link in the Markdown resolves" {
    run python3 "$DOCCHECK" links
    echo "$output"
    [ "$status" -eq 0 ]
}

@test "docs: every file and project name that a comment or a README points at exists" {
    run python3 "$DOCCHECK" refs
    echo "$output"
    [ "$status" -eq 0 ]
}

@test "docs: every README's cc command builds from its folder with zero warnings" {
    local count=0 folder command out="$BATS_TEST_TMPDIR/build"
    mkdir -p "$out"
    while IFS=$'\t' read -r folder command; do
        if [[ "$(uname -s)" != Linux ]] && grep -q 'LINUX_ONLY = 1' "$ROOT/$folder/Makefile" 2>/dev/null; then
            continue
        fi
        # The program goes to a scratch folder, not next to the sources.
        command=$(sed -E "s| -o ([A-Za-z_]+) | -o $out/\\1 |" <<<"$command")
        echo "$folder: $command"
        (cd "$ROOT/$folder" && eval "$command -Werror") >"$out/log" 2>&1 || { cat "$out/log"; return 1; }
        [[ ! -s "$out/log" ]] || { cat "$out/log"; return 1; }
        count=$(( count + 1 ))
    done < <(python3 "$DOCCHECK" cc)
    echo "$count commands built"
    (( count >= 12 ))
}

@test "docs: the README transcripts marked runnable print what the README says they print" {
    run python3 "$DOCCHECK" transcripts
    echo "$output"
    [ "$status" -eq 0 ]
}
