#!/usr/bin/env bash
# Builds the Dockerfile's stages with podman and tests the module in containers:
#
#   scripts/container.sh          everything below
#   scripts/container.sh images   only the engine, the base image and the three stages
#
#   1. the engine: podman and runc, installed when missing (as root). No podman setting is
#      written: each command says what it needs (runc, the cgroupfs manager, the events file,
#      the host's network, ulimits no higher than the machine's hard limits);
#   2. the base image debian:bookworm, made from Debian's archive with debootstrap when no
#      image of that name is there (no image registry needs to be reachable);
#   3. the stages build (the module, the tools and the .deb), runtime (Debian's nginx with the
#      .deb installed) and test (the end-to-end suite against the runtime image's nginx),
#      tagged wcs-token-auth-ci:{build,runtime,test}-<checkout> (a hash of this checkout's path:
#      another checkout's run cannot retag them); the images they replace are removed;
#   4. lintian on the .deb, then the .deb in a clean debian:bookworm container: apt-get
#      install pulls nginx in, nginx -t, the demo's check, apt-get remove, and apt refusing an
#      nginx of another ABI (packaging/deb/check.sh);
#   5. the runtime container on loopback ports (--network host): the demo's own check inside it;
#      then the demo as the image runs it, with its token directory bind-mounted from the host,
#      so wcs-token on the host issues and revokes the tokens the container's nginx reads, and
#      the browser test (testkit/browser-test) drives the demo page through it;
#   6. the runtime image for real use: its nginx in the foreground with a mounted nginx.conf and
#      token directory (no token 403, a token issued on the host 200, revoked 403);
#   7. the end-to-end suite in the test container.
#
# Every container it starts is removed when it ends. It prints a NOTE and exits 0 without
# testing only where no engine can run at all: no podman, and no way to install it (not root,
# or no apt-get). Once podman is there, anything that fails (podman info, starting a container,
# not being root) fails the run. WCS_SKIP_CONTAINERS=1 skips on purpose, with the same NOTE.
# The .deb and the tools built in the image are copied to target/container/out/.
source "$(dirname "$0")/common.sh"
cd "$ROOT"

IMAGE=${WCS_IMAGE:-wcs-token-auth-ci}
# The checkout's own tags, so that runs from two checkouts on one machine do not meet.
TAG=$(printf '%s' "$ROOT" | sha256sum | cut -c 1-12)
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
OUT="$ROOT/target/container/out"
NAME="wcs-token-auth-test-$$"
TIMES=()

# runc: crun refuses a hybrid cgroup hierarchy; cgroupfs and the events file: no systemd or
# journald needed. Given per command, so no podman setting of the machine changes.
PODMAN=(podman --runtime runc --cgroup-manager cgroupfs --events-backend file)
pm() { "${PODMAN[@]}" "$@"; }

# What every container gets: the host's network (loopback ports and the package archives, no
# bridge needed) and ulimits within the machine's hard limits (runc cannot start a container
# that asks for more, and podman asks for more by default as root).
nofile=$(ulimit -Hn)
nproc=$(ulimit -Hu)
if [ "$nofile" = unlimited ] || [ "$nofile" -gt 65536 ]; then nofile=65536; fi
if [ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ]; then nproc=32768; fi
CONTAINER=(--network host --ulimit "nofile=$nofile:$nofile" --ulimit "nproc=$nproc:$nproc")

# Skips the container tests with a NOTE: only for a machine where no engine can run at all.
skip() {
    say "NOTE: container tests SKIPPED: $*"
    exit 0
}

timed() { # timed LABEL COMMAND...: runs it and keeps its duration for the summary
    local label=$1 start=$SECONDS
    shift
    "$@"
    TIMES+=("$(printf '%-34s %4ds' "$label" $((SECONDS - start)))")
}

cleanup() {
    local c
    for c in $(pm ps -a --filter "name=^$NAME" --format '{{.Names}}' 2>/dev/null); do
        pm rm -f -t 2 "$c" >/dev/null 2>&1 || true
    done
    [ -z "${DEMO_HOST_DIR:-}" ] || rm -rf "$DEMO_HOST_DIR"
}

