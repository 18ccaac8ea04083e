// End-to-end test of the article's client page in a real browser (Debian's chromium,
// headless, driven by playwright-core) against the demo: nginx with wcs_token_auth in front
// of the mock WCS. testkit/browser-test/run.sh starts the demo and sets the environment.
//
// Every step checks the page (what a person sees) and nginx's own logs (why it happened),
// so a refusal for the wrong reason fails the test.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set (run testkit/browser-test/run.sh)`);
  return v;
};
const DEMO_URL = env('DEMO_URL'); // http://127.0.0.1:PORT
const OTHER_URL = env('DEMO_OTHER_URL'); // the same page on another port: another origin
const DEMO_DIR = env('DEMO_DIR'); // tokens/ and logs/
const CLI = env('WCS_TOKEN');
const SHOTS = env('SHOT_DIR');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const TOKENS = join(DEMO_DIR, 'tokens');
const WSS = DEMO_URL.replace(/^http/, 'ws') + '/wss';
const TIMEOUT = 15000;

const wcsToken = (...args) =>
  execFileSync(CLI, ['--dir', TOKENS, ...args], { encoding: 'utf8' }).trim();
const accessLines = () =>
  readFileSync(join(DEMO_DIR, 'logs/access.log'), 'utf8').split('\n').filter(Boolean);
const errorLog = () => readFileSync(join(DEMO_DIR, 'logs/error.log'), 'utf8');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// The first /wss access-log line after `from` lines; nginx writes a 101's line when the
// WebSocket closes.
async function nextWssLine(from) {
  const deadline = Date.now() + TIMEOUT;
  for (;;) {
    const line = accessLines().slice(from).find((l) => l.includes('"GET /wss '));
    if (line) return line;
    if (Date.now() > deadline) throw new Error(`no /wss line in the access log after line ${from}`);
    await sleep(50);
  }
}

async function statusOf(page, wanted) {
  await page.waitForFunction(
    (classes) => classes.includes(document.getElementById('status').className),
    wanted,
    { timeout: TIMEOUT },
  );
  return page.textContent('#status');
}

// All cookies, not cookies(DEMO_URL): Playwright's URL filter leaves out Secure cookies for
// http:// URLs, although Chromium sends them to 127.0.0.1 (a secure context).
async function authCookie(context) {
  const host = new URL(DEMO_URL).hostname;
  return (await context.cookies()).find((c) => c.name === 'AUTH' && c.domain === host);
}

async function shot(page, name) {
  const path = join(SHOTS, name);
  await page.screenshot({ path, fullPage: true });
  console.log(`  screenshot: ${path}`);
}

const steps = [];
const step = (name, fn) => steps.push({ name, fn });

step('a token from `wcs-token issue` opens the WebSocket and the mock WCS echoes', async (context) => {
  const token = wcsToken('issue');
  const page = await context.newPage();
  await page.goto(`${DEMO_URL}/#token=${token}`);
  const before = accessLines().length;
  await page.click('#connect');
  assert.equal(await statusOf(page, ['echoed', 'failed']), 'echoed: hello from the browser');
  const cookie = await authCookie(context);
  assert.ok(cookie, 'the page set the AUTH cookie');
  assert.equal(cookie.value, token);
  assert.equal(cookie.secure, true, 'the cookie is Secure, as in the article');
  assert.equal(await page.textContent('#cookie'), 'set');
  await shot(page, '1-valid-token-echo.png');
  await page.click('#disconnect');
  assert.equal(await statusOf(page, ['disconnected']), 'disconnected');
  assert.equal(await authCookie(context), undefined, 'the cookie is cleared on disconnect');
  assert.match(await nextWssLine(before), /"GET \/wss HTTP\/1\.1" 101 wcs_auth=allowed$/);
  await page.close();
  return token;
});

step('after `wcs-token revoke` the same page is refused (403 unknown_token)', async (context, token) => {
  wcsToken('revoke', token);
  assert.throws(() => wcsToken('check', token), 'check calls the revoked token invalid');
  await sleep(1200); // wcs_token_auth_cache_ttl, 1s by default
  const errorsBefore = errorLog().split('unknown token in cookie "AUTH"').length;
  const page = await context.newPage();
  await page.goto(`${DEMO_URL}/#token=${token}`);
  const before = accessLines().length;
  await page.click('#connect');
  assert.equal(await statusOf(page, ['echoed', 'failed']), 'failed: the WebSocket was refused');
  assert.equal(await authCookie(context), undefined, 'the cookie is cleared on failure');
  await shot(page, '2-revoked-token-refused.png');
  assert.match(await nextWssLine(before), /"GET \/wss HTTP\/1\.1" 403 wcs_auth=unknown_token$/);
  assert.ok(errorLog().split('unknown token in cookie "AUTH"').length > errorsBefore);
  await page.close();
});

