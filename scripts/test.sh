#!/usr/bin/env bash
# Runs every test: formatting and lints, the core's unit tests, the end-to-end tests against
# the vendored nginx 1.28.3 and against Debian's packaged nginx, the memory checks, a short
# fuzz run, and the demo's own check. WCS_LONG=1 runs the long variants.
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

# --- Fuzzing and memory (issue 4). WCS_LONG=1 makes both long: 300 s per fuzz target, and
# memcheck/RSS at 100k vs 1M requests. ---
say "memory: valgrind memcheck and RSS (scripts/memory.sh)"
bash scripts/memory.sh 2>&1 | tee -a "$RESULTS"
say "fuzzing (scripts/fuzz.sh)"
bash scripts/fuzz.sh
# --- end of fuzzing and memory ---

say "end-to-end tests, Debian's nginx $(/usr/sbin/nginx -v 2>&1 | sed 's|.*/||')"
NGINX_BUILD_DIR=$(debian_build_dir)
export NGINX_BUILD_DIR
CARGO_TARGET_DIR="$ROOT/target/external" WCS_NGINX=/usr/sbin/nginx \
    cargo test --release --no-default-features --features export-modules --tests 2>&1 | tee -a "$RESULTS"
unset NGINX_BUILD_DIR

say "demo"
DEMO_PORT=${DEMO_PORT:-$((20000 + RANDOM % 20000))} DEMO_WCS_PORT=${DEMO_WCS_PORT:-$((40000 + RANDOM % 20000))} \
    bash scripts/demo.sh check

say "all tests passed"
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$RESULTS"