engine() {
    [ "${WCS_SKIP_CONTAINERS:-0}" = 0 ] || skip "WCS_SKIP_CONTAINERS=$WCS_SKIP_CONTAINERS"
    if ! command -v podman >/dev/null; then
        [ "$(id -u)" -eq 0 ] || skip "podman is not installed, and only root can install it"
        command -v apt-get >/dev/null || skip "podman is not installed, and there is no apt-get to install it"
    fi
    # From here on an engine can run, and a failure is a failure.
    [ "$(id -u)" -eq 0 ] || die "the container tests run podman as root (debootstrap, runc, the host's network): run as root"
    ensure_packages podman runc
    pm info >/dev/null 2>&1 || die "podman cannot run here: $(pm info 2>&1 | tail -n 1)"
}

# debian:bookworm from Debian's archive, with the same apt sources as Docker's official image
# (bookworm, bookworm-updates, bookworm-security), so the Dockerfile sees the same packages.
base_image() {
    pm image exists docker.io/library/debian:bookworm && return 0
    ensure_packages debootstrap
    local root
    root=$(mktemp -d /tmp/wcs-bookworm.XXXXXX)
    say "debootstrap --variant=minbase bookworm from $MIRROR"
    debootstrap --variant=minbase bookworm "$root" "$MIRROR" >"$root.log" 2>&1 ||
        { tail -n 20 "$root.log"; rm -rf "$root" "$root.log"; die "debootstrap failed"; }
    local security=${MIRROR%/debian}/debian-security
    cat >"$root/etc/apt/sources.list" <<LIST
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb $security bookworm-security main
LIST
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/archives/*.deb
    tar -C "$root" -c . | pm import -q - docker.io/library/debian:bookworm >/dev/null ||
        { rm -rf "$root" "$root.log"; die "podman import of the debootstrap root failed"; }
    rm -rf "$root" "$root.log"
}

# A kernel or runtime that refuses containers shows here, before any build.
probe() {
    pm run --rm --name "$NAME-probe" "${CONTAINER[@]}" debian:bookworm true ||
        die "podman cannot start a container on this machine (see above)"
}

# The crates for the build stage: `cargo vendor` here into the build context when the host
# has cargo (the Dockerfile uses them when present); without cargo on the host the build stage
# fetches them from crates.io itself.
vendor() {
    local dir=target/container/vendor
    if ! command -v cargo >/dev/null; then
        rm -rf "$dir" # a stale copy would not match Cargo.lock
        say "no cargo on this host: the build stage fetches the crates from crates.io"
        return 0
    fi
    if [ ! -f "$dir/.stamp" ] || [ "$(cat "$dir/.stamp")" != "$(sha256sum Cargo.lock)" ]; then
        rm -rf "$dir"
        mkdir -p "${dir%/*}"
        cargo vendor --locked --versioned-dirs "$dir" >/dev/null 2>"target/container/vendor.log" ||
            { tail -n 20 target/container/vendor.log; die "cargo vendor failed"; }
        sha256sum Cargo.lock >"$dir/.stamp"
    fi
}

image_id() { pm image inspect --format '{{.Id}}' "$1" 2>/dev/null || true; }

build_stage() { # build_stage TARGET
    pm build --pull=never "${CONTAINER[@]}" --target "$1" -t "$IMAGE:$1-$TAG" . \
        >"target/container/$1.log" 2>&1 ||
        { tail -n 40 "target/container/$1.log"; die "the $1 stage failed (target/container/$1.log)"; }
}

images() {
    local stage old=() id
    # The images these tags name now: replaced below, then removed (their layers that the new
    # images share stay, as the build cache).
    for stage in test runtime build; do
        id=$(image_id "$IMAGE:$stage-$TAG")
        [ -z "$id" ] || old+=("$id")
    done
    timed "cargo vendor (host)" vendor
    timed "stage build" build_stage build
    timed "stage runtime" build_stage runtime
    timed "stage test" build_stage test
    for id in "${old[@]}"; do
        case " $(image_id "$IMAGE:test-$TAG") $(image_id "$IMAGE:runtime-$TAG") $(image_id "$IMAGE:build-$TAG") " in
            *" $id "*) ;;
            *) pm rmi "$id" >/dev/null 2>&1 || say "the replaced image $id is still in use; left in place" ;;
        esac
    done
    rm -rf "$OUT"
    mkdir -p "$OUT"
    pm create --name "$NAME-out" "$IMAGE:build-$TAG" true >/dev/null
    pm cp "$NAME-out:/out/." "$OUT/"
    pm rm "$NAME-out" >/dev/null
    say "built: $(cd "$OUT" && ls | tr '\n' ' ')"
}

lint() {
    ensure_packages lintian
    say "lintian $(cd "$OUT" && ls ./*.deb)"
    # Its findings are printed; an error fails the run.
    lintian --fail-on error "$OUT"/*.deb
}

deb_check() {
    pm run --rm --name "$NAME-deb" "${CONTAINER[@]}" -e DEMO_PORT -e DEMO_OTHER_PORT -e DEMO_WCS_PORT \
        -v "$OUT:/debs:ro" -v "$ROOT:/src:ro" debian:bookworm bash /src/packaging/deb/check.sh
}

# The demo's own check with nginx, the mock WCS and the probe inside the runtime container.
demo_in_container() {
    pm run --rm --name "$NAME-check" "${CONTAINER[@]}" -e DEMO_LISTEN=127.0.0.1 \
        -e DEMO_PORT -e DEMO_OTHER_PORT -e DEMO_WCS_PORT "$IMAGE:runtime-$TAG" bash scripts/demo.sh check
}

# The image's default command (the demo) with its directory on the host: tokens issued and
# revoked here reach the container's nginx; the probe and the browser run here.
demo_from_host() {
    DEMO_HOST_DIR=$(mktemp -d /tmp/wcs-token-auth-container.XXXXXX)
    pm run -d --name "$NAME-demo" "${CONTAINER[@]}" -e DEMO_LISTEN=127.0.0.1 -e DEMO_DIR=/demo \
        -e DEMO_PORT -e DEMO_OTHER_PORT -e DEMO_WCS_PORT -v "$DEMO_HOST_DIR:/demo" "$IMAGE:runtime-$TAG" >/dev/null
    local i
    for i in $(seq 300); do
        grep -q 'checked: the token upgrades' <(pm logs "$NAME-demo" 2>&1) && break
        pm ps --filter "name=^$NAME-demo\$" --format '{{.Names}}' | grep -q . ||
            { pm logs "$NAME-demo" | tail -n 20; die "the runtime container stopped"; }
        [ "$i" -lt 300 ] || { pm logs "$NAME-demo" | tail -n 20; die "the demo in the runtime container did not start"; }
        sleep 0.2
    done
    local cli="$OUT/bin/wcs-token" probe="$OUT/bin/wcs-ws-probe" url="ws://127.0.0.1:$DEMO_PORT/wss" token out
    token=$("$cli" --dir "$DEMO_HOST_DIR/tokens" issue)
    out=$("$probe" "$url" --cookie "AUTH=$token") || die "a token issued on the host was refused: $out"
    echo "  OK <- token issued on the host: $out"
    if out=$("$probe" "$url" 2>&1) || [[ "$out" != *"HTTP 403"* ]]; then die "no token was not refused: $out"; fi
    echo "  REFUSED <- no token: $out"
    "$cli" --dir "$DEMO_HOST_DIR/tokens" revoke "$token"
    sleep 1.2
    if out=$("$probe" "$url" --cookie "AUTH=$token" 2>&1) || [[ "$out" != *"HTTP 403"* ]]; then
        die "a token revoked on the host was let through: $out"
    fi
    echo "  REFUSED <- the same token, revoked on the host: $out"

    ensure_packages chromium
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        ensure_packages nodejs npm
    fi
    [ -d testkit/browser-test/node_modules/playwright-core ] ||
        (cd testkit/browser-test && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    say "browser test against the container's nginx"
    DEMO_URL="http://127.0.0.1:$DEMO_PORT" DEMO_OTHER_URL="http://127.0.0.1:$DEMO_OTHER_PORT" \
        DEMO_DIR="$DEMO_HOST_DIR" WCS_TOKEN="$cli" SHOT_DIR="$ROOT/target/container/browser-test" \
        node testkit/browser-test/test.mjs
    pm stop -t 5 "$NAME-demo" >/dev/null
    pm rm "$NAME-demo" >/dev/null
    rm -rf "$DEMO_HOST_DIR"
}

# The status line's code of GET /wss on DEMO_PORT, with the cookie given if any.
http_status() {
    local req="GET /wss HTTP/1.0\r\nHost: 127.0.0.1\r\n"
    [ -z "${1:-}" ] || req+="Cookie: $1\r\n"
    (
        exec 3<>"/dev/tcp/127.0.0.1/$DEMO_PORT"
        printf '%b\r\n' "$req" >&3
        timeout 10 head -n 1 <&3 | cut -d ' ' -f 2
    )
}

# The image for real use: its nginx with a mounted nginx.conf (Debian's way of loading the
# module, the workers as www-data) and a mounted token directory that wcs-token on the host fills.
real_config() {
    local dir cli="$OUT/bin/wcs-token" token i
    dir=$(mktemp -d /tmp/wcs-token-auth-container.XXXXXX)
    DEMO_HOST_DIR=$dir # removed by cleanup
    install -d -m 0750 -g www-data "$dir/tokens"
    cat >"$dir/nginx.conf" <<CONF
include /etc/nginx/modules-enabled/*.conf;
user www-data;
error_log stderr;
events {}
http {
    server {
        listen 127.0.0.1:$DEMO_PORT;
        # Any file will do: the check runs before it is served.
        location /wss { wcs_token_auth /var/lib/nginx/tokens; alias /etc/nginx/mime.types; }
    }
}
CONF
    pm run -d --name "$NAME-nginx" "${CONTAINER[@]}" -v "$dir/nginx.conf:/etc/nginx/nginx.conf:ro" \
        -v "$dir/tokens:/var/lib/nginx/tokens" "$IMAGE:runtime-$TAG" nginx -g 'daemon off;' >/dev/null
    for i in $(seq 50); do
        (exec 3<>"/dev/tcp/127.0.0.1/$DEMO_PORT") 2>/dev/null && break
        [ "$i" -lt 50 ] || die "the container's nginx does not listen on $DEMO_PORT"
        sleep 0.1
    done
    token=$("$cli" --dir "$dir/tokens" issue --owner root:www-data)
    [ "$(http_status)" = 403 ] || die "no token was not refused by the container's own configuration"
    [ "$(http_status "AUTH=$token")" = 200 ] || die "a token issued on the host was refused by the container's own configuration"
    "$cli" --dir "$dir/tokens" revoke "$token"
    sleep 1.2
    [ "$(http_status "AUTH=$token")" = 403 ] || die "a revoked token was let through by the container's own configuration"
    echo "  own nginx.conf and token directory: no token 403, host-issued token 200, revoked 403"
    pm rm -f -t 2 "$NAME-nginx" >/dev/null
    rm -rf "$dir"
}

e2e_in_container() {
    # SYS_PTRACE: one test counts a worker's timer wake-ups with strace.
    pm run --rm --name "$NAME-e2e" "${CONTAINER[@]}" --cap-add SYS_PTRACE "$IMAGE:test-$TAG" 2>&1 | tee target/container/e2e.log
    grep -q '^test result: ok' target/container/e2e.log || die "the end-to-end suite failed in the test container"
}

trap cleanup EXIT
timed "engine (install)" engine
mkdir -p target/container
# One run per checkout at a time: a second one would rebuild the tags under the first.
exec 9>target/container/.lock
flock -n 9 || die "another scripts/container.sh is running in this checkout"
timed "base image debian:bookworm" base_image
probe
images
if [ "${1:-}" != images ]; then
    demo_ports
    timed "lintian" lint
    say "the .deb in a clean debian:bookworm container"
    timed "deb in a clean container" deb_check
    say "the demo's check inside the runtime container"
    timed "demo check in runtime container" demo_in_container
    say "the runtime container's demo, driven from the host"
    timed "host tools + browser vs container" demo_from_host
    say "the image with a mounted nginx.conf and token directory, nginx in the foreground"
    timed "own config in runtime container" real_config
    say "the end-to-end suite in the test container"
    timed "e2e in test container" e2e_in_container
fi
say "container timings:"
printf '  %s\n' "${TIMES[@]}" >&2
