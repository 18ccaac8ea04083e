#!/usr/bin/env bash
# Runs the module in front of a mock WCS on 127.0.0.1, like the article's setup.
#
#   scripts/demo.sh          build, start the mock WCS (wss, self-signed) and nginx, issue a
#                            token with wcs-token, print how to connect with and without it
#                            (from a shell and from the demo page in a browser)
#   scripts/demo.sh stop     stop both
#   scripts/demo.sh check    start, run every printed command and verify its answer, stop
#   scripts/demo.sh run      start, then stay in the foreground until stopped (containers)
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

PORT=${DEMO_PORT:-8080}
OTHER_PORT=${DEMO_OTHER_PORT:-8081}
WCS_PORT=${DEMO_WCS_PORT:-18443}
LISTEN=${DEMO_LISTEN:-127.0.0.1}
DEMO="$ROOT/target/demo"
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

stop() {
    if [ -f "$DEMO/logs/nginx.pid" ]; then
        kill "$(cat "$DEMO/logs/nginx.pid")" 2>/dev/null || true
        rm -f "$DEMO/logs/nginx.pid"
    fi
    if [ -f "$DEMO/mock-wcs.pid" ]; then
        kill "$(cat "$DEMO/mock-wcs.pid")" 2>/dev/null || true
        rm -f "$DEMO/mock-wcs.pid"
    fi
}

wait_port() {
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    die "nothing listens on 127.0.0.1:$1"
}

start() {
    stop # first: the build replaces target/dist/nginx, which a running demo holds open
    if [ "${DEMO_PREBUILT:-0}" != 1 ]; then
        bash scripts/build.sh
        cargo build --release -p mock-wcs -p wcs-token
    fi
    mkdir -p "$DEMO"/{conf,logs,tokens,html,tmp}
    chmod 755 "$DEMO" "$DEMO/tokens"
    # The article's client page (copied: nginx's workers must be able to read it).
    cp demo/www/* "$DEMO/html/"
    chmod -R a+rX "$DEMO/html"

    "$BIN/mock-wcs" --tls "127.0.0.1:$WCS_PORT" >"$DEMO/logs/mock-wcs.log" 2>&1 &
    echo $! >"$DEMO/mock-wcs.pid"
    wait_port "$WCS_PORT"

    local user=""
    [ "$(id -u)" -eq 0 ] && user="user nobody nogroup;"
    cat >"$DEMO/conf/nginx.conf" <<CONF
load_module $MODULE;
$user
worker_processes 1;
error_log $DEMO/logs/error.log info;
pid $DEMO/logs/nginx.pid;
events { worker_connections 256; }
http {
    client_body_temp_path $DEMO/tmp/body;
    proxy_temp_path $DEMO/tmp/proxy;
    fastcgi_temp_path $DEMO/tmp/fastcgi;
    uwsgi_temp_path $DEMO/tmp/uwsgi;
    scgi_temp_path $DEMO/tmp/scgi;
    log_format wcs '\$remote_addr "\$request" \$status wcs_auth=\$wcs_token_auth_status';
    access_log $DEMO/logs/access.log wcs;
    server {
        listen $LISTEN:$PORT;
        location / { root $DEMO/html; }
        location /wss {
            wcs_token_auth $DEMO/tokens;
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
        location / { root $DEMO/html; }
    }
}
CONF
    "$NGINX" -p "$DEMO" -e "$DEMO/logs/error.log" -c "$DEMO/conf/nginx.conf"
    wait_port "$PORT"
    wait_port "$OTHER_PORT"

    TOKEN=$("$CLI" --dir "$DEMO/tokens" issue)

    cat <<TEXT

Mock WCS:  wss://127.0.0.1:$WCS_PORT (self-signed; reports the headers it gets)
nginx:     http://127.0.0.1:$PORT/wss, token directory $DEMO/tokens
Token:     $TOKEN   ($CLI --dir $DEMO/tokens issue)

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
Revoke the token, then try the first command or the page again (refused within 1s):
  $CLI --dir $DEMO/tokens revoke $TOKEN
Tokens and their age:  $CLI --dir $DEMO/tokens list
Logs:  $DEMO/logs/access.log (wcs_auth=...), $DEMO/logs/error.log
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
        REFUSED) [ $rc -ne 0 ] && [[ "$out" == *"HTTP 403"* ]] || die "expected 403: $out" ;;
    esac
}

check() {
    trap stop EXIT
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
    "$CLI" --dir "$DEMO/tokens" revoke "$TOKEN"
    if "$CLI" --dir "$DEMO/tokens" check "$TOKEN" >/dev/null; then die "wcs-token check accepts a revoked token"; fi
    sleep 1.2
    expect REFUSED --cookie "AUTH=$TOKEN"
    grep -q 'wcs_auth=allowed' "$DEMO/logs/access.log" || die "no allowed line in the access log"
    grep -q 'wcs_auth=malformed_token' "$DEMO/logs/access.log" || die "no malformed_token line"
    say "demo check passed"
}

case "${1:-start}" in
    start) start ;;
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
