#!/usr/bin/env bash
# Builds the Debian package of the module for Debian's packaged nginx, laid out like Debian's
# own module packages (libnginx-mod-http-geoip and the rest):
#
#   scripts/deb.sh [OUTDIR]     (default target/deb) -> OUTDIR/libnginx-mod-http-wcs-token-auth_<version>_<arch>.deb
#
#   usr/lib/nginx/modules/ngx_http_wcs_token_auth_module.so   built against nginx-dev's tree
#   usr/share/nginx/modules-available/mod-http-wcs-token-auth.conf   its load_module line
#   usr/bin/wcs-token, its manual page, the example nginx.conf in the package's doc directory
#   postinst/prerm/postrm (packaging/deb/): the modules-enabled link, /var/lib/nginx/tokens
#
# Depends on the nginx-abi-* that the nginx it was built against provides (read with
# dpkg-query, so a package for another nginx build is never installable beside it) and on the
# shared libraries dpkg-shlibdeps finds. Runs on Debian (the Dockerfile's build stage runs it).
# DEBFULLNAME and DEBEMAIL set the Maintainer field (whoever builds the package for
# distribution should set them; the default names the project at a reserved address).
source "$(dirname "$0")/common.sh"
cd "$ROOT"

OUT=${1:-$ROOT/target/deb}
PKG=libnginx-mod-http-wcs-token-auth
ensure_packages dpkg-dev

bash scripts/build.sh --debian
cargo build --release --locked -p wcs-token

abi=$(dpkg-query -W -f='${Provides}' nginx | grep -o 'nginx-abi-[^ ,]*') ||
    die "the installed nginx provides no nginx-abi-*: $(dpkg-query -W -f='${Provides}' nginx)"
# The crate's version: the first version key of Cargo.toml's [package] table.
upstream=$(awk '/^\[/ { in_pkg = ($0 == "[package]") } in_pkg && /^version *=/ { gsub(/^version *= *"|".*$/, ""); print; exit }' Cargo.toml)
[ -n "$upstream" ] || die "no version in Cargo.toml's [package]"
version="$upstream-1"
arch=$(dpkg --print-architecture)
maintainer="${DEBFULLNAME:-ngx-wcs-token-auth maintainers} <${DEBEMAIL:-maintainers@example.invalid}>"
doc="usr/share/doc/$PKG"

stage=$(mktemp -d)
shlibs_dir=$(mktemp -d)
chmod 0755 "$stage"
trap 'rm -rf "$stage" "$shlibs_dir"' EXIT
install -d "$stage/DEBIAN"
install -D -m 0644 "target/dist/$DIST_SO" "$stage/usr/lib/nginx/modules/$DIST_SO"
install -D -m 0755 target/release/wcs-token "$stage/usr/bin/wcs-token"
# What dh_strip does: no debugging symbols or build notes in the package.
strip --strip-unneeded --remove-section=.comment --remove-section=.note \
    "$stage/usr/lib/nginx/modules/$DIST_SO" "$stage/usr/bin/wcs-token"
install -d "$stage/usr/share/nginx/modules-available"
echo "load_module modules/$DIST_SO;" >"$stage/usr/share/nginx/modules-available/mod-http-wcs-token-auth.conf"
install -D -m 0644 packaging/deb/copyright "$stage/$doc/copyright"
install -D -m 0644 nginx-conf/nginx.conf "$stage/$doc/examples/nginx.conf"
install -D -m 0644 packaging/deb/wcs-token.1 "$stage/usr/share/man/man1/wcs-token.1"
gzip -9n "$stage/usr/share/man/man1/wcs-token.1"
date=$(date -R -d "@${SOURCE_DATE_EPOCH:-$(stat -c %Y Cargo.toml)}")
cat >"$stage/$doc/changelog.Debian" <<CHANGES
$PKG ($version) bookworm; urgency=medium

  * ngx-wcs-token-auth $upstream, built for Debian's nginx
    $(dpkg-query -W -f='${Version}' nginx) ($abi).

 -- $maintainer  $date
CHANGES
gzip -9n "$stage/$doc/changelog.Debian"
chmod -R u=rwX,go=rX "$stage/usr"

# dpkg-shlibdeps reads a debian/control; this one only names the package.
mkdir "$shlibs_dir/debian"
printf 'Source: ngx-wcs-token-auth\n\nPackage: %s\nArchitecture: any\n' "$PKG" >"$shlibs_dir/debian/control"
shlibs=$(cd "$shlibs_dir" && dpkg-shlibdeps -O "$stage/usr/lib/nginx/modules/$DIST_SO" "$stage/usr/bin/wcs-token" |
    sed -n 's/^shlibs:Depends=//p')

sed -e "s|@VERSION@|$version|" -e "s|@ARCH@|$arch|" -e "s|@MAINTAINER@|$maintainer|" \
    -e "s|@SIZE@|$(du -sk --exclude=DEBIAN "$stage" | cut -f1)|" -e "s|@DEPENDS@|$abi, $shlibs|" \
    packaging/deb/control.in >"$stage/DEBIAN/control"
install -m 0755 packaging/deb/postinst packaging/deb/prerm packaging/deb/postrm "$stage/DEBIAN/"
(cd "$stage" && find usr -type f -exec md5sum {} + | sort -k 2 >DEBIAN/md5sums)

mkdir -p "$OUT"
deb="$OUT/${PKG}_${version}_$arch.deb"
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
say "built $deb (Depends: $abi, $shlibs)"
