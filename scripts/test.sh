#!/usr/bin/env bash
# Runs every test: formatting and lints, the core's unit tests, the end-to-end tests against
# the vendored nginx 1.28.3, against Debian's packaged nginx, and against the module built by
# nginx's own configure/make (./config); the memory checks and a short fuzz run; the benchmark
# harness's answer check; the demo's own check, the demo again from a copy of the checkout in
# a private (0700) directory and under a path with a space, the demo page in a headless
# browser, the demo from a staged Debian-style install, and the container tests
# (scripts/container.sh: the Dockerfile's stages, the .deb, nginx running in containers).
# Installs the Debian packages it needs (as root) when they are missing.
# WCS_LONG=1 scripts/test.sh runs the long variants (minutes of load and churn, a million
# random hostile requests, 100k and 1M requests under valgrind, 300 s of fuzzing per target)
# instead of the short ones.
source "$(dirname "$0")/common.sh"
cd "$ROOT"
refuse_path_with_space

ensure_packages "${BUILD_PACKAGES[@]}" "${DEBIAN_PACKAGES[@]}" "${TEST_PACKAGES[@]}"
# PyJWT and npm jose for the signed-token interoperability tests (once, under target/interop).
interop_tools
RESULTS=$(mktemp)
trap 'rm -f "$RESULTS"' EXIT
# The reliability tests append their counts here; printed at the end.
export WCS_REPORT="$ROOT/target/security-figures.txt"
mkdir -p "$ROOT/target" && : >"$WCS_REPORT"

say "cargo fmt --check"
cargo fmt --all -- --check

say "cargo clippy"
cargo clippy --release --workspace --all-targets -- -D warnings

say "unit and end-to-end tests, vendored nginx 1.28.3"
cargo test --release --workspace 2>&1 | tee -a "$RESULTS"

# WCS_LONG=1 makes both long: memcheck and RSS at 100k vs 1M requests, 300 s per fuzz target.
say "memory: valgrind memcheck and RSS (scripts/memory.sh)"
bash scripts/memory.sh 2>&1 | tee -a "$RESULTS"
say "fuzzing (fuzz/fuzz.sh)"
bash fuzz/fuzz.sh

say "end-to-end tests, Debian's nginx $(/usr/sbin/nginx -v 2>&1 | sed 's|.*/||')"
NGINX_BUILD_DIR=$(debian_build_dir)
export NGINX_BUILD_DIR
# WCS_TOKEN: the CLI from the run above (tests/e2e/token_cli.rs; this target dir has none).
CARGO_TARGET_DIR="$ROOT/target/external" WCS_NGINX=/usr/sbin/nginx WCS_TOKEN="$ROOT/target/release/wcs-token" \
    cargo test --release --no-default-features --features export-modules --tests 2>&1 | tee -a "$RESULTS"
unset NGINX_BUILD_DIR

say "nginx-native build: configure --add-dynamic-module=. && make, then the end-to-end tests"
NATIVE_OBJS=$(bash scripts/nginx-native.sh | tail -n 1)
NGINX_BUILD_DIR=$NATIVE_OBJS CARGO_TARGET_DIR="$ROOT/target/native" \
    WCS_MODULE="$NATIVE_OBJS/ngx_http_wcs_token_auth_module.so" WCS_TOKEN="$ROOT/target/release/wcs-token" \
    cargo test --release --no-default-features --tests 2>&1 | tee -a "$RESULTS"

say "demo"
demo_ports # the same three for every demo step below
bash scripts/demo.sh check
say "the demo from fresh checkouts in a 0700 directory and under a path with a space"
bash scripts/demo-from-any-checkout.sh

# The demo page in headless chromium: a token from wcs-token issue, revoked, none, another origin.
say "browser test"
bash testkit/browser-test/run.sh 2>&1 | tee -a "$RESULTS"

say "install into a staging root (scripts/install.sh), then the demo from it on Debian's nginx"
STAGE="$ROOT/target/stage"
rm -rf "$STAGE"
bash scripts/install.sh "$STAGE"
snippet=usr/share/nginx/modules-available/mod-http-wcs-token-auth.conf
[ "$(readlink "$STAGE/etc/nginx/modules-enabled/50-mod-http-wcs-token-auth.conf")" = "/$snippet" ] ||
    die "modules-enabled link does not point at /$snippet"
check_prefix=$(mktemp -d)
ln -s "$STAGE/usr/lib/nginx/modules" "$check_prefix/modules" # Debian's prefix has this link
printf 'include %s;\nevents {}\nhttp { server { location / { wcs_token_auth /tmp; } } }\n' \
    "$STAGE/$snippet" >"$check_prefix/nginx.conf"
/usr/sbin/nginx -t -q -p "$check_prefix" -c "$check_prefix/nginx.conf" -e /dev/stderr -g "pid $check_prefix/nginx.pid;" ||
    die "Debian's nginx refuses the installed module"
rm -rf "$check_prefix"
DEMO_PREBUILT=1 DEMO_NGINX=/usr/sbin/nginx DEMO_MODULE="$STAGE/usr/lib/nginx/modules/$DIST_SO" \
    DEMO_BIN="$STAGE/usr/local/bin" bash scripts/demo.sh check

say "security figures${WCS_LONG:+ (WCS_LONG=$WCS_LONG)}"
cat "$WCS_REPORT" >&2  # kept in target/security-figures.txt
if grep -q 'NOT RUN' "$WCS_REPORT"; then
    say "NOTE: some reliability checks were NOT RUN on this machine (see the figures above)"
fi

# Every variant of the benchmark answers as it must (200/101 for a valid token, 403 for an
# invalid one) on the real nginx, and a cached hot token makes no token-directory system call;
# no timing here.
say "bench check"
bash bench/bench.sh --check

# The Dockerfile's stages built with podman, the .deb linted and installed in a clean
# container, the demo's check, the browser test and the end-to-end suite against nginx running
# in containers (a NOTE, repeated below, and no failure only where no container engine can run
# at all: no podman and no way to install it).
say "containers (scripts/container.sh)"
bash scripts/container.sh 2>&1 | tee -a "$RESULTS"

say "all tests passed"
# What was not run is said again here, where the run's verdict is read.
if grep -q 'NOT RUN' "$WCS_REPORT"; then
    say "NOTE: some reliability checks were NOT RUN (target/security-figures.txt)"
fi
grep '^==> NOTE: container tests SKIPPED' "$RESULTS" >&2 || true
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$RESULTS"