step('without a token the page is refused (403 no_token)', async (context) => {
  await context.clearCookies();
  const page = await context.newPage();
  await page.goto(`${DEMO_URL}/`);
  const before = accessLines().length;
  await page.click('#connect');
  assert.equal(await statusOf(page, ['echoed', 'failed']), 'failed: the WebSocket was refused');
  assert.match(await nextWssLine(before), /"GET \/wss HTTP\/1\.1" 403 wcs_auth=no_token$/);
  await page.close();
});

step('a page from another origin cannot open it, even with a valid AUTH cookie in the browser', async (context) => {
  const token = wcsToken('issue');
  // The victim's tab: logged in, WebSocket open, cookie set.
  const victim = await context.newPage();
  await victim.goto(`${DEMO_URL}/#token=${token}`);
  await victim.click('#connect');
  assert.equal(await statusOf(victim, ['echoed', 'failed']), 'echoed: hello from the browser');
  assert.equal((await authCookie(context))?.value, token, 'the cookie is in the browser');

  const otherOrigin = new URL(OTHER_URL).origin;
  const denial = `wcs_token_auth: origin "${otherOrigin}" is not allowed`;
  const denialsBefore = errorLog().split(denial).length;
  const attacker = await context.newPage();
  await attacker.goto(`${OTHER_URL}/?wss=${encodeURIComponent(WSS)}`);
  assert.equal(await attacker.textContent('#origin'), otherOrigin);
  const before = accessLines().length;
  await attacker.click('#connect');
  assert.equal(await statusOf(attacker, ['echoed', 'failed']), 'failed: the WebSocket was refused');
  await shot(attacker, '3-other-origin-refused.png');
  assert.match(await nextWssLine(before), /"GET \/wss HTTP\/1\.1" 403 wcs_auth=origin_denied$/);
  assert.ok(errorLog().split(denial).length > denialsBefore, `error log has: ${denial}`);
  // The victim's own WebSocket was never affected.
  assert.equal(await victim.textContent('#status'), 'echoed: hello from the browser');
  await victim.click('#disconnect');
  await statusOf(victim, ['disconnected']);
  wcsToken('revoke', token);
});

step('`wcs-token revoke` closes the page\'s open WebSocket within 1.2 s (session_check 1s)', async (context) => {
  const token = wcsToken('issue');
  const page = await context.newPage();
  await page.goto(`${DEMO_URL}/#token=${token}`);
  const before = accessLines().length;
  await page.click('#connect');
  assert.equal(await statusOf(page, ['echoed', 'failed']), 'echoed: hello from the browser');
  const closedBefore = errorLog().split('closed session: token revoked').length;
  const revokedAt = Date.now();
  wcsToken('revoke', token);
  await page.waitForFunction(() => document.getElementById('status').className === 'disconnected',
    null, { timeout: 5000 });
  const took = Date.now() - revokedAt;
  console.log(`  the page's WebSocket closed ${took} ms after the revoke`);
  assert.ok(took <= 1200, `closed ${took} ms after the revoke, more than 1.2 s`);
  await shot(page, '4-revoked-session-closed.png');
  assert.match(await nextWssLine(before), /"GET \/wss HTTP\/1\.1" 101 wcs_auth=session_revoked$/);
  assert.ok(errorLog().split('closed session: token revoked').length > closedBefore);
  await page.close();
});

async function main() {
  mkdirSync(SHOTS, { recursive: true });
  const profile = mkdtempSync(join(tmpdir(), 'wcs-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run'],
    viewport: { width: 900, height: 760 },
  });
  let passed = 0;
  let failed = 0;
  let carry;
  try {
    for (const { name, fn } of steps) {
      try {
        carry = await fn(context, carry);
        passed++;
        console.log(`ok - ${name}`);
      } catch (e) {
        failed++;
        console.log(`not ok - ${name}\n  ${String(e.stack || e).replace(/\n/g, '\n  ')}`);
      }
    }
  } finally {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  }
  // Same shape as cargo's summary, so scripts/test.sh counts these tests too.
  console.log(`test result: ${failed ? 'FAILED' : 'ok'}. ${passed} passed; ${failed} failed;`);
  process.exit(failed ? 1 : 0);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
