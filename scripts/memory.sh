#!/usr/bin/env bash
# Memory checks of the module inside nginx (tests/e2e/memory.rs): nginx with
# `master_process off` under valgrind memcheck, and its resident memory, after 10k and after
# 100k requests (WCS_LONG=1: 100k and 1M); then memcheck of open sessions closed by the module
# and by their clients (tests/e2e/sessions.rs).
#
# For memcheck, nginx is rebuilt from the same source with NGX_DEBUG_PALLOC, which makes every
# pool allocation a malloc of its own: without it, nginx carves requests out of 16 KiB pool
# blocks and valgrind cannot see a read or write past a header value or any other pool object.
# The module is loaded into it unchanged (both are built --with-compat from the same source).
source "$(dirname "$0")/common.sh"
cd "$ROOT"

ensure_packages "${BUILD_PACKAGES[@]}" valgrind

say "building the module and the tests"
cargo test --release --test e2e --no-run
# The vendored nginx the tests were built against (build.rs passes its objs/ to the tests).
build_dir=$(cargo test --release --test e2e --no-run --message-format=json 2>/dev/null |
    grep -o '"WCS_NGINX_BUILD_DIR","[^"]*"' | tail -1 | cut -d'"' -f4)
nginx="$build_dir/nginx"
[ -x "$nginx" ] || die "the vendored nginx binary ($nginx) was not found"
src=$(cargo metadata --format-version 1 --locked 2>/dev/null |
    grep -o '"manifest_path":"[^"]*/nginx-src-[^"]*/Cargo.toml"' | head -1 | sed 's/.*:"//; s|/Cargo.toml"$||')
[ -d "$src/nginx/src" ] || die "nginx-src sources not found (cargo metadata gave '$src')"
mapfile -t args < <("$nginx" -V 2>&1 | sed -n 's/^configure arguments: //p' | tr ' ' '\n' | grep -v -e '^--builddir=' -e '^$')
version=$("$nginx" -v 2>&1 | sed 's|.*/||')

tree="$ROOT/target/nginx-debug-palloc"
stamp="$version ${args[*]}"
if [ ! -x "$tree/objs/nginx" ] || [ "$(cat "$tree/.stamp" 2>/dev/null)" != "$stamp" ]; then
    say "building nginx $version with NGX_DEBUG_PALLOC for valgrind"
    rm -rf "$tree"
    mkdir -p "$tree"
    cp -a "$src/nginx/." "$tree/"
    (
        cd "$tree"
        auto/configure "${args[@]}" --with-cc-opt='-DNGX_DEBUG_PALLOC=1 -g -O1' >configure.log 2>&1 ||
            { tail -20 configure.log; exit 1; }
        make -j2 >make.log 2>&1 || { tail -30 make.log; exit 1; }
    )
    echo "$stamp" >"$tree/.stamp"
fi

say "memory tests (memcheck with $tree/objs/nginx, RSS with $nginx)"
WCS_MEMCHECK_NGINX="$tree/objs/nginx" cargo test --release --test e2e -- memory:: --ignored --nocapture --test-threads=1
WCS_MEMCHECK_NGINX="$tree/objs/nginx" cargo test --release --test e2e -- sessions::memcheck --ignored --nocapture --test-threads=1
