#!/usr/bin/env bash
# Installs the module for Debian's packaged nginx, Debian-style, plus the operator tools:
#
#   scripts/install.sh [DESTDIR]     (default /; the Dockerfile stages into a DESTDIR)
#
#   usr/lib/nginx/modules/ngx_http_wcs_token_auth_module.so   built by scripts/build.sh --debian
#   usr/share/nginx/modules-available/mod-http-wcs-token-auth.conf   its load_module line, and
#   etc/nginx/modules-enabled/50-mod-http-wcs-token-auth.conf        the link that enables it
#   usr/local/bin/{wcs-token,mock-wcs,wcs-ws-probe}
#   usr/share/doc/ngx-wcs-token-auth/nginx.conf                     the example configuration
#   var/lib/nginx/tokens                                            root:www-data 0750
#
# Debian's /etc/nginx/nginx.conf includes modules-enabled/*.conf, so `nginx -t` sees the
# module at once; the example site is not enabled for you.
source "$(dirname "$0")/common.sh"
cd "$ROOT"

DEST=${1:-/}
DEST=${DEST%/}

bash scripts/build.sh --debian
cargo build --release --locked -p wcs-token -p mock-wcs

say "installing into ${DEST:-/}"
install -D -m 0644 "target/dist/$DIST_SO" "$DEST/usr/lib/nginx/modules/$DIST_SO"
install -d "$DEST/usr/share/nginx/modules-available" "$DEST/etc/nginx/modules-enabled"
echo "load_module modules/$DIST_SO;" \
    >"$DEST/usr/share/nginx/modules-available/mod-http-wcs-token-auth.conf"
ln -sfn /usr/share/nginx/modules-available/mod-http-wcs-token-auth.conf \
    "$DEST/etc/nginx/modules-enabled/50-mod-http-wcs-token-auth.conf"
for bin in wcs-token mock-wcs wcs-ws-probe; do
    install -D -m 0755 "target/release/$bin" "$DEST/usr/local/bin/$bin"
done
install -D -m 0644 nginx-conf/nginx.conf "$DEST/usr/share/doc/ngx-wcs-token-auth/nginx.conf"
install -d -m 0750 "$DEST/var/lib/nginx/tokens"
# www-data is who Debian's nginx workers run as; they need to search the directory.
if getent group www-data >/dev/null; then
    chown root:www-data "$DEST/var/lib/nginx/tokens"
fi
say "installed: $(cd "${DEST:-/}" && ls -d usr/lib/nginx/modules/$DIST_SO usr/local/bin/wcs-token var/lib/nginx/tokens | tr '\n' ' ')"
