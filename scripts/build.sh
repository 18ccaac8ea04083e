#!/usr/bin/env bash
# Builds the module in release mode into target/dist/.
#
#   scripts/build.sh            nginx 1.28.3 from the nginx-src crate, and the module for it:
#                               target/dist/ngx_http_wcs_token_auth_module.so and target/dist/nginx
#   NGINX_BUILD_DIR=/path/to/nginx/objs scripts/build.sh
#                               the module for that configured nginx tree (the .so only)
#   scripts/build.sh --debian   the module for Debian's packaged nginx (installs nginx-dev,
#                               configures its source with Debian's flags)
source "$(dirname "$0")/common.sh"
cd "$ROOT"
refuse_path_with_space

ensure_packages "${BUILD_PACKAGES[@]}"
if [ "${1:-}" = "--debian" ]; then
    ensure_packages "${DEBIAN_PACKAGES[@]}"
    NGINX_BUILD_DIR=$(debian_build_dir)
    export NGINX_BUILD_DIR
fi

mkdir -p target/dist
if [ -n "${NGINX_BUILD_DIR:-}" ]; then
    # Separate target dir: bindings for another nginx must not mix with the vendored ones.
    export CARGO_TARGET_DIR="$ROOT/target/external"
    say "building against $NGINX_BUILD_DIR"
    cargo build --release --no-default-features --features export-modules
    cp "$CARGO_TARGET_DIR/release/$MODULE_SO" "target/dist/$DIST_SO"
    rm -f target/dist/nginx # it would not match this module
else
    say "building nginx 1.28.3 (nginx-src) and the module"
    cargo build --release
    nginx_bin=$(ls -t target/release/build/nginx-sys-*/out/objs/nginx | head -n 1)
    cp "target/release/$MODULE_SO" "target/dist/$DIST_SO"
    cp "$nginx_bin" target/dist/nginx
fi
say "built: $(ls target/dist/* | tr '\n' ' ')"
