#!/usr/bin/env bash
# The article's client page in a real browser: starts the demo (scripts/demo.sh) on free
# ports and drives Debian's chromium through it with playwright-core (test.mjs beside this
# script): a token from `wcs-token issue` echoes; a revoked one, none, and another origin are
# refused; revoking a token closes the page's open WebSocket within 1.2 s.
# Screenshots go to target/browser-test/. Installs chromium, node and npm when missing.
source "$(dirname "$0")/../../scripts/common.sh"
cd "$ROOT"

ensure_packages chromium
# Any node >= 18 will do (playwright-core 1.61 supports 18, Debian 12's version); keep a
# node that is already there (it may come with its own npm, which Debian's npm conflicts with).
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    ensure_packages nodejs npm
fi
say "playwright-core (npm ci in testkit/browser-test/)"
(cd testkit/browser-test && npm ci --no-audit --no-fund --loglevel=error >/dev/null)

demo_ports
trap 'bash scripts/demo.sh stop' EXIT
bash scripts/demo.sh start >/dev/null

say "browser test (chromium $(chromium --version 2>/dev/null | awk '{print $2}'), headless)"
DEMO_URL="http://127.0.0.1:$DEMO_PORT" \
    DEMO_OTHER_URL="http://127.0.0.1:$DEMO_OTHER_PORT" \
    DEMO_DIR="$ROOT/target/demo" \
    WCS_TOKEN="$ROOT/target/release/wcs-token" \
    SHOT_DIR="$ROOT/target/browser-test" \
    node testkit/browser-test/test.mjs
