#!/usr/bin/env bash
# The .deb on a clean Debian 12, as an operator installs it; run by scripts/container.sh in a
# fresh debian:bookworm container with the package and the demo's tools in /debs (the .deb and
# bin/) and the checkout in /src, both read-only:
#
#   apt-get install ./the.deb pulls nginx in; the module is enabled and nginx -t accepts a
#   configuration that uses it; the token directory is root:www-data 0750; the demo's check
#   passes with Debian's nginx and the installed module; apt-get remove leaves an nginx that
#   works and no longer knows the directive, sets the link aside and keeps the token directory;
#   a reinstall puts the link back and a second remove sets it aside again; purge drops the
#   link; apt refuses the package beside an nginx that provides another nginx-abi.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

deb=$(ls /debs/libnginx-mod-http-wcs-token-auth_*.deb)
link=/etc/nginx/modules-enabled/50-mod-http-wcs-token-auth.conf
site=/etc/nginx/conf.d/wcs-token-auth-check.conf

say "apt-get install $deb"
apt-get update -qq
apt-get install -y -qq "$deb" >/tmp/install.log 2>&1 || { tail -n 20 /tmp/install.log; die "apt-get install failed"; }
dpkg-query -W -f='${Status}\n' nginx | grep -q 'install ok installed' || die "nginx was not pulled in"
echo "  nginx $(dpkg-query -W -f='${Version}' nginx) ($(dpkg-query -W -f='${Provides}' nginx)) installed with it"
[ "$(readlink "$link")" = /usr/share/nginx/modules-available/mod-http-wcs-token-auth.conf ] ||
    die "$link does not enable the module"
[ "$(stat -c '%U:%G %a' /var/lib/nginx/tokens)" = "root:www-data 750" ] ||
    die "/var/lib/nginx/tokens is $(stat -c '%U:%G %a' /var/lib/nginx/tokens), not root:www-data 750"
command -v wcs-token >/dev/null || die "wcs-token is not on PATH"

# A server that uses the directive: only nginx with the module loaded accepts it.
printf 'server { listen 127.0.0.1:%s; location /wss { wcs_token_auth /var/lib/nginx/tokens; } }\n' \
    "${DEMO_PORT:-8080}" >"$site"
nginx -t 2>&1 | sed 's/^/  /'
say "the demo's check with Debian's nginx and the installed module"
mkdir -p /tmp/bin
ln -sf /debs/bin/mock-wcs /debs/bin/wcs-ws-probe /usr/bin/wcs-token /tmp/bin/
DEMO_PREBUILT=1 DEMO_DIR=/tmp/demo DEMO_BIN=/tmp/bin bash /src/scripts/demo.sh check

say "apt-get remove"
apt-get remove -y -qq libnginx-mod-http-wcs-token-auth >/tmp/remove.log 2>&1 ||
    { tail -n 20 /tmp/remove.log; die "apt-get remove failed"; }
removed() { # the state apt-get remove leaves
    [ ! -e "$link" ] || die "$link is still there"
    [ -L "$link.removed" ] || die "$link.removed, the link set aside for a reinstall, is missing"
    [ ! -e /usr/lib/nginx/modules/ngx_http_wcs_token_auth_module.so ] || die "the module is still there"
    [ -d /var/lib/nginx/tokens ] || die "the token directory went with the package"
    if out=$(nginx -t 2>&1); then die "nginx still accepts wcs_token_auth after the remove"; fi
    [[ "$out" == *'unknown directive "wcs_token_auth"'* ]] || die "unexpected nginx -t: $out"
}
removed
echo "  nginx -t without the module: $(grep -o 'unknown directive "wcs_token_auth"' <<<"$out")"

say "apt-get install again: the link set aside comes back"
apt-get install -y -qq "$deb" >/tmp/install.log 2>&1 || { tail -n 20 /tmp/install.log; die "the reinstall failed"; }
[ "$(readlink "$link")" = /usr/share/nginx/modules-available/mod-http-wcs-token-auth.conf ] ||
    die "the reinstall did not restore $link"
[ ! -e "$link.removed" ] || die "$link.removed is still there after the reinstall"
nginx -t 2>&1 | sed 's/^/  /'
say "apt-get remove again"
apt-get remove -y -qq libnginx-mod-http-wcs-token-auth >/tmp/remove.log 2>&1 ||
    { tail -n 20 /tmp/remove.log; die "apt-get remove failed"; }
removed
echo "  the link set aside again as $link.removed"
rm "$site"
nginx -t 2>&1 | sed 's/^/  /'
say "apt-get purge"
apt-get purge -y -qq libnginx-mod-http-wcs-token-auth >/dev/null 2>&1
[ ! -L "$link.removed" ] || die "$link.removed is still there after purge"

say "apt refuses the package beside an nginx of another ABI"
apt-get purge -y -qq nginx nginx-common >/dev/null 2>&1
# A newer nginx than the archive's, built for another ABI: what a later nginx release is to
# this package. Empty: only its control data matters to apt.
mkdir -p /tmp/other/DEBIAN
cat >/tmp/other/DEBIAN/control <<'CONTROL'
Package: nginx
Version: 99.0.0-1
Architecture: all
Maintainer: nobody <nobody@localhost>
Provides: nginx-abi-99.0.0-1
Description: stand-in for an nginx of another ABI
CONTROL
dpkg-deb --build /tmp/other /tmp/nginx-other.deb >/dev/null
dpkg -i /tmp/nginx-other.deb >/dev/null
if apt-get install -y "$deb" >/tmp/refused.log 2>&1; then
    die "apt installed the package beside nginx-abi-99.0.0-1"
fi
grep -q "$(dpkg-deb -f "$deb" Depends | grep -o 'nginx-abi-[^ ,]*')" /tmp/refused.log || { cat /tmp/refused.log; die "apt failed for another reason"; }
grep -E 'Depends|unmet|E:' /tmp/refused.log | sed 's/^/  /'
[ ! -e /usr/lib/nginx/modules/ngx_http_wcs_token_auth_module.so ] || die "the module was installed anyway"
say ".deb checks passed"
