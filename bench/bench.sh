#!/usr/bin/env bash
# Measures what the access check costs, in one run on one nginx binary with one worker:
#   none          no check (the ceiling)
#   seed          the article's `if (!-f /var/lib/nginx/tokens/$cookie_AUTH) { return 403; }`
#   module        wcs_token_auth
#   auth_request  a subrequest to the cheapest possible auth backend (an nginx server block in
#                 the same nginx doing the seed's check and answering 204/403)
#   session_check wcs_token_auth with wcs_token_auth_session_check 1s (WebSocket handshakes only:
#                 each one is tracked until the client drops it)
# on a small static file, on a proxy to a local upstream and (none vs module) on WebSocket
# handshakes to the mock WCS, with token directories of 1e3, 1e5 and 1e6 files, a hot token,
# 1,000 rotating valid tokens and random never-valid ones; then the worker's RSS under a flood
# of distinct random tokens and while filling the cache with valid ones, and the token
# directory system calls a hot token costs (strace). Rounds are interleaved (A B C D A B C D..).
# Signed tokens (wcs_token_auth jwks=FILE; keys and tokens from `signed-fixtures`, one key per
# algorithm HS256, ES256, EdDSA, RS256, fixed seeds): on the static file, a cached signed token
# of each algorithm next to a cached file token in the same nginx; the same tokens in a second
# nginx with `wcs_token_auth_cache_ttl 0` (every request verifies); then floods of forged
# tokens (a real header and `kid`, random claims, a genuine signature over other claims: a
# whole signature check each) with the worker's RSS before and after.
# Prints a markdown report; its last line is
# `ratios: seed=.. module=.. auth_request=.. signed=..` (signed: a cached ES256 token against a
# cached file token).
#
#   bench/bench.sh            the full run: about 13 minutes, plus about 2 to build nginx and
#                             the module on a fresh clone
#   bench/bench.sh --quick    1 round of 1 s per cell, smaller floods: two minutes or so
#   bench/bench.sh --check    only verifies that every variant answers as it must (200/101
#                             for a valid token, 403 for an invalid one); exit 1 if not
#   bench/bench.sh --callgrind  user-space instructions per request of each variant, counted
#                             by valgrind's callgrind in a single-process nginx: reproducible
#                             on a busy machine, where req/s are not (system calls not counted)
#   bench/bench.sh --signed   the signed-token cells only (with --quick: 1 round of 1 s);
#                             about 5 minutes
#
# Settings (environment): BENCH_ROUNDS (3), BENCH_DURATION (5, seconds per cell, variants),
# BENCH_SCALE_DURATION (3, token-directory scale cells), BENCH_WS_DURATION (5),
# BENCH_WARMUP (1), BENCH_CONNECTIONS (16), BENCH_WS_CONNECTIONS (8),
# BENCH_FLOOD (1000000 distinct random tokens), BENCH_FILL (100000 valid tokens),
# BENCH_FILL_CACHE_SIZE (100000), BENCH_SIGNED_FLOOD (100000 forged tokens per algorithm),
# BENCH_PIN (1: nginx on CPU 0, everything else on CPU 1),
# BENCH_PORT (a random free base port; six consecutive ports are used).
# Artefacts (token directories, made once and reused; prefixes; raw results) go to target/bench/.
source "$(dirname "$0")/../scripts/common.sh"
cd "$ROOT"

MODE=full
SIGNED_ONLY=0
for arg in "$@"; do
    case "$arg" in
        --quick) MODE=quick ;;
        --check) MODE=check ;;
        --callgrind) MODE=callgrind ;;
        --signed) SIGNED_ONLY=1 ;;
        *) sed -n '2,/^source/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2 ;;
    esac
done
if [ "$MODE" = quick ]; then
    : "${BENCH_ROUNDS:=1}" "${BENCH_DURATION:=1}" "${BENCH_SCALE_DURATION:=1}" "${BENCH_WS_DURATION:=1}"
    : "${BENCH_WARMUP:=0}" "${BENCH_FLOOD:=100000}" "${BENCH_FILL:=20000}" "${BENCH_FILL_CACHE_SIZE:=20000}"
    : "${BENCH_SIGNED_FLOOD:=10000}"
fi
ROUNDS=${BENCH_ROUNDS:-3}
DURATION=${BENCH_DURATION:-5}
SCALE_DURATION=${BENCH_SCALE_DURATION:-3}
WS_DURATION=${BENCH_WS_DURATION:-5}
WARMUP=${BENCH_WARMUP:-1}
CONNECTIONS=${BENCH_CONNECTIONS:-16}
WS_CONNECTIONS=${BENCH_WS_CONNECTIONS:-8}
FLOOD=${BENCH_FLOOD:-1000000}
FILL=${BENCH_FILL:-100000}
FILL_CACHE_SIZE=${BENCH_FILL_CACHE_SIZE:-100000}
SIGNED_FLOOD=${BENCH_SIGNED_FLOOD:-100000}
PIN=${BENCH_PIN:-1}
port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# Below the ephemeral range (32768+), six consecutive ports nobody listens on.
PORT=${BENCH_PORT:-}
while [ -z "$PORT" ]; do
    PORT=$((12000 + RANDOM % 20000))
    for p in $(seq "$PORT" $((PORT + 5))); do port_taken "$p" && PORT= && break; done
