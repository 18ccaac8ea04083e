#!/usr/bin/env bash
# Builds nginx and this module the way an nginx packager would: nginx's own configure with
# --add-dynamic-module pointing at this repository (see ./config and ./config.make), then make.
#
#   scripts/nginx-native.sh                  the nginx 1.28.3 source shipped in the nginx-src
#                                            crate (what the vendored build uses)
#   NGINX_SOURCE=/path/to/nginx scripts/nginx-native.sh
#                                            another nginx source tree (left untouched: copied)
#
# The build lands in target/native-nginx/; the last line printed is its objs/ directory, which
# holds nginx and ngx_http_wcs_token_auth_module.so.
source "$(dirname "$0")/common.sh"
cd "$ROOT"

ensure_packages "${BUILD_PACKAGES[@]}"

if [ -z "${NGINX_SOURCE:-}" ]; then
    manifest=$(cargo metadata --format-version 1 --locked |
        python3 -c 'import json, sys
print(next(p["manifest_path"] for p in json.load(sys.stdin)["packages"] if p["name"] == "nginx-src"))')
    NGINX_SOURCE=$(dirname "$manifest")/nginx
fi
[ -f "$NGINX_SOURCE/auto/configure" ] || die "$NGINX_SOURCE is not an nginx source tree"

tree="$ROOT/target/native-nginx"
rm -rf "$tree"
mkdir -p "$tree"
cp -a "$NGINX_SOURCE/." "$tree/"
cd "$tree"
# Release tarballs have ./configure, the nginx repository (and nginx-src) auto/configure.
configure=./configure
[ -x "$configure" ] || configure=auto/configure
say "configuring $(grep -m1 NGINX_VERSION src/core/nginx.h | cut -d'"' -f2) with --add-dynamic-module=$ROOT"
"$configure" --with-compat --with-http_ssl_module --with-http_v2_module --with-http_realip_module \
    --with-http_auth_request_module --add-dynamic-module="$ROOT" >configure.log 2>&1 ||
    { tail -20 configure.log; die "configure failed (full log: $tree/configure.log)"; }
say "make (nginx and modules)"
make -j"$(nproc)" >make.log 2>&1 || { tail -30 make.log; die "make failed (full log: $tree/make.log)"; }
[ -f objs/ngx_http_wcs_token_auth_module.so ] || die "make did not produce the module"
echo "$tree/objs"
