#!/usr/bin/env bash
# Runs every test: formatting and lints, the core's unit tests, the end-to-end tests against
# the vendored nginx 1.28.3 and against Debian's packaged nginx, and the demo's own check.
# Installs the Debian packages it needs (as root) when they are missing.
source "$(dirname "$0")/common.sh"
cd "$ROOT"

ensure_packages "${BUILD_PACKAGES[@]}" "${DEBIAN_PACKAGES[@]}"
RESULTS=$(mktemp)
trap 'rm -f "$RESULTS"' EXIT

say "cargo fmt --check"
cargo fmt --all -- --check

say "cargo clippy"
cargo clippy --release --workspace --all-targets -- -D warnings

say "unit and end-to-end tests, vendored nginx 1.28.3"
cargo test --release --workspace 2>&1 | tee -a "$RESULTS"

say "end-to-end tests, Debian's nginx $(/usr/sbin/nginx -v 2>&1 | sed 's|.*/||')"
NGINX_BUILD_DIR=$(debian_build_dir)
export NGINX_BUILD_DIR
CARGO_TARGET_DIR="$ROOT/target/external" WCS_NGINX=/usr/sbin/nginx \
    cargo test --release --no-default-features --features export-modules --tests 2>&1 | tee -a "$RESULTS"
unset NGINX_BUILD_DIR

say "demo"
DEMO_PORT=${DEMO_PORT:-$((20000 + RANDOM % 20000))} DEMO_WCS_PORT=${DEMO_WCS_PORT:-$((40000 + RANDOM % 20000))} \
    bash scripts/demo.sh check

# --- benchmark harness (issue 3): every variant of scripts/bench.sh answers as it must -------
# (200/101 for a valid token, 403 for an invalid one) on the real nginx; no timing here.
say "bench check"
bash scripts/bench.sh --check

say "all tests passed"
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$RESULTS"