done
AUTH_PORT=$((PORT + 1)) UP_PORT=$((PORT + 2)) WCS_PORT=$((PORT + 3)) MEM_PORT=$((PORT + 4))
NOCACHE_PORT=$((PORT + 5))
SIZES=(1e3 1e5 1e6)
VARIANTS=(none seed module auth_request)
MAIN_DIR=1e6
if [ "$MODE" = check ]; then
    # The answers are the same at every size: spare CI a million files.
    SIZES=(1e3) MAIN_DIR=1e3
fi
HOT=t0000000
BAD=not-a-token-0
ORIGIN="http://127.0.0.1:$PORT"
MEM_ORIGIN="http://127.0.0.1:$MEM_PORT"
SIGNED_ALGS=(HS256 ES256 EdDSA RS256)

ensure_packages "${BUILD_PACKAGES[@]}" wrk curl strace procps util-linux
[ "$MODE" = callgrind ] && ensure_packages valgrind

BENCH="$ROOT/target/bench"
RUN="$BENCH/run"
mkdir -p "$BENCH"

say "building the module, nginx, the mock WCS and the load tools (release)"
cargo build --release --workspace --bins --lib >&2
NGINX=${WCS_NGINX:-$(ls -t target/release/build/nginx-sys-*/out/objs/nginx | head -n 1)}
MODULE=${WCS_MODULE:-$ROOT/target/release/$MODULE_SO}
"$NGINX" -V 2>&1 | grep -q -- --with-http_auth_request_module ||
    die "$NGINX lacks --with-http_auth_request_module (see .cargo/config.toml)"

# --- token directories: t0000000, t0000001, ... created once -------------------------------
count_of() { awk -v s="$1" 'BEGIN { split(s, p, "e"); n = 1; for (i = 0; i < p[2]; i++) n *= 10; print n }'; }
for size in "${SIZES[@]}"; do
    dir="$BENCH/tokens/$size"
    n=$(count_of "$size")
    if [ "$(cat "$dir.count" 2>/dev/null)" != "$n" ]; then
        say "creating $n token files in $dir (once)"
        rm -rf "$dir"
        mkdir -p "$dir"
        (cd "$dir" && seq -f 't%07g' 0 $((n - 1)) | xargs touch)
        echo "$n" >"$dir.count"
    fi
done

# --- signed-token fixtures: the same keys and tokens on every run (fixed seeds) -------------
SIGNED="$BENCH/signed"
JWKS="$SIGNED/public.json"
target/release/signed-fixtures "$SIGNED" "$([ "$MODE" = check ] && echo 100 || echo "$SIGNED_FLOOD")"
declare -A SIGNED_TOKEN
for alg in "${SIGNED_ALGS[@]}"; do SIGNED_TOKEN[$alg]=$(cat "$SIGNED/$alg.token"); done

# --- CPU placement ---------------------------------------------------------------------------
# nginx (master and the one worker) alone on CPU 0; wrk, ws-load, the upstream nginx and the
# mock WCS share CPU 1. The worker under test never waits for a CPU, so its cost per request
# is what limits the numbers (the report also shows its CPU time per request).
NGINX_CPU=() LOAD_CPU=()
if [ "$PIN" = 1 ] && [ "$(nproc)" -ge 2 ]; then
    NGINX_CPU=(taskset -c 0) LOAD_CPU=(taskset -c 1)
fi

# --- configuration ---------------------------------------------------------------------------
rm -rf "$RUN"
mkdir -p "$RUN"/{main,upstream,mem,nocache}/{conf,logs,html,tmp}
for p in main upstream mem nocache; do echo "static page" >"$RUN/$p/html/index.html"; done

# As root, nginx's workers would run as nobody, who cannot enter a checkout in a private
# directory (/root is 0700) where the token directories are; these nginx listen on loopback
# only, for the length of the run.
WORKER_USER=
[ "$(id -u)" -ne 0 ] || WORKER_USER="user root;"

common_head() { # $1: prefix; leaves the http block open
    cat <<EOF
load_module $MODULE;
$WORKER_USER
worker_processes 1;
error_log $1/logs/error.log error;
pid $1/logs/nginx.pid;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path $1/tmp; proxy_temp_path $1/tmp; fastcgi_temp_path $1/tmp;
    uwsgi_temp_path $1/tmp; scgi_temp_path $1/tmp;
EOF
}

# The check of variant $1 with token directory $2 and auth location $3.
check_of() {
    case "$1" in
        none) ;;
        seed) echo "if (!-f $BENCH/tokens/$2/\$cookie_AUTH) { return 403; }" ;;
        module) echo "wcs_token_auth $BENCH/tokens/$2;" ;;
        session_check) echo "wcs_token_auth $BENCH/tokens/$2; wcs_token_auth_session_check 1s;" ;;
        auth_request) echo "auth_request /_auth/$2;" ;;
    esac
}

