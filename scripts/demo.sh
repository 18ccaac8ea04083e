#!/usr/bin/env bash
# Runs the module in front of a mock WCS on 127.0.0.1, like the article's setup.
#
#   scripts/demo.sh          build, start the mock WCS (wss, self-signed) and nginx, issue a
#                            token with wcs-token, check that it upgrades and echoes, that the
#                            page is served and that no token is refused, then print how to
#                            connect with and without it (from a shell and from the demo page
#                            in a browser)
#   scripts/demo.sh stop     stop both
#   scripts/demo.sh check    start, run every printed command and verify its answer, stop
#   scripts/demo.sh run      start, then stay in the foreground until stopped (containers)
#
# When the start's own check fails, the demo stops, says what failed with nginx's error-log
# lines, and exits 1: it prints nothing it has not seen work.
#
# nginx's prefix (conf/, logs/, html/ and the token directory tokens/) is a directory made
# under /tmp, and target/demo links to it: as root, nginx's workers run as nobody, who cannot
# enter a checkout inside a private directory such as /root. It is root's, group nogroup,
# 0750 (the workers' group may read it, nobody else), its token directory 0710 (the workers
# may look a token up by name but not list them: the names are the credentials), and it is
# reused by the next start. DEMO_DIR=/path uses that directory instead, whose owner, group and
# modes are then set the same way, recursively (stop with the same DEMO_DIR).
#
# By default it builds nginx 1.28.3 and the module here. With DEMO_PREBUILT=1 it builds nothing
# and uses what scripts/install.sh installed: DEMO_NGINX (/usr/sbin/nginx), DEMO_MODULE
# (/usr/lib/nginx/modules/ngx_http_wcs_token_auth_module.so) and the tools in DEMO_BIN
# (/usr/local/bin); this is how the Docker image runs it. DEMO_LISTEN (127.0.0.1) is the
# address nginx listens on; the mock WCS stays on 127.0.0.1.
#
# Ports: DEMO_PORT (nginx, default 8080), DEMO_OTHER_PORT (the same page from another origin,
# default 8081) and DEMO_WCS_PORT (mock WCS, default 18443).
source "$(dirname "$0")/common.sh"
cd "$ROOT"
[ "${DEMO_PREBUILT:-0}" = 1 ] || [ "${1:-start}" = stop ] || refuse_path_with_space

PORT=${DEMO_PORT:-8080}
OTHER_PORT=${DEMO_OTHER_PORT:-8081}
WCS_PORT=${DEMO_WCS_PORT:-18443}
LISTEN=${DEMO_LISTEN:-127.0.0.1}
LINK="$ROOT/target/demo"
# Where stop finds the pid files; start sets DEMO to the directory itself.
STATE=${DEMO_DIR:-$LINK}
DEMO=$STATE
WORKER_USER=nobody
WORKER_GROUP=$(id -gn "$WORKER_USER" 2>/dev/null || echo nogroup)
if [ "${DEMO_PREBUILT:-0}" = 1 ]; then
    NGINX=${DEMO_NGINX:-/usr/sbin/nginx}
    MODULE=${DEMO_MODULE:-/usr/lib/nginx/modules/$DIST_SO}
    BIN=${DEMO_BIN:-/usr/local/bin}
else
    NGINX="$ROOT/target/dist/nginx"
    MODULE="$ROOT/target/dist/$DIST_SO"
    BIN="$ROOT/target/release"
fi
PROBE="$BIN/wcs-ws-probe"
CLI="$BIN/wcs-token"

# Stops nginx and the mock WCS, and returns once they are gone (their ports free).
stop() {
    local f pid
    for f in "$STATE/logs/nginx.pid" "$STATE/mock-wcs.pid"; do
        [ -f "$f" ] || continue
        pid=$(cat "$f")
        rm -f "$f"
        kill "$pid" 2>/dev/null || continue
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
    done
}

