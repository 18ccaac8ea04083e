# Shared by the scripts in this folder and by bench/bench.sh, fuzz/fuzz.sh and
# testkit/browser-test/run.sh: `source "$(dirname "$0")/common.sh"` (with the right ../).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MODULE_SO=libngx_http_wcs_token_auth_module.so
DIST_SO=ngx_http_wcs_token_auth_module.so

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Stops a build before it starts in a checkout whose path has a space: nginx's configure, run
# under target/ by the cargo build (nginx-sys) and by the scripts here, cannot build there.
refuse_path_with_space() {
    case "$ROOT" in
        *[[:space:]]*) die "cannot build in \"$ROOT\": nginx's configure fails in a path with a space; clone into a path without one" ;;
    esac
}

# Exports the demo's three ports, unless set: adjacent, below the kernel's ephemeral range
# (32768-60999), where no outgoing connection of a parallel test run can be holding one.
demo_ports() {
    local base=$((20000 + RANDOM % 12000))
    export DEMO_PORT=${DEMO_PORT:-$base} DEMO_OTHER_PORT=${DEMO_OTHER_PORT:-$((base + 1))} \
        DEMO_WCS_PORT=${DEMO_WCS_PORT:-$((base + 2))}
}

# Installs the Debian packages given that are not installed yet (as root, with apt-get).
ensure_packages() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    command -v apt-get >/dev/null || die "missing packages (${missing[*]}) and no apt-get: install them by hand"
    local sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    say "installing ${missing[*]}"
    "${sudo[@]}" apt-get -o DPkg::Lock::Timeout=600 update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${missing[@]}" >/dev/null
}

BUILD_PACKAGES=(clang libclang-dev libpcre2-dev libssl-dev zlib1g-dev make pkg-config)
# Debian's packaged nginx and the source tree it was built from.
DEBIAN_PACKAGES=(nginx nginx-dev)
# Tools the end-to-end tests run: an HTTP/2 client, syscall tracing, socket and process counts.
TEST_PACKAGES=(curl strace iproute2 procps)

# Prepares a configured copy of Debian's nginx source (from nginx-dev) and prints its objs/.
debian_build_dir() {
    local src=/usr/share/nginx/src tree="$ROOT/target/debian-nginx"
    [ -f "$src/conf_flags" ] || die "$src/conf_flags not found: is nginx-dev installed?"
    local stamp
    stamp=$(dpkg-query -W -f='${Version}' nginx-dev)
    if [ ! -f "$tree/objs/ngx_auto_config.h" ] || [ "$(cat "$tree/.version" 2>/dev/null)" != "$stamp" ]; then
        say "configuring Debian's nginx source $stamp in $tree"
        rm -rf "$tree"
        mkdir -p "$tree"
        cp -a "$src/." "$tree/"
        (
            cd "$tree"
            # shellcheck disable=SC1091
            source ./conf_flags
            ./configure "${NGX_CONF_FLAGS[@]}" >configure.log 2>&1 || { tail -20 configure.log; exit 1; }
        )
        echo "$stamp" >"$tree/.version"
    fi
    echo "$tree/objs"
}

# PyJWT (PyPI) and jose (npm) for the signed-token interoperability tests, pinned, installed
# once under target/interop (a Python venv and an npm prefix). Exports WCS_INTEROP_PYTHON and
# WCS_INTEROP_NODE_MODULES; with them set, those tests fail when a tool is missing.
INTEROP_PYJWT='PyJWT[crypto]==2.10.1'
INTEROP_CRYPTOGRAPHY='cryptography==44.0.2'
INTEROP_JOSE='jose@5.9.6'
interop_tools() {
    local dir="$ROOT/target/interop" want="$INTEROP_PYJWT $INTEROP_CRYPTOGRAPHY $INTEROP_JOSE"
    if [ "$(cat "$dir/.installed" 2>/dev/null)" != "$want" ]; then
        say "installing $INTEROP_PYJWT and $INTEROP_JOSE into $dir"
        command -v npm >/dev/null || ensure_packages nodejs npm
        rm -rf "$dir"
        mkdir -p "$dir/node"
        # Debian's python3 makes no venv without python3-venv.
        python3 -m venv "$dir/venv" 2>/dev/null || {
            ensure_packages python3-venv
            rm -rf "$dir/venv"
            python3 -m venv "$dir/venv"
        }
        "$dir/venv/bin/pip" install -q --disable-pip-version-check "$INTEROP_PYJWT" "$INTEROP_CRYPTOGRAPHY"
        (cd "$dir/node" && npm install --silent --no-audit --no-fund --no-save "$INTEROP_JOSE" >/dev/null)
        echo "$want" >"$dir/.installed"
    fi
    export WCS_INTEROP_PYTHON="$dir/venv/bin/python" WCS_INTEROP_NODE_MODULES="$dir/node/node_modules"
}