write_main_conf() {
    local p="$RUN/main"
    {
        common_head "$p"
        cat <<EOF
    upstream backend { server 127.0.0.1:$UP_PORT; keepalive 32; }
    upstream authbackend { server 127.0.0.1:$AUTH_PORT; keepalive 32; }
    upstream wcs { server 127.0.0.1:$WCS_PORT; }

    server {
        listen 127.0.0.1:$PORT backlog=4096;
EOF
        for size in "${SIZES[@]}"; do
            cat <<EOF
        location = /_auth/$size {
            internal;
            proxy_pass http://authbackend/$size;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
EOF
            for v in "${VARIANTS[@]}"; do
                cat <<EOF
        location /static/$v/$size/ {
            $(check_of "$v" "$size")
            alias $p/html/;
        }
        location /proxy/$v/$size/ {
            $(check_of "$v" "$size")
            proxy_pass http://backend/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
        location /ws/$v/$size/ {
            $(check_of "$v" "$size")
            proxy_pass http://wcs;
            proxy_http_version 1.1;
            proxy_set_header Upgrade \$http_upgrade;
            proxy_set_header Connection "upgrade";
        }
EOF
            done
            cat <<EOF
        location /ws/session_check/$size/ {
            $(check_of session_check "$size")
            proxy_pass http://wcs;
            proxy_http_version 1.1;
            proxy_set_header Upgrade \$http_upgrade;
            proxy_set_header Connection "upgrade";
        }
EOF
        done
        cat <<EOF
        location /static/signed/ {
            wcs_token_auth jwks=$JWKS;
            alias $p/html/;
        }
    }

    # The auth_request backend: the seed's check, 204 or 403, nothing else.
    server {
        listen 127.0.0.1:$AUTH_PORT;
        keepalive_requests 1000000;
EOF
        for size in "${SIZES[@]}"; do
            echo "        location = /$size { if (!-f $BENCH/tokens/$size/\$cookie_AUTH) { return 403; } return 204; }"
        done
        echo "    }"
        echo "}"
    } >"$p/conf/nginx.conf"
}

write_upstream_conf() {
    local p="$RUN/upstream"
    {
        common_head "$p"
        cat <<EOF
    server { listen 127.0.0.1:$UP_PORT backlog=4096; location / { return 200 "upstream page\n"; } }
}
EOF
    } >"$p/conf/nginx.conf"
}

# Memory and system-call measurements: the module only, a long TTL so that "fresh" is
# under our control, and room for $FILL_CACHE_SIZE valid tokens.
write_mem_conf() {
    local p="$RUN/mem"
    {
        common_head "$p"
        cat <<EOF
    wcs_token_auth_cache_ttl 600s;
    wcs_token_auth_cache_size $FILL_CACHE_SIZE;
    server {
        listen 127.0.0.1:$MEM_PORT backlog=4096;
        location /static/none/ { alias $p/html/; }
        location /static/seed/ { $(check_of seed "$MAIN_DIR") alias $p/html/; }
        location /static/module/ { $(check_of module "$MAIN_DIR") alias $p/html/; }
    }
}
EOF
    } >"$p/conf/nginx.conf"
}

# Signed tokens with the cache off: every request verifies its token (and a file token is
# looked up in the directory every time).
write_nocache_conf() {
    local p="$RUN/nocache"
    {
        common_head "$p"
        cat <<EOF
    wcs_token_auth_cache_ttl 0;
    server {
        listen 127.0.0.1:$NOCACHE_PORT backlog=4096;
        location /static/none/ { alias $p/html/; }
        location /static/module/ { $(check_of module "$MAIN_DIR") alias $p/html/; }
        location /static/signed/ { wcs_token_auth jwks=$JWKS; alias $p/html/; }
    }
}
EOF
    } >"$p/conf/nginx.conf"
}

# --- processes -------------------------------------------------------------------------------
PIDS_TO_STOP=()
stop_all() {
    for p in main upstream mem nocache; do
        [ -f "$RUN/$p/logs/nginx.pid" ] && "$NGINX" -p "$RUN/$p" -s stop 2>/dev/null || true
    done
    for pid in "${PIDS_TO_STOP[@]}"; do kill "$pid" 2>/dev/null || true; done
}
trap stop_all EXIT

start_nginx() { # $1: prefix name, $2...: CPU placement
    local p="$RUN/$1"
    shift
    "$@" "$NGINX" -p "$p" -c "$p/conf/nginx.conf" -t -q || die "nginx -t failed for $p"
    "$@" "$NGINX" -p "$p" -c "$p/conf/nginx.conf"
    for _ in $(seq 50); do
        [ -n "$(worker_of "$p")" ] && return 0
        sleep 0.1
    done
    die "nginx in $p did not start"
}

worker_of() { # the worker's pid of the nginx in prefix $1
    local master
    master=$(cat "$1/logs/nginx.pid" 2>/dev/null) || return 0
    [ -n "$master" ] || return 0 # the master is writing it
    pgrep -P "$master" | head -n 1
}