# Stops the demo when the script ends, unless a start succeeded and asked to keep it.
KEEP=0
on_exit() { [ "$KEEP" = 1 ] || stop; }

# Sets DEMO: DEMO_DIR, or the directory target/demo links to if it is still there and ours,
# or a new one under /tmp (not $TMPDIR, which may be private too).
prepare_dir() {
    if [ -n "${DEMO_DIR:-}" ]; then
        DEMO=$DEMO_DIR
    else
        DEMO=$(readlink "$LINK" 2>/dev/null || true)
        if [[ "$DEMO" != /tmp/wcs-token-auth-demo.* ]] || [ -L "$DEMO" ] || [ ! -d "$DEMO" ] ||
            [ ! -O "$DEMO" ]; then
            DEMO=$(mktemp -d /tmp/wcs-token-auth-demo.XXXXXX)
        fi
        mkdir -p "$ROOT/target"
        rm -rf "$LINK" # the old link, or a directory left by an older demo.sh
        ln -s "$DEMO" "$LINK"
    fi
    mkdir -p "$DEMO"/{conf,logs,tokens,revoked,html,tmp}
    # A revocation left by an earlier run would refuse this run's signed token.
    rm -f "$DEMO"/revoked/*
    # The article's client page (copied: nginx's workers must be able to read it).
    cp demo/www/* "$DEMO/html/"
    : >"$DEMO/logs/error.log"
    : >"$DEMO/logs/access.log"
    if [ "$(id -u)" -eq 0 ]; then
        chgrp -R "$WORKER_GROUP" "$DEMO"
        chmod -R u+rwX,g+rX,g-w,o-rwx "$DEMO"
        # The workers only look token files up by name: they may search the directory, not list it.
        chmod g-r "$DEMO/tokens" "$DEMO/revoked"
    else
        chmod -R u+rwX,go-rwx "$DEMO" # the workers run as this user
    fi
}

wait_port() {
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    die "nothing listens on 127.0.0.1:$1"
}

# Stops the demo, says what failed and nginx's error-log lines since the step began, exits 1.
LOG_MARK=0
mark_log() { LOG_MARK=$(stat -c %s "$DEMO/logs/error.log" 2>/dev/null || echo 0); }
fail() {
    local lines
    printf 'error: the demo does not work: %s\n' "$1" >&2
    lines=$(tail -c +"$((LOG_MARK + 1))" "$DEMO/logs/error.log" 2>/dev/null |
        grep -E '\[(emerg|alert|crit|error)\]' | tail -n 5 || true)
    if [ -n "$lines" ]; then
        printf '  nginx error log (%s):\n' "$DEMO/logs/error.log" >&2
        printf '%s\n' "$lines" | sed 's/^/    /' >&2
        if [[ "$lines" == *"Permission denied"* && "$(id -u)" -eq 0 ]]; then
            printf "  nginx's workers run as %s:%s and must be able to enter %s\n" \
                "$WORKER_USER" "$WORKER_GROUP" "$DEMO" >&2
        fi
    else
        printf '  nothing about it in nginx error log %s\n' "$DEMO/logs/error.log" >&2
    fi
    stop
    printf '  the demo is stopped\n' >&2
    exit 1
}

# GET PATH from nginx on PORT over HTTP/1.0 (no curl in the Docker image): the whole answer.
http_get() {
    (
        exec 3<>"/dev/tcp/127.0.0.1/$1"
        printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1:%s\r\n\r\n' "$2" "$1" >&3
        timeout 10 cat <&3
    ) 2>&1
}

# What the printed text promises, seen before it is printed.
self_check() {
    local out port
    mark_log
    out=$("$PROBE" "ws://127.0.0.1:$PORT/wss" --cookie "AUTH=$TOKEN" 2>&1) ||
        fail "the issued token did not open the WebSocket: wcs-ws-probe says \"$out\""
    [[ "$out" == *'WCS echoed "hello WCS"'* ]] || fail "the mock WCS did not echo: \"$out\""
    for port in "$PORT" "$OTHER_PORT"; do
        mark_log
        out=$(http_get "$port" /) || true
        [[ "$out" == "HTTP/1.1 200 "* && "$out" == *"<title>wcs_token_auth demo</title>"* ]] ||
            fail "the demo page http://127.0.0.1:$port/ is not served: \"$(head -n 1 <<<"$out" | tr -d '\r')\""
    done
    mark_log
    if out=$("$PROBE" "ws://127.0.0.1:$PORT/wss" 2>&1); then
        fail "a WebSocket without a token was let through: \"$out\""
    fi
    [[ "$out" == *"HTTP 403"* ]] || fail "a WebSocket without a token was not refused with 403: \"$out\""
    say "checked: the token upgrades and echoes, the page is served, no token is refused (403)"
}

start() {
    trap on_exit EXIT
    stop # first: the build replaces target/dist/nginx, which a running demo holds open
    if [ "${DEMO_PREBUILT:-0}" != 1 ]; then
        bash scripts/build.sh
        cargo build --release -p mock-wcs -p wcs-token
    fi
    prepare_dir
    STATE=$DEMO

    "$BIN/mock-wcs" --tls "127.0.0.1:$WCS_PORT" >"$DEMO/logs/mock-wcs.log" 2>&1 &
    echo $! >"$DEMO/mock-wcs.pid"
    wait_port "$WCS_PORT"

    local user=""
    [ "$(id -u)" -eq 0 ] && user="user $WORKER_USER $WORKER_GROUP;"
    cat >"$DEMO/conf/nginx.conf" <<CONF
load_module "$MODULE";
$user
worker_processes 1;
error_log "$DEMO/logs/error.log" info;
pid "$DEMO/logs/nginx.pid";
events { worker_connections 256; }
http {
    client_body_temp_path "$DEMO/tmp/body";
    proxy_temp_path "$DEMO/tmp/proxy";
    fastcgi_temp_path "$DEMO/tmp/fastcgi";
    uwsgi_temp_path "$DEMO/tmp/uwsgi";
    scgi_temp_path "$DEMO/tmp/scgi";
    log_format wcs '\$remote_addr "\$request" \$status wcs_auth=\$wcs_token_auth_status';
    access_log "$DEMO/logs/access.log" wcs;
    server {
        listen $LISTEN:$PORT;
        location / { root "$DEMO/html"; }
        location /wss {
            wcs_token_auth "$DEMO/tokens" "jwks=$DEMO/conf/keys.json";
            wcs_token_auth_revoked "$DEMO/revoked";
            wcs_token_auth_session_check 1s;
            proxy_set_header X-WCS-User \$wcs_token_auth_claim_sub;
            proxy_pass https://127.0.0.1:$WCS_PORT;
            proxy_http_version 1.1;
            proxy_set_header Upgrade \$http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_read_timeout 86400;
        }
    }
    # The same page from another origin: its WebSocket to port $PORT must be refused.
    server {
        listen $LISTEN:$OTHER_PORT;
        location / { root "$DEMO/html"; }
    }
}
CONF
    # The key pair of the signed tokens: the backend's private set, nginx's public one.
    rm -f "$DEMO/keys.private.json" "$DEMO/conf/keys.json"
    "$CLI" jwks new --alg EdDSA --kid demo --private "$DEMO/keys.private.json" \
        --public "$DEMO/conf/keys.json" >/dev/null || fail "wcs-token could not make a key set"
    mark_log
    "$NGINX" -p "$DEMO" -e "$DEMO/logs/error.log" -c "$DEMO/conf/nginx.conf" || fail "nginx did not start"
    wait_port "$PORT"
    wait_port "$OTHER_PORT"

    TOKEN=$("$CLI" --dir "$DEMO/tokens" issue) || fail "wcs-token could not issue a token in $DEMO/tokens"
    JWT=$("$CLI" sign --private "$DEMO/keys.private.json" --sub demo-user --ttl 1h --jti auto) ||
        fail "wcs-token could not sign a token"
    self_check

    local files="$DEMO"
    [ -n "${DEMO_DIR:-}" ] || files="$DEMO (target/demo links there)"
    cat <<TEXT

Mock WCS:  wss://127.0.0.1:$WCS_PORT (self-signed; reports the headers it gets)
nginx:     http://127.0.0.1:$PORT/wss, token directory $DEMO/tokens
Token:     $TOKEN   ($CLI --dir $DEMO/tokens issue)
Signed:    $JWT
           ($CLI sign --private $DEMO/keys.private.json --sub demo-user --ttl 1h --jti auto;
           nginx verifies it with the public key set $DEMO/conf/keys.json)

In a browser (the article's client page; Connect shows the echo from the mock WCS):
  http://127.0.0.1:$PORT/#token=$TOKEN
The same page from another origin, which must be refused even with the cookie set:
  http://127.0.0.1:$OTHER_PORT/?wss=ws://127.0.0.1:$PORT/wss

With the token (upgrades, the frame echoes back):
  $PROBE ws://127.0.0.1:$PORT/wss --cookie AUTH=$TOKEN
Without it, with the article's traversal cookie, from another origin (each refused, 403):
  $PROBE ws://127.0.0.1:$PORT/wss
  $PROBE ws://127.0.0.1:$PORT/wss --cookie AUTH=../../../../etc/passwd
  $PROBE ws://127.0.0.1:$PORT/wss --cookie AUTH=$TOKEN --origin https://evil.example
What WCS is told about the client (exactly one X-Client-IP, even if you send your own):
  $PROBE ws://127.0.0.1:$PORT/wss --cookie AUTH=$TOKEN --header "X-Client-IP: 6.6.6.6" --message __headers__
A signed token works the same way; WCS is told its subject (X-WCS-User: demo-user):
  $PROBE ws://127.0.0.1:$PORT/wss --cookie AUTH=$JWT --message __headers__
Revoke every token of that subject issued so far (refused within 1 s, open sessions closed):
  $CLI revoke --revoked $DEMO/revoked --sub demo-user
Watch an open WebSocket close when its token is revoked (wcs_token_auth_session_check 1s):
hold one open, revoke the token from another terminal; it closes within about a second
(the page too: Connect, revoke, and its status turns to "disconnected"):
  $PROBE ws://127.0.0.1:$PORT/wss --cookie AUTH=$TOKEN --hold 60
  $CLI --dir $DEMO/tokens revoke $TOKEN
New connections with it are refused from then on (within 1 s, the cache TTL).
Tokens and their age:  $CLI --dir $DEMO/tokens list
Logs:  $DEMO/logs/access.log (wcs_auth=...), $DEMO/logs/error.log
Files: $files
Stop:  scripts/demo.sh stop
TEXT
}

expect() { # expect OK|REFUSED ARGS...
    local want=$1 out rc=0
    shift
    out=$("$PROBE" "ws://127.0.0.1:$PORT/wss" "$@") || rc=$?
    echo "  $want <- wcs-ws-probe $* : $out"
    case "$want" in
        OK) [ $rc -eq 0 ] || die "expected an upgrade: $out" ;;
        REFUSED) if [ $rc -eq 0 ] || [[ "$out" != *"HTTP 403"* ]]; then die "expected 403: $out"; fi ;;
    esac
}

check() {
    start >/dev/null
    say "demo check"
    expect OK --cookie "AUTH=$TOKEN"
    expect REFUSED
    expect REFUSED --cookie "AUTH=../../../../etc/passwd"
    expect REFUSED --cookie "AUTH=$TOKEN" --origin https://evil.example
    local headers
    headers=$("$PROBE" "ws://127.0.0.1:$PORT/wss" --cookie "AUTH=$TOKEN" --header "X-Client-IP: 6.6.6.6" --message __headers__)
    echo "  WCS saw: $headers"
    [[ "$headers" == *"X-Client-IP: 127.0.0.1"* ]] || die "WCS was not told the client address: $headers"
    [[ "$headers" != *"6.6.6.6"* ]] || die "the client's own X-Client-IP reached WCS: $headers"
    "$CLI" --dir "$DEMO/tokens" check "$TOKEN" >/dev/null || die "wcs-token check refuses the issued token"
    # A signed token: verified with the public key set, its subject told to WCS.
    headers=$("$PROBE" "ws://127.0.0.1:$PORT/wss" --cookie "AUTH=$JWT" --message __headers__)
    echo "  WCS saw, for the signed token: $headers"
    [[ "$headers" == *"X-WCS-User: demo-user"* ]] || die "WCS was not told the signed token's subject: $headers"
    local sig=${JWT##*.} other=A
    [ "${sig:0:1}" != A ] || other=B
    expect REFUSED --cookie "AUTH=${JWT%.*}.$other${sig:1}"
    grep -q 'wcs_auth=bad_signature' "$DEMO/logs/access.log" || die "no bad_signature line for a forged token"
    # An open WebSocket of the token, closed by nginx when the token is revoked.
    local held="$DEMO/logs/held.out" pid
    "$PROBE" "ws://127.0.0.1:$PORT/wss" --cookie "AUTH=$TOKEN" --hold 5 >"$held" &
    pid=$!
    for _ in $(seq 50); do grep -q '^holding' "$held" && break; sleep 0.1; done
    grep -q '^holding' "$held" || die "the held WebSocket did not open: $(cat "$held")"
    "$CLI" --dir "$DEMO/tokens" revoke "$TOKEN"
    if "$CLI" --dir "$DEMO/tokens" check "$TOKEN" >/dev/null; then die "wcs-token check accepts a revoked token"; fi
    wait "$pid" || die "the open WebSocket was not closed on revoke: $(tail -1 "$held")"
    echo "  open WebSocket on revoke: $(tail -1 "$held")"
    grep -q 'wcs_auth=session_revoked' "$DEMO/logs/access.log" || die "no session_revoked line in the access log"
    sleep 1.2
    expect REFUSED --cookie "AUTH=$TOKEN"
    grep -q 'wcs_auth=allowed' "$DEMO/logs/access.log" || die "no allowed line in the access log"
    grep -q 'wcs_auth=malformed_token' "$DEMO/logs/access.log" || die "no malformed_token line"
    # Revoking the signed token's subject closes its open session and refuses it afterwards.
    "$PROBE" "ws://127.0.0.1:$PORT/wss" --cookie "AUTH=$JWT" --hold 5 >"$held" &
    pid=$!
    for _ in $(seq 50); do grep -q '^holding' "$held" && break; sleep 0.1; done
    grep -q '^holding' "$held" || die "the held WebSocket did not open: $(cat "$held")"
    "$CLI" revoke --revoked "$DEMO/revoked" --sub demo-user >/dev/null
    wait "$pid" || die "the open WebSocket was not closed on revoke --sub: $(tail -1 "$held")"
    echo "  open signed session on revoke --sub: $(tail -1 "$held")"
    sleep 1.2
    expect REFUSED --cookie "AUTH=$JWT"
    grep -q 'wcs_auth=revoked_token' "$DEMO/logs/access.log" || die "no revoked_token line"
    say "demo check passed"
}

case "${1:-start}" in
    start)
        start
        KEEP=1
        ;;
    stop) stop ;;
    check) check ;;
    run)
        trap 'stop; exit 0' INT TERM
        start
        # The mock WCS is this shell's child; nginx runs as a daemon beside it.
        wait
        ;;
    *) die "usage: scripts/demo.sh [start|stop|check|run]" ;;
esac
