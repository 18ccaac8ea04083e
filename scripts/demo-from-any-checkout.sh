#!/usr/bin/env bash
# The demo from checkouts that nginx's workers cannot enter (as root they run as nobody): a
# fresh copy of this checkout (its files without target/, as a clone holds them) inside a 0700
# directory, like a clone under /root or in `mktemp -d`, and one under a path with a space.
#
#   1. scripts/demo.sh check passes in the 0700 checkout; its files are outside it, target/demo
#      links to them, and the workers may look tokens up but nobody else may list them;
#   2. scripts/demo.sh check passes in the checkout under a path with a space;
#   3. there, scripts/demo.sh and scripts/build.sh stop at once with one line, building nothing;
#   4. a demo whose nginx cannot read its files (DEMO_DIR inside the 0700 directory) exits 1,
#      quoting nginx's error-log line, prints no token, and leaves nothing running.
#
# The demos run on the binaries built here (DEMO_PREBUILT=1 with target/dist/ and
# target/release/, as scripts/demo.sh builds them), so this builds nothing. As another user
# than root nginx's workers run as that user, who can enter the checkout: nothing to prove.
source "$(dirname "$0")/common.sh"
cd "$ROOT"

if [ "$(id -u)" -ne 0 ]; then
    say "skipped: not root (nginx's workers run as $(id -un), who can enter any checkout of theirs)"
    exit 0
fi
for f in target/dist/nginx "target/dist/$DIST_SO" target/release/{mock-wcs,wcs-token,wcs-ws-probe}; do
    [ -f "$f" ] || die "$f is missing: run scripts/demo.sh check first (it builds)"
done
export DEMO_PREBUILT=1 DEMO_NGINX="$ROOT/target/dist/nginx" DEMO_MODULE="$ROOT/target/dist/$DIST_SO" \
    DEMO_BIN="$ROOT/target/release"
demo_ports

private=$(mktemp -d)
plain="$private/checkout"
spaced="$private/with space/checkout"
cleanup() {
    local c files
    for c in "$plain" "$spaced"; do
        [ -L "$c/target/demo" ] || continue
        (cd "$c" && bash scripts/demo.sh stop) || true
        files=$(readlink "$c/target/demo")
        [[ "$files" != /tmp/wcs-token-auth-demo.* ]] || rm -rf "$files"
    done
    rm -rf "$private"
}
trap cleanup EXIT
[ "$(stat -c %a "$private")" = 700 ] || die "mktemp -d made $private $(stat -c %a "$private"), not 700"

# The checkout's files without what builds and runs leave in it.
fresh_copy() {
    mkdir -p "$1"
    tar --exclude=./target --exclude=./.git --exclude=node_modules --exclude=./fuzz/target -cf - . |
        tar -C "$1" -xf -
}

say "1. scripts/demo.sh check in a fresh checkout inside a 0700 directory ($plain)"
fresh_copy "$plain"
(cd "$plain" && bash scripts/demo.sh check)
files=$(readlink "$plain/target/demo") || die "$plain/target/demo is not a link to the demo's files"
[[ "$files" != "$private"/* ]] || die "the demo's files are inside the private directory: $files"
mode=$(stat -c %a "$files/tokens")
[ "$mode" = 710 ] || die "the demo's token directory $files/tokens is $mode, not 710: others may list the tokens"

say "2. scripts/demo.sh check in a fresh checkout under a path with a space ($spaced)"
fresh_copy "$spaced"
(cd "$spaced" && bash scripts/demo.sh check)

say "3. scripts/demo.sh and scripts/build.sh there, without DEMO_PREBUILT: one line, no build"
for cmd in scripts/demo.sh scripts/build.sh; do
    rc=0
    out=$(cd "$spaced" && DEMO_PREBUILT=0 timeout 20 bash "$cmd" 2>&1) || rc=$?
    echo "  $cmd: exit $rc: $out"
    [ "$rc" -ne 0 ] || die "$cmd succeeded in a path with a space"
    if [ "$(wc -l <<<"$out")" != 1 ] || [[ "$out" != "error: cannot build in \"$spaced\": "* ]]; then
        die "$cmd did not stop at once with one line"
    fi
    if [ -e "$spaced/target/dist" ] || [ -e "$spaced/target/release" ]; then die "$cmd started a build"; fi
done

say "4. a demo whose nginx cannot read its files fails loudly"
rc=0
out=$(cd "$plain" && DEMO_DIR="$private/demo" bash scripts/demo.sh 2>&1) || rc=$?
while IFS= read -r line; do echo "  | $line"; done <<<"$out"
[ "$rc" -eq 1 ] || die "scripts/demo.sh exited $rc, not 1, though nginx cannot read its files"
[[ "$out" == *"error: the demo does not work: "* ]] || die "scripts/demo.sh did not say what failed"
[[ "$out" == *"(13: Permission denied)"* ]] || die "scripts/demo.sh did not quote nginx's error-log line"
[[ "$out" != *"Token:"* ]] || die "scripts/demo.sh printed the instructions of a demo that does not work"
for p in "$DEMO_PORT" "$DEMO_OTHER_PORT" "$DEMO_WCS_PORT"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
        die "port $p still answers after the failed start: the demo was not stopped"
    fi
done

say "the demo works from any checkout, and says why when it cannot"