# CPU time on the CPU in ns (precise), and user and system clock ticks (for the split).
cpu_ns() { echo "$(awk '{ print $1 }' "/proc/$1/schedstat") $(awk '{ print $14, $15 }' "/proc/$1/stat")"; }
cpu_delta() { # "before" "after" -> cpu_ns=.. user_ticks=.. sys_ticks=..
    local b a
    read -r -a b <<<"$1"
    read -r -a a <<<"$2"
    echo "cpu_ns=$((a[0] - b[0])) user_ticks=$((a[1] - b[1])) sys_ticks=$((a[2] - b[2]))"
}
rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }

write_main_conf
write_upstream_conf
write_mem_conf
write_nocache_conf
start_nginx upstream "${LOAD_CPU[@]}"
start_nginx main "${NGINX_CPU[@]}"
start_nginx nocache "${NGINX_CPU[@]}"
NOCACHE_WORKER=$(worker_of "$RUN/nocache")
"${LOAD_CPU[@]}" target/release/mock-wcs "127.0.0.1:$WCS_PORT" >/dev/null 2>&1 &
PIDS_TO_STOP+=($!)
WORKER=$(worker_of "$RUN/main")
for _ in $(seq 50); do port_taken "$WCS_PORT" && break; sleep 0.1; done

# The worker's system calls while wrk sends a hot token to /static/$1/ of the memory nginx
# (long cache TTL, primed by one request first).
syscalls() { # $1: variant; prints "requests token_dir_syscalls all_syscalls"
    local trace="$RUN/mem/strace.$1" out reqs
    curl -s -o /dev/null -H "Origin: $MEM_ORIGIN" -H "Cookie: AUTH=$HOT" "http://127.0.0.1:$MEM_PORT/static/$1/index.html"
    strace -f -y -qq -o "$trace" -p "$MEM_WORKER" &
    local spid=$!
    sleep 0.5
    out=$(WRK_MODE=hot WRK_TOKEN=$HOT WRK_ORIGIN=$MEM_ORIGIN "${LOAD_CPU[@]}" \
        wrk -t1 -c4 -d2s -s bench/wrk.lua "http://127.0.0.1:$MEM_PORT/static/$1/index.html" | grep '^BENCH')
    sleep 0.3
    kill -INT "$spid"
    wait "$spid" 2>/dev/null || true
    reqs=$(echo "$out" | sed 's/.*requests=\([0-9]*\).*/\1/')
    echo "$reqs $(grep -c "tokens/$MAIN_DIR" "$trace") $(grep -vc '^+++\|^---' "$trace")"
}
# --- correctness: each variant must answer before it is timed --------------------------------
status_at() { # $1: port, $2: path, $3: token
    curl -s -o /dev/null -w '%{http_code}' -H "Origin: http://127.0.0.1:$1" -H "Cookie: AUTH=$3" "http://127.0.0.1:$1$2"
}
status_of() { status_at "$PORT" "$@"; } # $1: path, $2: token
ws_status() { # $1: path, $2: token, $3: expected status
    target/release/ws-load "ws://127.0.0.1:$PORT$1" --cookie "AUTH=$2" --origin "$ORIGIN" --duration 0 --expect "$3" >/dev/null
}
say "checking that every variant answers 200/101 for a valid token and 403 for an invalid one"
FAILED=0
BROKEN=" "
for size in "${SIZES[@]}"; do
    for v in "${VARIANTS[@]}"; do
        for w in static proxy; do
            good=$(status_of "/$w/$v/$size/index.html" "$HOT")
            bad=$(status_of "/$w/$v/$size/index.html" "$BAD")
            want_bad=403
            [ "$v" = none ] && want_bad=200 # no check: the ceiling
            if [ "$good" != 200 ] || [ "$bad" != "$want_bad" ]; then
                echo "FAIL $w/$v/$size: valid token -> $good (want 200), invalid -> $bad (want $want_bad)" >&2
                FAILED=1 BROKEN+="$w/$v/$size "
            fi
        done
        if [ "$v" = none ] || [ "$v" = module ]; then
            bad_ws=403
            [ "$v" = none ] && bad_ws=101
            if ! ws_status "/ws/$v/$size/" "$HOT" 101 || ! ws_status "/ws/$v/$size/" "$BAD" "$bad_ws"; then
                echo "FAIL ws/$v/$size: want 101 for a valid token and $bad_ws for an invalid one" >&2
                FAILED=1 BROKEN+="ws/$v/$size "
            fi
        fi
    done
    if ! ws_status "/ws/session_check/$size/" "$HOT" 101 || ! ws_status "/ws/session_check/$size/" "$BAD" 403; then
        echo "FAIL ws/session_check/$size: want 101 for a valid token and 403 for an invalid one" >&2
        FAILED=1 BROKEN+="ws/session_check/$size "
    fi
done
# Signed tokens, cached (main) and not (nocache): each algorithm's token is let through; a
# forged one (real header and kid) is refused, and refused for its signature, so that the
# flood below measures verifications, not a parser's early "no".
nocache_status() { status_at "$NOCACHE_PORT" "$@"; }
bad_signatures() { grep -c 'bad signature on signed token' "$RUN/$1/logs/error.log" || true; }
for where in main nocache; do
    before=$(bad_signatures "$where")
    for alg in "${SIGNED_ALGS[@]}"; do
        status=status_of
        [ "$where" = nocache ] && status=nocache_status
        good=$($status /static/signed/index.html "${SIGNED_TOKEN[$alg]}")
        bad=$($status /static/signed/index.html "$(head -n 1 "$SIGNED/$alg.forged")")
        if [ "$good" != 200 ] || [ "$bad" != 403 ]; then
            echo "FAIL signed/$where/$alg: valid token -> $good (want 200), forged -> $bad (want 403)" >&2
            FAILED=1 BROKEN+="signed/$where/$alg "
        fi
    done
    after=$(bad_signatures "$where")
    if [ $((after - before)) != ${#SIGNED_ALGS[@]} ]; then
        echo "FAIL signed/$where: $((after - before)) of ${#SIGNED_ALGS[@]} forged tokens logged as a bad signature" >&2
        FAILED=1 BROKEN+="signed/$where/forged "
    fi
done
# A file token where only jwks= is set; the cache-off file and none locations.
for check in "status_of /static/signed/index.html $HOT 403" "nocache_status /static/module/index.html $HOT 200" \
    "nocache_status /static/module/index.html $BAD 403" "nocache_status /static/none/index.html $BAD 200"; do
    set -- $check
    got=$($1 "$2" "$3")
    if [ "$got" != "$4" ]; then
        echo "FAIL $1 $2 with AUTH=$3 -> $got (want $4)" >&2
        FAILED=1 BROKEN+="signed/other "
    fi
done

# The article's hole, for the record: the seed lets a path through, the module does not.
traversal=../../../../../../../../etc/passwd
say "seed answers $(status_of "/static/seed/$MAIN_DIR/index.html" "$traversal") to AUTH=$traversal, module $(status_of "/static/module/$MAIN_DIR/index.html" "$traversal")"
if [ "$MODE" = check ]; then
    [ "$FAILED" = 0 ] || die "some variants answer wrongly"
    echo "bench check: ${#VARIANTS[@]} variants x 2 workloads x ${#SIZES[@]} directories and WebSocket none/module/session_check answer as required"
    echo "bench check: signed tokens (${SIGNED_ALGS[*]}) answer as required, cached and not; forged ones are refused for their signature"
    # A fresh cache entry means no system call on the token directory; the seed's stat()
    # calls show that strace sees them when they happen.
    "$NGINX" -p "$RUN/main" -s stop
    start_nginx mem "${NGINX_CPU[@]}"
    MEM_WORKER=$(worker_of "$RUN/mem")
    # Without CAP_SYS_PTRACE (docker build, some containers), or where Yama's ptrace scope
    # forbids attaching to a process that is not strace's child, strace cannot attach to the
    # worker: say so instead of failing or passing silently.
    rc=0
    timeout 1 strace -qq -o /dev/null -p "$MEM_WORKER" 2>"$RUN/strace.err" || rc=$?
    if [ "$rc" != 124 ]; then
        echo "bench check: NOT RUN: the zero-syscall proof (strace cannot attach: $(head -n 1 "$RUN/strace.err"))"
        exit 0
    fi
    read -r seed_reqs seed_calls _ <<<"$(syscalls seed)"
    read -r mod_reqs mod_calls _ <<<"$(syscalls module)"
    [ "${seed_reqs:-0}" -gt 0 ] && [ "$seed_calls" -ge "$seed_reqs" ] ||
        die "strace saw $seed_calls token-directory calls for $seed_reqs seed requests: it does not trace the worker"
    [ "${mod_reqs:-0}" -gt 0 ] && [ "$mod_calls" = 0 ] ||
        die "a cached hot token cost $mod_calls token-directory system calls in $mod_reqs requests"
    echo "bench check: a cached hot token cost 0 token-directory system calls in $mod_reqs requests (seed: $seed_calls in $seed_reqs)"
    exit 0
fi

# --- callgrind: instructions per request, reproducible ----------------------------------------
if [ "$MODE" = callgrind ]; then
    # Restarts the nginx of prefix $1 (port $2) as one process under callgrind; prints its pid.
    callgrind_start() {
        "$NGINX" -p "$RUN/$1" -s stop
        sleep 0.5
        sed -i 's/^worker_processes 1;/worker_processes 1; master_process off; daemon off;/' "$RUN/$1/conf/nginx.conf"
        valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$RUN/$1/callgrind.%p" \
            "$NGINX" -p "$RUN/$1" -c "$RUN/$1/conf/nginx.conf" >"$RUN/$1/valgrind.log" 2>&1 &
        echo $!
        for _ in $(seq 100); do port_taken "$2" && break; sleep 0.2; done
    }
    # Instructions per request of 2 s of wrk (one connection) on one path; keeps the profile.
    callgrind_count() { # $1: valgrind pid, $2: prefix, $3: port, $4: path, $5: token mode, $6: token, $7: profile name
        local out reqs ir profile="$RUN/$2/callgrind.$7"
        status_at "$3" "$4" "$6" >/dev/null
        callgrind_control -z "$1" >/dev/null
        callgrind_control -i on "$1" >/dev/null
        out=$(WRK_MODE=$5 WRK_ORIGIN="http://127.0.0.1:$3" WRK_TOKEN=$6 WRK_NTOK=1000 \
            "${LOAD_CPU[@]}" wrk -t1 -c1 -d2s -s bench/wrk.lua "http://127.0.0.1:$3$4" | grep '^BENCH')
        callgrind_control -i off "$1" >/dev/null
        callgrind_control -d "$7" "$1" >/dev/null
        mv "$(ls "$RUN/$2/callgrind.$1".* | head -n 1)" "$profile"
        reqs=$(echo "$out" | sed 's/.*requests=\([0-9]*\).*/\1/')
        ir=$(awk '/^totals:/ { print $2 }' "$profile")
        echo $((ir / reqs))
    }
    ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b / a }'; }
    # A cached token is not checked again while it is counted: at valgrind's pace (about a
    # thousand requests a second), the default 1 s TTL's re-check would add a whole signature
    # check per second, thousands of instructions per request, where at full speed it adds
    # nothing measurable.
    sed -i 's/^    access_log off;$/    access_log off; wcs_token_auth_cache_ttl 600s;/' "$RUN/main/conf/nginx.conf"
    VG=$(callgrind_start main "$PORT")
    PIDS_TO_STOP+=("$VG")
    if [ "$SIGNED_ONLY" = 0 ]; then
        echo "| workload | tokens | variant | instructions/request | × none |"
        echo "|---|---|---|---|---|"
        for cell in "static hot" "proxy hot" "static rotate" "static random"; do
            set -- $cell
            base=
            for v in "${VARIANTS[@]}"; do
                per=$(callgrind_count "$VG" main "$PORT" "/$1/$v/$MAIN_DIR/index.html" "$2" "$HOT" "$1.$2.$v")
                [ "$v" = none ] && base=$per
                echo "| $1 | $2 | $v | $per | $(ratio "$per" "$base") |"
            done
        done
        echo
    fi
    # Signed tokens on the static file: cached here, then every request verifying in the
    # nocache nginx; the difference is the verification.
    declare -A CACHED
    CACHED[module]=$(callgrind_count "$VG" main "$PORT" "/static/module/$MAIN_DIR/index.html" hot "$HOT" static.hot.module)
    for alg in "${SIGNED_ALGS[@]}"; do
        CACHED[$alg]=$(callgrind_count "$VG" main "$PORT" /static/signed/index.html hot "${SIGNED_TOKEN[$alg]}" "static.hot.$alg")
    done
    kill "$VG"
    VG=$(callgrind_start nocache "$NOCACHE_PORT")
    PIDS_TO_STOP+=("$VG")
    echo "| token | cached: instructions/request | × cached file token | cache off: instructions/request | cache off − cached |"
    echo "|---|---|---|---|---|"
    for v in module "${SIGNED_ALGS[@]}"; do
        path=/static/signed/index.html token=${SIGNED_TOKEN[$v]:-$HOT}
        [ "$v" = module ] && path=/static/module/index.html
        off=$(callgrind_count "$VG" nocache "$NOCACHE_PORT" "$path" hot "$token" "static.hot.$v")
        echo "| $([ "$v" = module ] && echo "file token" || echo "$v") | ${CACHED[$v]} | $(ratio "${CACHED[$v]}" "${CACHED[module]}") | $off | $((off - CACHED[$v])) |"
    done
    kill "$VG"
    echo
    echo "Profiles: $RUN/{main,nocache}/callgrind.WORKLOAD.TOKENS.VARIANT (read them with callgrind_annotate)."
    echo "User-space instructions only: the seed's stat() and the module's lookups on a cache miss"
    echo "cost kernel time that callgrind does not see."
    exit 0
fi

# --- timed cells -----------------------------------------------------------------------------
RESULTS="$BENCH/results.tsv"
: >"$RESULTS"
run_wrk() { # $1: cell name, $2: round, $3: seconds, $4: path, $5: token mode
    local cell=$1 round=$2 secs=$3 path=$4 mode=$5 before after out
    before=$(cpu_ns "$WORKER")
    out=$(WRK_MODE=$mode WRK_ORIGIN=$ORIGIN WRK_TOKEN=$HOT WRK_NTOK=1000 \
        "${LOAD_CPU[@]}" wrk -t1 -c"$CONNECTIONS" -d"${secs}s" -s bench/wrk.lua \
        "http://127.0.0.1:$PORT$path" | grep '^BENCH')
    after=$(cpu_ns "$WORKER")
    [ "$round" = warmup ] && return 0
    # shellcheck disable=SC2086
    echo "$cell $round $(echo $out | sed 's/^BENCH //') $(cpu_delta "$before" "$after")" >>"$RESULTS"
}

run_wrk_at() { # $1: cell name, $2: round, $3: seconds, $4: port, $5: path, $6: token, $7: worker
    local before after out
    before=$(cpu_ns "$7")
    out=$(WRK_MODE=hot WRK_ORIGIN="http://127.0.0.1:$4" WRK_TOKEN=$6 \
        "${LOAD_CPU[@]}" wrk -t1 -c"$CONNECTIONS" -d"${3}s" -s bench/wrk.lua \
        "http://127.0.0.1:$4$5" | grep '^BENCH')
    after=$(cpu_ns "$7")
    [ "$2" = warmup ] && return 0
    # shellcheck disable=SC2086
    echo "$1 $2 $(echo $out | sed 's/^BENCH //') $(cpu_delta "$before" "$after")" >>"$RESULTS"
}

# Signed tokens on the static file, one hot token per cell: cached (the main nginx: none, a
# file token, then each algorithm's token) and with the cache off (the nocache nginx: the
# same), in this order in every round.
run_signed_cells() { # $1: round, $2: seconds
    local where mode port worker v path token
    for where in main nocache; do
        if [ "$where" = main ]; then
            mode=cached port=$PORT worker=$WORKER
        else
            mode=uncached port=$NOCACHE_PORT worker=$NOCACHE_WORKER
        fi
        for v in none module "${SIGNED_ALGS[@]}"; do
            case " $BROKEN " in *" signed/$where/$v "* | *" signed/$where/forged "*) continue ;; esac
            case "$where:$v" in
                main:none | main:module) token=$HOT path=/static/$v/$MAIN_DIR/index.html ;;
                nocache:none | nocache:module) token=$HOT path=/static/$v/index.html ;;
                *) token=${SIGNED_TOKEN[$v]} path=/static/signed/index.html ;;
            esac
            run_wrk_at "signed:static:$mode:-:$v" "$1" "$2" "$port" "$path" "$token" "$worker"
        done
    done
}

cells_main() { # workload variant dir mode
    for w in static proxy; do
        for v in "${VARIANTS[@]}"; do echo "$w $v $MAIN_DIR hot"; done
    done
}
cells_scale() {
    for mode in hot rotate random; do
        echo "static none - $mode"
        for size in "${SIZES[@]}"; do
            for v in seed module; do echo "static $v $size $mode"; done
        done
    done
}
run_cells() { # $1: group, $2: round, $3: seconds; cells on stdin
    while read -r w v size mode; do
        local dir=$size
        [ "$dir" = - ] && dir=$MAIN_DIR
        case "$BROKEN" in *" $w/$v/$dir "*) continue ;; esac
        run_wrk "$1:$w:$mode:$size:$v" "$2" "$3" "/$w/$v/$dir/index.html" "$mode"
    done
}

echo "signed_token:module bytes=${#HOT}" >>"$RESULTS"
for alg in "${SIGNED_ALGS[@]}"; do echo "signed_token:$alg bytes=${#SIGNED_TOKEN[$alg]}" >>"$RESULTS"; done
signed_cells=$((2 * (2 + ${#SIGNED_ALGS[@]})))
if [ "$SIGNED_ONLY" = 1 ]; then
    say "timing: $ROUNDS rounds of $signed_cells signed-token cells (${DURATION}s)"
else
    total_cells=$(($(cells_main | wc -l) + $(cells_scale | wc -l) + signed_cells))
    say "timing: $ROUNDS rounds of $total_cells HTTP cells (${DURATION}s variants and signed, ${SCALE_DURATION}s scale) and 3 WebSocket cells (${WS_DURATION}s)"
fi
# Warm-up of the variant and signed cells only: the scale cells follow them in the same nginx.
if [ "$WARMUP" != 0 ]; then
    [ "$SIGNED_ONLY" = 1 ] || cells_main | run_cells main warmup "$WARMUP"
    run_signed_cells warmup "$WARMUP"
fi
for round in $(seq "$ROUNDS"); do
    say "round $round/$ROUNDS"
    if [ "$SIGNED_ONLY" = 1 ]; then
        run_signed_cells "$round" "$DURATION"
        continue
    fi
    cells_main | run_cells main "$round" "$DURATION"
    run_signed_cells "$round" "$DURATION"
    cells_scale | run_cells scale "$round" "$SCALE_DURATION"
    for v in none module session_check; do
        case " $BROKEN " in *" ws/$v/$MAIN_DIR "*) continue ;; esac
        before=$(cpu_ns "$WORKER")
        out=$("${LOAD_CPU[@]}" target/release/ws-load "ws://127.0.0.1:$PORT/ws/$v/$MAIN_DIR/" \
            --cookie "AUTH=$HOT" --origin "$ORIGIN" --connections "$WS_CONNECTIONS" --duration "$WS_DURATION")
        after=$(cpu_ns "$WORKER")
        echo "ws:ws:hot:$MAIN_DIR:$v $round $out $(cpu_delta "$before" "$after")" >>"$RESULTS"
    done
done

# --- signed tokens: floods of forged tokens, each costing the worker one verification --------
say "signed tokens: $SIGNED_FLOOD forged tokens per algorithm (real kid, random claims, a genuine signature over other claims)"
signed_flood() { # $1: algorithm
    local done_file="$RUN/main/flood.done" out="$RUN/main/flood.out" pid before after rss0 rss1
    rm -f "$done_file"
    rss0=$(rss_kb "$WORKER")
    before=$(cpu_ns "$WORKER")
    WRK_MODE=list WRK_TOKENS_FILE="$SIGNED/$1.forged" WRK_LIMIT=$SIGNED_FLOOD WRK_DONE_FILE=$done_file \
        WRK_ORIGIN=$ORIGIN "${LOAD_CPU[@]}" wrk -t1 -c8 -d3600s -s bench/wrk.lua \
        "http://127.0.0.1:$PORT/static/signed/index.html" >"$out" &
    pid=$!
    while [ ! -f "$done_file" ] && kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
    kill -INT "$pid" 2>/dev/null || true
    wait "$pid" || true
    after=$(cpu_ns "$WORKER")
    rss1=$(rss_kb "$WORKER")
    echo "signed_flood:$1 rss0_kb=$rss0 rss1_kb=$rss1 $(grep '^BENCH' "$out" | sed 's/^BENCH //') $(cpu_delta "$before" "$after")" >>"$RESULTS"
}
for alg in "${SIGNED_ALGS[@]}"; do
    case " $BROKEN " in *" signed/main/$alg "* | *" signed/main/forged "*) continue ;; esac
    signed_flood "$alg"
done
"$NGINX" -p "$RUN/main" -s stop
"$NGINX" -p "$RUN/nocache" -s stop

if [ "$SIGNED_ONLY" = 0 ]; then
    # --- memory: a flood of distinct random tokens, then many valid ones -----------------------------
    say "memory: $FLOOD distinct random tokens, then $FILL distinct valid tokens (cache_size $FILL_CACHE_SIZE)"
    start_nginx mem "${NGINX_CPU[@]}"
    MEM_WORKER=$(worker_of "$RUN/mem")
    flood() { # $1: mode, $2: count
        local done_file="$RUN/mem/flood.done" out="$RUN/mem/flood.out" pid
        rm -f "$done_file"
        WRK_MODE=$1 WRK_LIMIT=$2 WRK_DONE_FILE=$done_file WRK_ORIGIN="http://127.0.0.1:$MEM_PORT" \
            "${LOAD_CPU[@]}" wrk -t1 -c8 -d3600s -s bench/wrk.lua \
            "http://127.0.0.1:$MEM_PORT/static/module/index.html" >"$out" &
        pid=$!
        while [ ! -f "$done_file" ] && kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
        kill -INT "$pid" 2>/dev/null || true
        wait "$pid" || true
        grep '^BENCH' "$out" || true
    }
    curl -s -o /dev/null -H "Origin: $MEM_ORIGIN" -H "Cookie: AUTH=$HOT" "http://127.0.0.1:$MEM_PORT/static/module/index.html"
    rss0=$(rss_kb "$MEM_WORKER")
    flood_out=$(flood unique-random "$FLOOD")
    rss1=$(rss_kb "$MEM_WORKER")
    fill_out=$(flood unique-valid "$FILL")
    rss2=$(rss_kb "$MEM_WORKER")
    flood2_out=$(flood unique-random $((FLOOD / 10)))
    rss3=$(rss_kb "$MEM_WORKER")
    {
        echo "memory rss0_kb=$rss0 rss1_kb=$rss1 rss2_kb=$rss2 rss3_kb=$rss3 flood=$FLOOD flood2=$((FLOOD / 10)) fill=$FILL cache_size=$FILL_CACHE_SIZE"
        echo "memory_flood $flood_out"
        echo "memory_fill $fill_out"
        echo "memory_flood2 $flood2_out"
    } >>"$RESULTS"

    # --- system calls of a hot token while its cache entry is fresh --------------------------------
    say "system calls on the token directory: strace on the worker, hot token, fresh cache entry"
    for v in none seed module; do echo "syscalls:$v $(syscalls "$v")" >>"$RESULTS"; done
fi

# --- report ----------------------------------------------------------------------------------
machine() {
    local cpu kernel
    cpu=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)
    kernel=$(uname -sr)
    echo "$cpu, $(nproc) CPUs; $kernel; $("$NGINX" -v 2>&1 | sed 's/^nginx version: //') (vendored, one worker); wrk $(wrk -v 2>&1 | awk 'NR==1 { print $2 }')"
}
TABLE_ARGS=()
[ "$SIGNED_ONLY" = 1 ] && TABLE_ARGS=(--signed-only)
target/release/bench-table "$RESULTS" "${TABLE_ARGS[@]}" \
    --machine "$(machine)" \
    --settings "rounds=$ROUNDS duration=${DURATION}s scale_duration=${SCALE_DURATION}s ws_duration=${WS_DURATION}s connections=$CONNECTIONS ws_connections=$WS_CONNECTIONS pinned=$([ ${#NGINX_CPU[@]} -gt 0 ] && echo yes || echo no)"
