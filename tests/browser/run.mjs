// Browser tests of the PWA at /app/: a real `doorstep serve` (SQLite, in a temporary folder)
// driven through headless Chromium (Debian's /usr/bin/chromium) with playwright-core.
//
//   node tests/browser/run.mjs
//
// Environment: DOORSTEP_BIN (default <CARGO_TARGET_DIR or target>/debug/doorstep),
// CHROMIUM (default /usr/bin/chromium), DOORSTEP_SCREENSHOT_DIR (default docs/app),
// ONLY=<substring> to run the scenarios whose name contains it (and those they need).
// Exits non-zero when any scenario fails. The server is always stopped.

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');
const targetDir = path.resolve(root, process.env.CARGO_TARGET_DIR || 'target');
const BIN = path.resolve(root, process.env.DOORSTEP_BIN || path.join(targetDir, 'debug', 'doorstep'));
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SHOTS = path.resolve(root, process.env.DOORSTEP_SCREENSHOT_DIR || path.join('docs', 'app'));
const PASSWORD = 'correct horse battery';
const WIDTH = 360;

// ---------- small helpers ----------

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `check` every 100 ms until it returns a truthy value; fails after `ms`. */
async function waitFor(what, check, ms = 10_000) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? `: ${last.message}` : ''}`);
    await sleep(100);
  }
}

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms / 1000} s`)), ms);
    }),
  ]);
}

// ---------- the server ----------

const tmp = mkdtempSync(path.join(tmpdir(), 'doorstep-browser-'));
// The server reads DOORSTEP_<SECTION>__<KEY> variables as configuration (and ignores, with a
// warning, other DOORSTEP_* ones such as this runner's DOORSTEP_BIN): it gets only these.
const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('DOORSTEP_')));
const serverEnv = {
  ...inherited,
  RUST_LOG: process.env.RUST_LOG || 'warn',
  DOORSTEP_DATABASE__URL: `sqlite://${path.join(tmp, 'doorstep.db')}`,
  DOORSTEP_SERVER__DATA_DIR: tmp,
  DOORSTEP_SERVER__BIND: '127.0.0.1:0',
  DOORSTEP_SERVER__WORKERS: '2',
  DOORSTEP_LIMITS__MIN_CHECKIN_INTERVAL_S: '1',
  DOORSTEP_SCHEDULER__POLL_INTERVAL_MS: '100',
  DOORSTEP_AUTH__LOGIN_MAX_PER_ADDRESS: '1000',
};
let server = null;
let serverLog = '';
let BASE = '';

async function startServer() {
  if (!existsSync(BIN)) throw new Error(`no doorstep binary at ${BIN}: run \`cargo build --bin doorstep\` or set DOORSTEP_BIN`);
  const created = spawnSync(BIN, ['admin', 'create', '--email', 'admin@example.org', '--password-stdin', '--name', 'Admin'], {
    cwd: tmp,
    env: serverEnv,
    input: `${PASSWORD}\n`,
    encoding: 'utf8',
  });
  if (created.status !== 0) throw new Error(`doorstep admin create failed: ${created.stderr}`);
  server = spawn(BIN, ['serve'], { cwd: tmp, env: serverEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  server.stderr.on('data', (d) => {
    serverLog += d;
  });
  BASE = await withTimeout(
    new Promise((resolve, reject) => {
      let out = '';
      server.stdout.on('data', (d) => {
        out += d;
        const m = out.match(/listening on (http:\/\/[\d.]+:\d+)/);
        if (m) resolve(m[1]);
      });
      server.on('exit', (code) => reject(new Error(`doorstep serve exited with ${code}: ${serverLog}`)));
    }),
    20_000,
    'doorstep serve start',
  );
  await waitFor('/readyz', async () => (await fetch(`${BASE}/readyz`)).status === 200, 20_000);
}

/** SIGTERM, then SIGKILL if the graceful shutdown (5 s at most) overruns. */
async function stopServer() {
  if (!server || server.exitCode !== null) return;
  const exited = new Promise((r) => server.once('exit', r));
  server.kill('SIGTERM');
  const timer = setTimeout(() => server.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

// ---------- the API, as the tests' own client ----------

async function call(method, p, token, body, headers = {}) {
  const h = { ...headers };
  if (token) h.authorization = `Bearer ${token}`;
  if (body !== undefined) h['content-type'] = 'application/json';
  const res = await fetch(`${BASE}/api/v1${p}`, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = text;
  }
  return { status: res.status, body: json };
}

async function ok(method, p, token, body, expected = [200, 201, 204]) {
  const res = await call(method, p, token, body);
  assert.ok(expected.includes(res.status), `${method} ${p}: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

async function tokenFor(email) {
  return (await ok('POST', '/auth/login', null, { email, password: PASSWORD })).access_token;
}

const people = {};

async function setUp() {
  const admin = await tokenFor('admin@example.org');
  const org = await ok('POST', '/orgs', admin, { name: 'Riverside Greens' });
  const make = async (key, name, role, orgId) => {
    const email = `${key}@example.org`;
    const body = { email, password: PASSWORD, display_name: name, role };
    if (orgId) body.org_id = orgId;
    const user = await ok('POST', '/users', admin, body);
    people[key] = { id: user.id, email, name, token: await tokenFor(email) };
  };
  await make('olive', 'Olive Organiser', 'organiser', org.id);
  await make('jo', 'Jo Bloggs', 'canvasser', org.id);
  await make('bob', 'Bob Walker', 'canvasser', org.id);
  await make('cat', 'Cat Rivers', 'canvasser', org.id);
  await make('dee', 'Dee Harper', 'canvasser', org.id);
  await make('eve', 'Eve Porter', 'canvasser', org.id);
  await make('hal', 'Hal Walker', 'canvasser', org.id);
  await make('pat', 'PC Pat Lane', 'police');
  await ok('POST', `/orgs/${org.id}/police-contacts`, admin, { user_id: people.pat.id });
  // Missed at the deadline (no grace), no reminders or repeats, police only after 10 min.
  await ok('PUT', `/orgs/${org.id}/escalation-policy`, people.olive.token, {
    reminder_before_s: 0, grace_s: 0, police_after_s: 600, repeat_s: 0, ack_timeout_s: 600,
  });
  people.org = org;
}

// ---------- the browser ----------

let browser;
const LONDON = { latitude: 51.5072, longitude: -0.1276, accuracy: 12 };

async function phone(geolocation = LONDON) {
  const context = await browser.newContext({
    baseURL: BASE,
    viewport: { width: WIDTH, height: 780 },
    deviceScaleFactor: 1,
    isMobile: true,
    hasTouch: true,
    locale: 'en-GB',
    timezoneId: 'Europe/London',
    permissions: ['geolocation', 'notifications'],
    geolocation,
  });
  context.setDefaultTimeout(10_000);
  const page = await context.newPage();
  page.on('pageerror', (err) => {
    pageErrors.push(`${err.message}`);
  });
  page.on('console', (msg) => {
    if (msg.type() === 'error' && !/Failed to load resource|net::ERR_INTERNET_DISCONNECTED/.test(msg.text())) consoleErrors.push(msg.text());
  });
  return { context, page };
}
const pageErrors = []; // uncaught exceptions in the app: a failure
const consoleErrors = []; // reported, not failed

async function signIn(page, who) {
  await page.goto('/app/');
  await page.getByLabel('Email').fill(who.email);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('#nav a').first().waitFor({ timeout: 10_000 });
}

/** No horizontal overflow at 360 px, and every control is a large touch target (≥ 44 px
 * tall; check boxes and radios through their label row). */
async function noOverflow(page, screen) {
  const widths = await page.evaluate(() => ({ doc: document.documentElement.scrollWidth, body: document.body.scrollWidth }));
  assert.ok(widths.doc <= WIDTH && widths.body <= WIDTH, `${screen}: horizontal overflow at ${WIDTH} px (scrollWidth ${widths.doc}/${widths.body})`);
  const small = await page.evaluate(() => {
    const controls = [...document.querySelectorAll('button, .button, nav a, input, select, textarea, summary')];
    return controls
      .filter((el) => el.offsetParent !== null || el.getClientRects().length)
      .map((el) => {
        const target = el.matches('input[type="checkbox"], input[type="radio"]') ? el.closest('.check') : el;
        return { what: `${el.tagName.toLowerCase()}${el.id ? `#${el.id}` : ''} "${(el.textContent || el.name || '').trim().slice(0, 30)}"`, height: target.getBoundingClientRect().height };
      })
      .filter((c) => c.height > 0 && c.height < 44);
  });
  assert.deepEqual(small, [], `${screen}: touch targets under 44 px`);
  return widths.doc;
}

const shots = [];
async function shot(page, name) {
  mkdirSync(SHOTS, { recursive: true });
  await page.evaluate(() => document.activeElement && document.activeElement.blur && document.activeElement.blur());
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true, animations: 'disabled', caret: 'hide' });
  shots.push(`${name}.png`);
}

async function swReady(page) {
  return page.evaluate(() => navigator.serviceWorker.ready.then((r) => Boolean(r.active)));
}

// ---------- scenarios ----------

const state = {};

async function canvasserStartsAndChecksIn() {
  const { context, page } = await phone();
  state.jo = { context, page };
  await page.goto('/app/');
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  assert.equal(await page.getByLabel('Code from your authenticator app').isVisible(), false, 'the TOTP field waits for totp-required');
  await noOverflow(page, 'login');
  await shot(page, 'login');
  // A wrong password: the problem's detail, on the page.
  await page.getByLabel('Email').fill(people.jo.email);
  await page.getByLabel('Password').fill('not the password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('#login-msg').getByText('invalid email or password').waitFor();
  await signIn(page, people.jo);

  // Start: every 15 min, within 250 m of here, with a note.
  await page.getByRole('heading', { name: 'Start an outing' }).waitFor();
  await page.locator('#location').getByText('±12 m').waitFor();
  await page.getByLabel('How often will you check in?').selectOption({ label: 'Every 15 minutes' });
  await page.getByLabel('I will stay near here').check();
  await page.getByLabel('Within').selectOption({ label: '250 m' });
  await page.getByLabel('Note for your organisers (optional)').fill('Ward 3, odd numbers');
  await noOverflow(page, 'start');
  await shot(page, 'start');
  await page.getByRole('button', { name: 'Start outing' }).click();
  await page.getByRole('button', { name: 'Check in' }).waitFor();

  const mine = await ok('GET', '/outings?status=active', people.jo.token);
  assert.equal(mine.items.length, 1);
  const outing = mine.items[0];
  state.joOuting = outing.id;
  assert.equal(outing.checkin_interval_s, 900);
  assert.deepEqual(outing.area, { type: 'Circle', center: [LONDON.longitude, LONDON.latitude], radius_m: 250 });
  assert.equal(outing.note, 'Ward 3, odd numbers');
  assert.equal(outing.last_checkin.lat, LONDON.latitude, 'the start position is the first check-in');

  // Move, then check in: the server stores the emulated position and its accuracy.
  const moved = { latitude: 51.5081, longitude: -0.129, accuracy: 15 };
  await context.setGeolocation(moved);
  await waitFor('the new position on screen', () => page.locator('#location').getByText('51.50810').isVisible(), 10_000);
  const sent = page.waitForRequest((r) => r.method() === 'POST' && r.url().endsWith(`/outings/${outing.id}/checkins`));
  await page.getByRole('button', { name: 'Check in' }).click();
  await page.locator('#checkin-msg').getByText('Checked in at').waitFor({ timeout: 10_000 });
  assert.match((await sent).headers()['idempotency-key'] || '', /^[0-9a-f-]{36}$/, 'live check-ins carry an Idempotency-Key');
  const after = await ok('GET', `/outings/${outing.id}`, people.jo.token);
  assert.equal(after.last_checkin.lat, moved.latitude);
  assert.equal(after.last_checkin.lon, moved.longitude);
  assert.equal(after.last_checkin.accuracy_m, moved.accuracy);
  assert.equal(after.last_checkin.kind, 'ok');
  assert.equal(after.inside_area, true);
  const trail = await ok('GET', `/outings/${outing.id}/checkins`, people.jo.token);
  assert.equal(trail.items.length, 2, 'start position + one check-in');
  await page.locator('#countdown').getByText(/^1[45]:\d\d$/).waitFor();
  await noOverflow(page, 'outing');
  await shot(page, 'outing');

  // Settings: PINs through the UI; the test push is accepted.
  await page.locator('#nav').getByRole('link', { name: 'Settings' }).click();
  await page.getByLabel('Safe PIN (4–8 digits)').fill('2468');
  await page.getByLabel('Duress PIN (4–8 digits, different)').fill('1357');
  await page.getByRole('button', { name: 'Set PINs' }).click();
  await page.locator('#pin-msg').getByText('PINs saved.').waitFor();
  assert.equal((await ok('GET', '/me', people.jo.token)).has_pins, true);
  // Changing them needs the current safe PIN: a wrong one is refused, the right one works.
  await page.getByLabel('Current safe PIN').fill('9999');
  await page.getByLabel('Safe PIN (4–8 digits)').fill('2468');
  await page.getByLabel('Duress PIN (4–8 digits, different)').fill('1357');
  await page.getByRole('button', { name: 'Change PINs' }).click();
  await page.locator('#pin-msg.msg-error').waitFor();
  await page.getByLabel('Current safe PIN').fill('2468');
  await page.getByRole('button', { name: 'Change PINs' }).click();
  await page.locator('#pin-msg').getByText('PINs saved.').waitFor();
  await page.getByRole('button', { name: 'Send a test alert' }).click();
  await page.locator('#push-msg').getByText('Test sent').waitFor();
  await noOverflow(page, 'settings');
  await shot(page, 'settings');
  await page.locator('#nav').getByRole('link', { name: 'Outing' }).click();
  await page.getByRole('button', { name: 'Check in' }).waitFor();

  // A rejected access token (expired, say): the app refreshes (rotating the refresh token)
  // and carries on, with no new sign-in.
  const refreshBefore = await page.evaluate(() => localStorage.getItem('doorstep.refresh'));
  await page.evaluate(() => sessionStorage.setItem('doorstep.access', 'not-a-valid-token'));
  await page.reload();
  await page.getByRole('button', { name: 'Check in' }).waitFor();
  const refreshAfter = await page.evaluate(() => localStorage.getItem('doorstep.refresh'));
  assert.ok(refreshAfter && refreshAfter !== refreshBefore, 'the refresh token was used (and rotated)');
  assert.notEqual(await page.evaluate(() => sessionStorage.getItem('doorstep.access')), 'not-a-valid-token');
}

async function readQueue(page) {
  return page.evaluate(
    () =>
      new Promise((resolve, reject) => {
        const open = indexedDB.open('doorstep');
        open.onerror = () => reject(open.error);
        open.onsuccess = () => {
          const req = open.result.transaction('queue').objectStore('queue').getAll();
          req.onsuccess = () => resolve(req.result);
          req.onerror = () => reject(req.error);
        };
      }),
  );
}

async function offlineCheckinsQueueAndSync() {
  const { context, page } = state.jo;
  const id = state.joOuting;
  const before = (await ok('GET', `/outings/${id}/checkins`, people.jo.token)).items.length;
  await swReady(page);
  await context.setOffline(true);
  await page.locator('#net').getByText('Offline').waitFor();
  const spots = [
    { latitude: 51.5091, longitude: -0.1301, accuracy: 9 },
    { latitude: 51.5102, longitude: -0.1312, accuracy: 30 },
  ];
  for (const [i, spot] of spots.entries()) {
    await context.setGeolocation(spot);
    await waitFor('the offline position on screen', () => page.locator('#location').getByText(spot.latitude.toFixed(5)).isVisible(), 10_000);
    await page.getByRole('button', { name: 'Check in' }).click();
    await page.locator('#queue').getByText(`${i + 1} check-in${i ? 's' : ''} saved on this phone`).waitFor();
  }
  await page.locator('#checkin-msg').getByText('NOT sent').waitFor();
  const queued = await readQueue(page);
  assert.equal(queued.length, 2);
  assert.ok(queued.every((q) => q.op === 'batch' && q.body.client_id === q.client_id && /^[0-9a-f-]{36}$/.test(q.client_id)));
  await noOverflow(page, 'outing (offline)');
  await shot(page, 'offline');

  // The app shell opens with no network (service worker cache), showing the outing.
  const second = await context.newPage();
  await second.goto('/app/');
  await second.getByRole('heading', { name: 'Your outing' }).waitFor({ timeout: 10_000 });
  await second.locator('#outing-status').getByText('offline').waitFor();

  // Back online: both tabs try to send; the server gets each check-in once.
  await context.setOffline(false);
  await page.locator('#queue').waitFor({ state: 'hidden', timeout: 15_000 });
  await waitFor('an empty queue', async () => (await readQueue(page)).length === 0, 15_000);
  await second.close();
  const trail = (await ok('GET', `/outings/${id}/checkins?limit=100`, people.jo.token)).items;
  assert.equal(trail.length, before + 2, 'two queued check-ins stored, no duplicates');
  for (const spot of spots) {
    const found = trail.filter((c) => c.lat === spot.latitude && c.lon === spot.longitude);
    assert.equal(found.length, 1, `check-in at ${spot.latitude} stored once`);
    assert.equal(found[0].accuracy_m, spot.accuracy);
  }
  // The server holds them under their client_ids: sending the same batch again stores nothing.
  const again = await ok('POST', `/outings/${id}/checkins/batch`, people.jo.token, { checkins: queued.map((q) => q.body) });
  assert.deepEqual([again.stored, again.duplicates], [0, 2]);
  assert.equal((await ok('GET', `/outings/${id}/checkins?limit=100`, people.jo.token)).items.length, before + 2);

  // I need help (confirmed in a dialog): a need-help alert with the position.
  await page.getByRole('button', { name: 'I need help' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Send help request' }).click();
  await page.locator('#checkin-msg').getByText('Help request sent').waitFor();
  const helped = await ok('GET', `/outings/${id}`, people.jo.token);
  assert.equal(helped.open_alert.kind, 'need_help');
  await page.locator('#open-alert').getByText('Needs help alert').waitFor();

  // Home: a wrong PIN is refused with the server's reason; the safe PIN ends the outing
  // (and clears the need-help alert).
  await page.getByLabel('Your PIN').fill('0000');
  await page.getByRole('button', { name: 'End outing' }).click();
  await page.locator('form .msg-error').waitFor();
  assert.equal((await ok('GET', `/outings/${id}`, people.jo.token)).status, 'active');
  await page.getByLabel('Your PIN').fill('2468');
  await page.getByRole('button', { name: 'End outing' }).click();
  await page.getByRole('heading', { name: 'Start an outing' }).waitFor();
  const ended = await ok('GET', `/outings/${id}`, people.jo.token);
  assert.equal(ended.status, 'ended');
  assert.equal((await ok('GET', `/alerts/${helped.open_alert.id}`, people.jo.token)).resolution, 'ended_safe');
  await context.close();
}

async function missedOutingAppearsOnOpenBoard() {
  const { context, page } = await phone();
  state.olive = { context, page };
  await signIn(page, people.olive);
  await page.getByRole('heading', { name: 'Overdue board' }).waitFor();
  await page.locator('#stream-state').getByText('Live').waitFor({ timeout: 10_000 });
  await page.locator('#board').getByText('Nobody is overdue.').waitFor();
  await page.evaluate(() => {
    window.__sameDocument = true;
  });
  // Bob's outing is due in 2 s and has no grace: missed at once.
  const outing = await ok('POST', '/outings', people.bob.token, {
    checkin_interval_s: 2,
    start_location: { lat: 51.5155, lon: -0.0922, accuracy_m: 18 },
  });
  state.bobOuting = outing.id;
  const item = page.locator(`#board li[data-outing="${outing.id}"]:not([data-alert=""])`);
  await item.waitFor({ timeout: 15_000 });
  const seenAt = Date.now();
  const alertId = await item.getAttribute('data-alert');
  const alert = await ok('GET', `/alerts/${alertId}`, people.olive.token);
  const lagMs = seenAt - Date.parse(alert.opened_at);
  assert.ok(lagMs <= 2000, `the board showed the alert ${lagMs} ms after it opened (limit 2000)`);
  assert.equal(await page.evaluate(() => window.__sameDocument), true, 'no reload');
  await item.getByText('Missed check-in').waitFor();
  await item.getByText('51.51550').waitFor();
  state.bobAlert = alertId;
  state.boardLagMs = lagMs;
  await noOverflow(page, 'board');
  await shot(page, 'board');
}

async function organiserAcknowledgesAndResolves() {
  const { page } = state.olive;
  const id = state.bobAlert;
  await page.locator(`#board li[data-alert="${id}"]`).getByRole('link', { name: 'Open alert' }).click();
  await page.waitForURL(`**/app/alerts/${id}`);
  await page.getByRole('heading', { name: 'Missed check-in: Bob Walker' }).waitFor();
  await page.locator('#alert-coords').getByText('51.51550, -0.09220').waitFor();
  assert.equal(await page.getByRole('link', { name: 'Open in maps app' }).getAttribute('href'), 'geo:51.515500,-0.092200?q=51.515500,-0.092200(Bob%20Walker)');
  assert.match(await page.getByRole('link', { name: /OpenStreetMap/ }).getAttribute('href'), /^https:\/\/www\.openstreetmap\.org\/\?mlat=51\.515500&mlon=-0\.092200/);
  // The delivery record lists the level-1 recipients (no device registered in this test).
  await page.locator('#deliveries').getByText('Olive Organiser (organiser)').waitFor({ timeout: 10_000 });
  await noOverflow(page, 'alert');
  await shot(page, 'alert');

  await page.getByLabel('Acknowledgement note (optional)').fill('Calling Bob now');
  await page.getByRole('button', { name: /^Acknowledge/ }).click();
  await page.locator('#alert-status').getByText('Acknowledged').waitFor();
  let alert = await ok('GET', `/alerts/${id}`, people.olive.token);
  assert.equal(alert.status, 'acknowledged');
  assert.equal(alert.acknowledged_by.id, people.olive.id);

  await page.getByLabel('False alarm').check();
  await page.getByRole('button', { name: 'Resolve alert' }).click();
  await page.locator('#alert-status').getByText('Resolved: false alarm').waitFor();
  alert = await ok('GET', `/alerts/${id}`, people.olive.token);
  assert.equal(alert.status, 'resolved');
  assert.equal(alert.resolution, 'false_alarm');
  // Bob is home: stop his 2-second deadlines.
  await ok('POST', `/outings/${state.bobOuting}/end`, people.bob.token, {});
}

async function serviceWorkerShowsPush() {
  const { context, page } = state.olive;
  await page.goto('/app/settings');
  await page.getByRole('heading', { name: 'Settings' }).waitFor();
  assert.equal(await swReady(page), true);
  const cdp = await context.newCDPSession(page);
  const registrations = [];
  cdp.on('ServiceWorker.workerRegistrationUpdated', (e) => registrations.push(...e.registrations));
  await cdp.send('ServiceWorker.enable');
  const reg = await waitFor('the service worker registration', () => registrations.find((r) => r.scopeURL === `${BASE}/app/` && !r.isDeleted), 5000);
  const message = {
    type: 'missed_checkin', alert_id: '00000000-0000-4000-8000-000000000001', outing_id: '00000000-0000-4000-8000-000000000002', level: 1,
    canvasser: { id: '00000000-0000-4000-8000-000000000003', name: 'Test Person' },
    last_location: { lat: 51.58, lon: -0.02, accuracy_m: 20, recorded_at: new Date().toISOString() },
    due_at: new Date().toISOString(), sent_at: new Date().toISOString(),
    title: 'Missed check-in: Test Person', body: 'Test Person did not check in.',
    url: '/app/alerts/00000000-0000-4000-8000-000000000001',
  };
  await cdp.send('ServiceWorker.deliverPushMessage', { origin: BASE, registrationId: reg.registrationId, data: JSON.stringify(message) });
  const shown = await waitFor(
    'the notification',
    () =>
      page.evaluate(async () => {
        const r = await navigator.serviceWorker.ready;
        const list = await r.getNotifications();
        return list.length ? list.map((n) => ({ title: n.title, body: n.body, tag: n.tag, requireInteraction: n.requireInteraction, vibrate: n.vibrate, data: n.data })) : null;
      }),
    5000,
  );
  const n = shown.find((x) => x.title === message.title);
  assert.ok(n, `notification shown: ${JSON.stringify(shown)}`);
  assert.equal(n.body, message.body);
  assert.equal(n.tag, message.alert_id);
  assert.equal(n.requireInteraction, true);
  assert.ok(n.vibrate.length > 1, 'urgent messages vibrate');
  assert.equal(n.data.url, message.url);

  // A test message is not urgent.
  await cdp.send('ServiceWorker.deliverPushMessage', {
    origin: BASE, registrationId: reg.registrationId,
    data: JSON.stringify({ type: 'test', title: 'Doorstep test', body: 'Alerts will reach this device.', url: '/app/' }),
  });
  const test = await waitFor('the test notification', () =>
    page.evaluate(async () => {
      const list = await (await navigator.serviceWorker.ready).getNotifications({ tag: 'test' });
      return list.length ? { requireInteraction: list[0].requireInteraction } : null;
    }), 5000);
  assert.equal(test.requireInteraction, false);

  // An incident report is tagged by incident (two reports, two notifications) and not urgent;
  // a do-not-knock caution reached at a check-in is urgent.
  const incidentId = '00000000-0000-4000-8000-000000000004';
  const cautionId = '00000000-0000-4000-8000-000000000005';
  for (const data of [
    { type: 'incident', incident_id: incidentId, title: 'Incident reported: Threat', body: 'Test Person reported an incident.', url: `/app/incidents/${incidentId}` },
    { type: 'caution', caution_id: cautionId, outing_id: message.outing_id, title: 'Do not knock here', body: 'You are at a do-not-knock address: dog', url: `/app/outings/${message.outing_id}` },
  ]) {
    await cdp.send('ServiceWorker.deliverPushMessage', { origin: BASE, registrationId: reg.registrationId, data: JSON.stringify(data) });
  }
  const more = await waitFor('the incident and caution notifications', () =>
    page.evaluate(async ([i, c]) => {
      const r = await navigator.serviceWorker.ready;
      const [a] = await r.getNotifications({ tag: `incident-${i}` });
      const [b] = await r.getNotifications({ tag: `caution-${c}` });
      return a && b ? { incident: [a.requireInteraction, a.data.url], caution: b.requireInteraction } : null;
    }, [incidentId, cautionId]), 10_000);
  assert.deepEqual(more, { incident: [false, `/app/incidents/${incidentId}`], caution: true });
  await cdp.detach();
}

async function duressAlertSaysDoNotCall() {
  // Dee ends an outing with her duress PIN; Olive opens the alert.
  await ok('PUT', '/me/pins', people.dee.token, { safe_pin: '2468', duress_pin: '1357' });
  const outing = await ok('POST', '/outings', people.dee.token, {
    checkin_interval_s: 600,
    start_location: { lat: 51.52, lon: -0.1, accuracy_m: 10 },
  });
  await ok('POST', `/outings/${outing.id}/end`, people.dee.token, { pin: '1357' });
  const seen = await ok('GET', `/outings/${outing.id}`, people.olive.token);
  assert.equal(seen.open_alert.kind, 'duress');
  const { context, page } = await phone();
  await signIn(page, people.olive);
  await page.goto(`/app/alerts/${seen.open_alert.id}`);
  await page.getByRole('heading', { name: 'Duress: Dee Harper' }).waitFor();
  await page.locator('#alert-silent').getByText(/^Do not call them\./).waitFor();
  const hint = await page.locator('#alert-actions .hint').first().textContent();
  assert.match(hint, /Do not call or message them/);
  assert.doesNotMatch(hint, /calling them/i);
  await ok('POST', `/alerts/${seen.open_alert.id}/resolve`, people.olive.token, { outcome: 'safe' });
  await context.close();
}

async function panicNeedsPressAndHold() {
  const { context, page } = await phone({ latitude: 51.5033, longitude: -0.1196, accuracy: 25 });
  state.cat = { context, page };
  await signIn(page, people.cat);
  await page.locator('#location').getByText('±25 m').waitFor();
  await page.getByLabel('Planned end (optional)').fill('21:30');
  await page.getByLabel('I will stay near here').check();
  await page.getByRole('button', { name: 'Start outing' }).click();
  const panic = page.getByRole('button', { name: 'Panic' });
  await panic.waitFor();
  const id = (await ok('GET', '/outings?status=active', people.cat.token)).items[0].id;
  state.catOuting = id;
  // A tap does nothing but explain.
  await panic.click();
  await page.locator('#panic-msg').getByText('Keep holding').waitFor();
  assert.equal((await ok('GET', `/outings/${id}`, people.cat.token)).open_alert, null);
  // A 2-second hold sends it.
  await panic.hover();
  await page.mouse.down();
  await page.locator('#panic-msg').getByText('PANIC ALERT SENT').waitFor({ timeout: 5000 });
  await page.mouse.up();
  const outing = await ok('GET', `/outings/${id}`, people.cat.token);
  assert.equal(outing.open_alert.kind, 'panic');
  assert.equal(outing.open_alert.level, 2);
  assert.equal(outing.open_alert.last_location.lat, 51.5033);
  // Keyboard: Space held down works too (and the open alert is upgraded, not duplicated).
  await panic.focus();
  await page.keyboard.down(' ');
  await sleep(300);
  await page.keyboard.up(' ');
  await page.locator('#panic-msg').getByText('Keep holding').waitFor();
  state.catAlert = outing.open_alert.id;
}

async function noOverflowOnEveryScreen() {
  const checked = {};
  // Canvasser: outing with an open panic alert, and settings.
  const cat = state.cat.page;
  await cat.locator('#nav').getByRole('link', { name: 'Outing' }).click();
  await cat.getByRole('button', { name: 'Check in' }).waitFor();
  checked.outing = await noOverflow(cat, 'outing (panic)');
  await cat.locator('#nav').getByRole('link', { name: 'Settings' }).click();
  await cat.getByRole('heading', { name: 'Settings' }).waitFor();
  checked.settings = await noOverflow(cat, 'settings');
  // Police: the board (level-2 panic with position), the alert, the planned outings.
  const { context, page } = await phone();
  await signIn(page, people.pat);
  await page.getByRole('heading', { name: 'Overdue board' }).waitFor();
  const item = page.locator(`#board li[data-alert="${state.catAlert}"]`);
  await item.getByText('PANIC').waitFor({ timeout: 10_000 });
  checked.board = await noOverflow(page, 'board (police)');
  await item.getByRole('link', { name: 'Open alert' }).click();
  await page.getByRole('heading', { name: 'PANIC: Cat Rivers' }).waitFor();
  await page.locator('#alert-coords').getByText('51.50330').waitFor();
  checked.alert = await noOverflow(page, 'alert (police)');
  await page.locator('#nav').getByRole('link', { name: 'Planned' }).click();
  await page.getByRole('heading', { name: 'Planned outings' }).waitFor();
  await page.locator('#planned').getByText('Cat Rivers').waitFor();
  checked.planned = await noOverflow(page, 'planned');
  await shot(page, 'planned');
  // Organiser's own outing screen and the login screen.
  const olive = state.olive.page;
  await olive.locator('#nav').getByRole('link', { name: 'My outing' }).click();
  await olive.getByRole('heading', { name: 'Start an outing' }).waitFor();
  checked.start = await noOverflow(olive, 'start (organiser)');
  const fresh = await browser.newContext({ viewport: { width: WIDTH, height: 780 }, isMobile: true, baseURL: BASE });
  const login = await fresh.newPage();
  await login.goto('/app/');
  await login.getByRole('heading', { name: 'Sign in' }).waitFor();
  checked.login = await noOverflow(login, 'login');
  await fresh.close();
  await context.close();
  assert.deepEqual(Object.keys(checked).sort(), ['alert', 'board', 'login', 'outing', 'planned', 'settings', 'start']);
}

// Field safety: the incident log and the do-not-knock register ("cautions").
const BRIXTON = { latitude: 51.4613, longitude: -0.1156, accuracy: 8 };
const DOG = { latitude: 51.498, longitude: -0.0637, accuracy: 10 }; // a do-not-knock door
const FAR = { latitude: 51.55, longitude: -0.05, accuracy: 10 }; // a pairs-only estate

async function canvasserReportsIncident() {
  const { context, page } = await phone(BRIXTON);
  await signIn(page, people.eve);
  await page.getByRole('heading', { name: 'Start an outing' }).waitFor();
  await page.locator('#nav').getByRole('link', { name: 'Report' }).click();
  await page.getByRole('heading', { name: 'Report an incident' }).waitFor();
  // What will be sent is on screen before sending.
  await page.locator('#report-location').getByText('51.46130, -0.11560').waitFor();
  // Nothing chosen: the form says which answer is missing, and sends nothing.
  const posts = [];
  page.on('request', (r) => {
    if (r.method() === 'POST' && r.url().endsWith('/api/v1/incidents')) posts.push(r);
  });
  await page.getByRole('button', { name: 'Send report' }).click();
  await page.locator('#report-category-error').getByText('Choose what happened').waitFor();
  assert.equal(await page.locator('#report-category').getAttribute('aria-invalid'), 'true');
  assert.equal(posts.length, 0);

  await page.locator('#category-threat').check();
  await page.getByLabel('Describe what happened').fill('The man at no. 12 said he would set his dog on me.\nTall, grey coat.');
  await page.getByLabel('Share with the police contact').check();
  await noOverflow(page, 'report');
  await shot(page, 'report');
  await page.getByRole('button', { name: 'Send report' }).click();
  await page.locator('#report-done').getByText('Report sent at').waitFor();
  await page.getByRole('heading', { name: 'Report sent' }).waitFor();
  await page.locator('#incident-status').getByText('Open').waitFor();
  await page.locator('#incident-reported').waitFor();

  const mine = await ok('GET', '/incidents', people.eve.token);
  assert.equal(mine.items.length, 1);
  const incident = mine.items[0];
  assert.equal(incident.category, 'threat');
  assert.equal(incident.share_with_police, true);
  assert.equal(incident.description, 'The man at no. 12 said he would set his dog on me.\nTall, grey coat.');
  assert.deepEqual(incident.location, { lat: BRIXTON.latitude, lon: BRIXTON.longitude });
  assert.equal(incident.reporter.id, people.eve.id);

  // A note added straight after.
  await page.getByLabel('Add a note').fill('He followed me to the corner.');
  await page.getByRole('button', { name: 'Save note' }).click();
  await page.locator('#entry-msg').getByText('Added to the record.').waitFor();
  await page.locator('#incident-entries').getByText('He followed me to the corner.').waitFor();
  const after = await ok('GET', `/incidents/${incident.id}`, people.eve.token);
  assert.equal(after.entries.length, 1);
  assert.equal(after.entries[0].author.id, people.eve.id);
  assert.notEqual(after.hash, incident.hash, 'the chain head moves with each entry');
  await page.locator('#my-incidents').getByText('Threat').waitFor();
  await noOverflow(page, 'report sent');
  await shot(page, 'report-sent');
  state.incident = incident.id;
  // The police contact sees it: it is shared.
  assert.ok((await ok('GET', '/incidents', people.pat.token)).items.some((i) => i.id === incident.id));
  await context.close();
}

async function organiserSeesIncident() {
  const id = state.incident;
  const { context, page } = await phone();
  await signIn(page, people.olive);
  await page.getByRole('heading', { name: 'Overdue board' }).waitFor();
  await page.locator('#nav').getByRole('link', { name: 'Incidents' }).click();
  await page.getByRole('heading', { name: 'Incidents' }).waitFor();
  const item = page.locator(`#incidents li[data-incident="${id}"]`);
  await item.getByText('Eve Porter').waitFor();
  await item.getByText('Threat').waitFor();
  await noOverflow(page, 'incidents');
  await shot(page, 'incidents');

  await item.getByRole('link', { name: 'Open incident' }).click();
  await page.waitForURL(`**/app/incidents/${id}`);
  await page.getByRole('heading', { name: 'Threat: Eve Porter' }).waitFor();
  await page.locator('#incident-description').getByText('said he would set his dog on me').waitFor();
  await page.locator('#incident-coords').getByText('51.46130, -0.11560').waitFor();
  assert.match(await page.getByRole('link', { name: /OpenStreetMap/ }).getAttribute('href'), /mlat=51\.461300&mlon=-0\.115600/);
  await page.locator('#incident-entries').getByText('He followed me to the corner.').waitFor();
  await page.locator('#incident-entries').getByText('Eve Porter').waitFor();
  // The head hash: short on screen, the whole of it on hover (title) and a tap away.
  const seen = await ok('GET', `/incidents/${id}`, people.olive.token);
  const code = page.locator('#incident-hash summary code');
  assert.equal(await code.textContent(), `${seen.hash.slice(0, 12)}…`);
  assert.equal(await code.getAttribute('title'), seen.hash);
  await page.locator('#incident-hash summary').click();
  await page.locator('#incident-hash .hash-full').getByText(seen.hash).waitFor();
  await noOverflow(page, 'incident');
  await shot(page, 'incident');

  // An entry by the organiser.
  await page.getByLabel('Add an entry').fill('Called Eve. Reported to police, reference 4471.');
  await page.getByRole('button', { name: 'Save entry' }).click();
  await page.locator('#incident-entries').getByText('reference 4471').waitFor();
  const added = await ok('GET', `/incidents/${id}`, people.olive.token);
  assert.equal(added.entries.length, 2);
  assert.equal(added.entries[1].author.id, people.olive.id);
  assert.equal(await code.getAttribute('title'), added.hash);

  // Print / export: the record (fetched with the token) opens in a new tab.
  const popup = page.waitForEvent('popup');
  await page.getByRole('button', { name: 'Print / export' }).click();
  const record = await popup;
  await record.waitForURL(/^blob:/, { timeout: 10_000 });
  await record.getByRole('heading', { name: 'Incident record' }).waitFor();
  // Its own stylesheet applies (the blob: page keeps the app's CSP, which refuses it inline).
  await waitFor('the record styled', () => record.evaluate(() => getComputedStyle(document.querySelector('table')).borderCollapse === 'collapse'), 5000);
  const text = await record.locator('body').textContent();
  assert.ok(text.includes('said he would set his dog on me'), 'the export has the description');
  assert.ok(text.includes(added.hash), 'the export has the head hash');
  await record.close();
  await page.locator('#export-msg').getByText('opened in a new tab').waitFor();
  assert.match(await page.locator('#incident-download').getAttribute('download'), new RegExp(`^incident-${id}\\.html$`));

  // Close, with a note (confirmed in a dialog): no more entries.
  await page.getByText('Close this incident').click();
  await page.getByLabel('Closing note (optional)').fill('Police have it.');
  await page.getByRole('button', { name: 'Close incident' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Close incident' }).click();
  await page.locator('#incident-status').getByText('Closed').waitFor();
  await page.getByText('This incident is closed.').waitFor();
  assert.equal(await page.getByLabel('Add an entry').count(), 0);
  const closed = await ok('GET', `/incidents/${id}`, people.olive.token);
  assert.equal(closed.status, 'closed');
  assert.equal(closed.entries.at(-1).kind, 'close');
  assert.equal(closed.entries.at(-1).text, 'Police have it.');
  await context.close();
}

async function cautionOnStartScreen() {
  const org = people.org.id;
  const dog = await ok('POST', `/orgs/${org}/cautions`, people.olive.token, {
    lat: DOG.latitude, lon: DOG.longitude, radius_m: 30, level: 'do_not_knock', reason: 'Dog loose in the front garden',
  });
  // About 400 m north: near, but not here.
  await ok('POST', `/orgs/${org}/cautions`, people.olive.token, {
    lat: DOG.latitude + 0.0036, lon: DOG.longitude, radius_m: 25, level: 'note', reason: 'Steep steps, no handrail',
  });
  await ok('POST', `/orgs/${org}/cautions`, people.olive.token, {
    lat: FAR.latitude, lon: FAR.longitude, radius_m: 200, level: 'pairs_only', reason: 'Canvassers shouted at here in May',
  });
  state.dogCaution = dog.id;
  const { context, page } = await phone(DOG);
  const near = page.waitForRequest((r) => r.url().includes(`/orgs/${org}/cautions?near=`));
  await signIn(page, people.eve);
  await page.getByRole('heading', { name: 'Start an outing' }).waitFor();
  assert.match((await near).url(), /near=51\.49800,-0\.06370&within_m=1000/);
  const list = page.locator('#cautions');
  await list.locator(`li[data-caution="${dog.id}"]`).getByText('Dog loose in the front garden').waitFor();
  await list.locator(`li[data-caution="${dog.id}"]`).getByText('Do not knock').waitFor();
  await list.getByText('You are inside it').waitFor();
  await list.getByText('Steep steps, no handrail').waitFor();
  await list.getByText(/About 400 m north of you/).waitFor();
  assert.equal(await list.getByText('Canvassers shouted at here in May').count(), 0, 'the pairs-only estate is 6 km away');
  assert.equal(await list.locator('li').first().getAttribute('data-caution'), dog.id, 'do not knock comes first');
  await noOverflow(page, 'start (cautions)');
  await shot(page, 'start-cautions');

  // Alone, with an area holding a pairs-only caution: refused, and the reason is at the
  // companions field.
  await context.setGeolocation(FAR);
  await waitFor('the new position on screen', () => page.locator('#location').getByText('51.55000').isVisible(), 10_000);
  await list.getByText('Canvassers shouted at here in May').waitFor();
  await list.getByText('Go in pairs only').waitFor();
  await page.getByLabel('I will stay near here').check();
  await page.getByRole('button', { name: 'Start outing' }).click();
  const companions = page.getByLabel('Companions (optional)');
  await page.locator('.field-error').getByText('go in pairs only: add a companion').waitFor();
  assert.equal(await companions.getAttribute('aria-invalid'), 'true');
  const errorId = await page.locator('.field-error').getAttribute('id');
  assert.ok((await companions.getAttribute('aria-describedby')).split(' ').includes(errorId), 'the error is read out with the field');
  assert.equal((await ok('GET', '/outings?status=active', people.eve.token)).items.length, 0);

  // Back at the dog's door: the outing starts, showing the cautions of its area.
  await context.setGeolocation(DOG);
  await waitFor('the position back on screen', () => page.locator('#location').getByText('51.49800').isVisible(), 10_000);
  await page.getByRole('button', { name: 'Start outing' }).click();
  await page.getByRole('button', { name: 'Check in' }).waitFor();
  await page.getByRole('heading', { name: 'Cautions in your area' }).waitFor();
  await page.locator('#cautions').getByText('Dog loose in the front garden').waitFor();
  assert.equal(await page.getByRole('link', { name: 'Report an incident' }).getAttribute('href'), '/app/report');
  const outing = (await ok('GET', '/outings?status=active', people.eve.token)).items[0];

  // A check-in at the door: a do-not-knock banner.
  await page.getByRole('button', { name: 'Check in' }).click();
  await page.locator('#checkin-msg').getByText('Checked in at').waitFor();
  const banner = page.locator('#caution-banner');
  await banner.getByText('DO NOT KNOCK here').waitFor();
  await banner.getByText('Dog loose in the front garden').waitFor();
  assert.equal(await banner.getAttribute('role'), 'alert');
  assert.match(await banner.getAttribute('class'), /is-do_not_knock/);
  await noOverflow(page, 'outing (caution)');
  await shot(page, 'caution');
  // Further down the road: the next check-in clears it.
  await context.setGeolocation({ latitude: 51.4991, longitude: -0.0661, accuracy: 10 });
  await waitFor('the new position on screen', () => page.locator('#location').getByText('51.49910').isVisible(), 10_000);
  await page.getByRole('button', { name: 'Check in' }).click();
  await waitFor('the banner gone', async () => (await banner.count()) === 0, 10_000);
  await ok('POST', `/outings/${outing.id}/end`, people.eve.token, {});
  await context.close();
}

async function organiserMarksAndRetiresCaution() {
  const org = people.org.id;
  const spot = { latitude: 51.4702, longitude: -0.0702, accuracy: 14 };
  const { context, page } = await phone(spot);
  await signIn(page, people.olive);
  await page.getByRole('heading', { name: 'Overdue board' }).waitFor();
  const board = page.locator('#cautions-board');
  await board.locator(`li[data-caution="${state.dogCaution}"]`).getByText('Dog loose in the front garden').waitFor();
  await board.getByText('Mark a new caution').click();
  await page.getByRole('button', { name: 'Use my position' }).click();
  await waitFor('the position in the form', async () => (await page.getByLabel('Latitude').inputValue()) === '51.470200', 10_000);
  assert.equal(await page.getByLabel('Longitude').inputValue(), '-0.070200');
  await page.getByLabel('Radius').selectOption({ label: '50 m' });
  await page.getByLabel('Go in pairs only').check();
  await page.getByLabel('Reason').fill('Group outside the pub has followed canvassers');
  await noOverflow(page, 'board (cautions)');
  await shot(page, 'board-cautions');
  await page.getByRole('button', { name: 'Mark caution' }).click();
  await page.locator('#caution-form-msg').getByText('Caution marked').waitFor();
  const made = (await ok('GET', `/orgs/${org}/cautions`, people.olive.token)).items.find((c) => c.reason === 'Group outside the pub has followed canvassers');
  assert.ok(made, 'the caution is in the register');
  assert.deepEqual([made.lat, made.lon, made.radius_m, made.level], [spot.latitude, spot.longitude, 50, 'pairs_only']);
  const item = board.locator(`li[data-caution="${made.id}"]`);
  await item.getByText('Go in pairs only').waitFor();

  // Renew, then retire (confirmed in a dialog).
  await item.getByRole('button', { name: 'Renew' }).click();
  await page.locator('#cautions-msg').getByText('Renewed').waitFor();
  await item.getByRole('button', { name: 'Retire' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Retire' }).click();
  await page.locator('#cautions-msg').getByText('Caution retired.').waitFor();
  await item.waitFor({ state: 'detached' });
  const left = (await ok('GET', `/orgs/${org}/cautions`, people.olive.token)).items;
  assert.equal(left.some((c) => c.id === made.id), false);
  await context.close();
}

/** The newest `welfare_check` push recorded for an outing, read from the server's SQLite file
 * (the browser has no push service to receive it from): its payload carries the reply token. */
function welfarePush(outingId) {
  const script = [
    'import json, sqlite3, sys',
    'db = sqlite3.connect(sys.argv[1], timeout=5)',
    "row = db.execute(\"SELECT payload FROM notifications WHERE outing_id = ? AND message_type = 'welfare_check' ORDER BY created_at DESC LIMIT 1\", (sys.argv[2],)).fetchone()",
    'print(row[0] if row else "")',
  ].join('\n');
  const out = spawnSync('python3', ['-c', script, path.join(tmp, 'doorstep.db'), outingId], { encoding: 'utf8' });
  assert.equal(out.status, 0, out.stderr);
  return out.stdout.trim() ? JSON.parse(out.stdout) : null;
}

/** Clicks a notification's action inside the service worker, as the phone's shade would. */
async function clickNotificationAction(context, tag, action) {
  const worker = await waitFor('the service worker', () => context.serviceWorkers().find((w) => w.url().endsWith('/app/sw.js')), 5000);
  return worker.evaluate(
    async ([t, a]) => {
      const [notification] = await self.registration.getNotifications({ tag: t });
      if (!notification) return 'no notification';
      self.dispatchEvent(new NotificationEvent('notificationclick', { notification, action: a }));
      return 'clicked';
    },
    [tag, action],
  );
}

async function checkOnMeAndWelfareFromTheNotification() {
  const hal = people.hal;
  const started = await ok('POST', '/outings', hal.token, {
    checkin_interval_s: 3600, start_location: { lat: LONDON.latitude, lon: LONDON.longitude, accuracy_m: 10 },
  });
  const { context, page } = await phone();
  await signIn(page, hal);
  await page.goto('/app/outing');
  await page.getByRole('heading', { name: 'Check on me' }).waitFor();
  // One tap with a note: the deadline moves to ten minutes from now.
  await page.getByLabel('Note for whoever is alerted (optional)').fill('Going into number 14');
  const before = Date.now();
  await page.getByRole('button', { name: '10 min' }).click();
  await page.locator('#check-on-me-msg').getByText('the alarm is raised with your note').waitFor();
  const seen = await ok('GET', `/outings/${started.id}`, hal.token);
  const due = Date.parse(seen.next_checkin_due_at);
  assert.ok(Math.abs(due - (before + 600_000)) < 5000, `the check-on-me rules: due ${seen.next_checkin_due_at}`);
  await shot(page, 'check-on-me');

  // "Are you OK?" asked by the organiser reaches the phone with two buttons.
  assert.equal(await swReady(page), true);
  const cdp = await context.newCDPSession(page);
  const registrations = [];
  cdp.on('ServiceWorker.workerRegistrationUpdated', (e) => registrations.push(...e.registrations));
  await cdp.send('ServiceWorker.enable');
  const reg = await waitFor('the service worker registration', () => registrations.find((r) => r.scopeURL === `${BASE}/app/` && !r.isDeleted), 5000);
  const ask = async () => {
    await ok('POST', `/outings/${started.id}/welfare-check`, people.olive.token, { note: 'Are you OK, Fay?' });
    const message = welfarePush(started.id);
    assert.ok(message && message.reply_token, 'the push carries a reply token');
    await cdp.send('ServiceWorker.deliverPushMessage', { origin: BASE, registrationId: reg.registrationId, data: JSON.stringify(message) });
    const shown = await waitFor('the welfare notification', () =>
      page.evaluate(async (tag) => {
        // The question (it replaces the thank-you of an earlier answer, which has its tag).
        const list = await (await navigator.serviceWorker.ready).getNotifications({ tag });
        const n = list.find((x) => x.title === 'Are you OK?');
        return n ? { title: n.title, actions: n.actions.map((a) => a.action), requireInteraction: n.requireInteraction } : null;
      }, `welfare-${started.id}`), 5000);
    assert.deepEqual(shown, { title: 'Are you OK?', actions: ['ok', 'need_help'], requireInteraction: true });
    return message;
  };
  // "I'm OK" from the notification: answered without the app, the question spent.
  const first = await ask();
  assert.equal(await clickNotificationAction(context, `welfare-${started.id}`, 'ok'), 'clicked');
  await waitFor('the thank-you notification', () =>
    page.evaluate(async (tag) => {
      const [n] = await (await navigator.serviceWorker.ready).getNotifications({ tag });
      return n && n.title.startsWith('Thanks');
    }, `welfare-${started.id}`), 5000);
  const again = await call('POST', `/outings/${started.id}/welfare-reply`, null, { token: first.reply_token, kind: 'ok' });
  assert.equal(again.status, 404, 'the token was spent by the notification\'s answer');
  let now = await ok('GET', `/outings/${started.id}`, people.olive.token);
  assert.equal(now.open_alert, null);
  // "I need help" from the notification raises need_help.
  await ask();
  assert.equal(await clickNotificationAction(context, `welfare-${started.id}`, 'need_help'), 'clicked');
  now = await waitFor('the need-help alert', async () => {
    const o = await ok('GET', `/outings/${started.id}`, people.olive.token);
    return o.open_alert && o.open_alert.kind === 'need_help' ? o : null;
  }, 5000);
  assert.equal(now.open_alert.kind, 'need_help');
  await cdp.detach();
  await context.close();
}

// The hand-off to the police: the organiser makes the link on the alert screen; a phone with
// no account opens the page, which updates itself and draws its map without any script or
// outside file; withdrawn, it opens nothing.
const HANDOFF_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

async function organiserHandsAlertToPolice() {
  // Fay is out with Gus; she panics, then checks in once more on 41% battery.
  const person = async (key, name, phone) => {
    const email = `${key}@example.org`;
    const user = await ok('POST', '/users', people.olive.token, { email, password: PASSWORD, display_name: name, role: 'canvasser' });
    await ok('PATCH', `/users/${user.id}`, people.olive.token, { phone });
    people[key] = { id: user.id, email, name, token: await tokenFor(email) };
  };
  await person('fay', 'Fay Hollis', '+447700900101');
  await person('gus', 'Gus Reed', '+447700900102');
  const outing = await ok('POST', '/outings', people.fay.token, {
    checkin_interval_s: 900,
    area: { type: 'Circle', center: [-0.1419, 51.5014], radius_m: 300 },
    companions: [people.gus.id],
    note: 'Buckingham Gate, even numbers',
    start_location: { lat: 51.5014, lon: -0.1419, accuracy_m: 9 },
  });
  const alert = await ok('POST', `/outings/${outing.id}/panic`, people.fay.token, { lat: 51.5012, lon: -0.1405, accuracy_m: 12 });
  await ok('POST', `/outings/${outing.id}/checkins`, people.fay.token, { lat: 51.5009, lon: -0.1392, accuracy_m: 14, battery_pct: 41 });

  // The canvasser's own alert screen has no hand-off.
  {
    const { context, page } = await phone();
    await signIn(page, people.fay);
    await page.goto(`/app/alerts/${alert.id}`);
    await page.getByRole('heading', { name: 'PANIC: Fay Hollis' }).waitFor();
    assert.equal(await page.locator('#alert-handoff').count(), 0, 'no hand-off for the canvasser');
    await context.close();
  }

  const { context, page } = await phone();
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: BASE });
  await signIn(page, people.olive);
  await page.goto(`/app/alerts/${alert.id}`);
  await page.getByRole('heading', { name: 'PANIC: Fay Hollis' }).waitFor();
  const make = page.getByRole('button', { name: 'Hand to police' });
  // Keyboard: focus and Enter.
  await make.focus();
  await page.keyboard.press('Enter');
  await page.locator('#handoff-msg').getByText('Link made').waitFor();
  const url = await page.getByLabel('Link for the police').inputValue();
  assert.match(url, new RegExp(`^${BASE.replace(/[.:/]/g, '\\$&')}/handoff/[A-Za-z0-9_-]{43}$`), url);
  await page.getByRole('button', { name: 'Copy link' }).click();
  await page.locator('#handoff-msg').getByText('Link copied.').waitFor();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), url, 'the link is on the clipboard');
  // The share sheet is offered exactly where the browser has one.
  const canShare = await page.evaluate(() => typeof navigator.share === 'function');
  assert.equal((await page.locator('#handoff-share').count()) > 0, canShare);
  const showQr = page.getByRole('button', { name: 'Show QR code' });
  assert.equal(await showQr.getAttribute('aria-expanded'), 'false');
  await showQr.click();
  const qr = page.getByRole('img', { name: /QR code of the hand-off link/ });
  await qr.waitFor();
  assert.equal(await page.getByRole('button', { name: 'Hide QR code' }).getAttribute('aria-expanded'), 'true');
  assert.ok(await qr.evaluate((img) => img.complete && img.naturalWidth > 0), 'the QR code loads under the app CSP');
  await noOverflow(page, 'alert with hand-off');
  await shot(page, 'handoff');

  // The police phone: no account, no script.
  const patrol = await browser.newContext({ viewport: { width: WIDTH, height: 780 }, isMobile: true, hasTouch: true, locale: 'en-GB', timezoneId: 'Europe/London' });
  const police = await patrol.newPage();
  const violations = [];
  police.on('console', (m) => {
    if (/Content Security Policy|Refused to/i.test(m.text())) violations.push(m.text());
  });
  police.on('pageerror', (e) => violations.push(e.message));
  const requests = [];
  police.on('request', (r) => requests.push(r.url()));
  const resp = await police.goto(url);
  assert.equal(resp.status(), 200);
  assert.equal(resp.headers()['content-security-policy'], HANDOFF_CSP);
  assert.equal(resp.headers()['x-robots-tag'], 'noindex, nofollow');
  assert.equal(resp.headers()['cache-control'], 'no-store');
  await police.getByRole('heading', { name: 'PANIC: Fay Hollis' }).waitFor();
  assert.equal(await police.locator('#person-phone a').getAttribute('href'), 'tel:+447700900101');
  await police.locator('#companions').getByText('Gus Reed').waitFor();
  assert.equal(await police.locator('#companions a').getAttribute('href'), 'tel:+447700900102');
  await police.locator('#outing-note').getByText('Buckingham Gate, even numbers').waitFor();
  await police.locator('#battery').getByText('41%').waitFor();
  await police.locator('#last-position').getByText('51.50090, -0.13920').waitFor();
  const trail = police.locator('#trail tbody tr.since');
  assert.equal(await trail.count(), 2, 'the check-in and the panic position');
  assert.match(await trail.first().textContent(), /51\.50090, -0\.13920/);
  const map = police.getByRole('img', { name: 'Map of the alert' });
  await map.waitFor();
  const box = await map.boundingBox();
  assert.ok(box.width > 300 && box.height > 200, `the map is drawn: ${JSON.stringify(box)}`);
  assert.equal(await police.locator('#map-svg .trail-point').count(), 2);
  assert.equal(await police.locator('#map-svg .area').count(), 1);
  assert.equal(await police.locator('script').count(), 0, 'no script on the page');
  assert.ok(requests.every((u) => u === url), `nothing else fetched: ${requests.join(', ')}`);
  const widths = await police.evaluate(() => ({ doc: document.documentElement.scrollWidth, body: document.body.scrollWidth }));
  assert.ok(widths.doc <= WIDTH && widths.body <= WIDTH, `hand-off page: horizontal overflow at ${WIDTH} px (${widths.doc}/${widths.body})`);
  await shot(police, 'handoff-page');
  // Live without script: a new check-in appears after the page reloads itself (every 15 s).
  await ok('POST', `/outings/${outing.id}/checkins`, people.fay.token, { lat: 51.5003, lon: -0.1371, accuracy_m: 11, battery_pct: 40 });
  await police.locator('#last-position').getByText('51.50030, -0.13710').waitFor({ timeout: 20_000 });
  assert.deepEqual(violations, [], 'no CSP violation or error on the page');

  // Withdrawn: the page opens nothing, for everyone.
  await page.getByRole('button', { name: 'Withdraw link' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Withdraw link' }).click();
  await page.locator('#handoff-msg').getByText('Link withdrawn').waitFor();
  assert.equal(await page.locator('#handoff-url').count(), 0);
  const gone = await police.goto(url);
  assert.equal(gone.status(), 404);
  await police.getByRole('heading', { name: 'This link has expired or was withdrawn' }).waitFor();
  assert.equal(await police.getByText('Fay Hollis').count(), 0);
  // Each opening is in the organisers' audit log, with its address.
  const audit = await ok('GET', '/audit', people.olive.token);
  const views = audit.items.filter((r) => r.action === 'handoff.view' && r.alert_id === alert.id);
  assert.ok(views.length >= 2, `views audited: ${views.length}`);
  assert.equal(views[0].detail.address, '127.0.0.1');
  await ok('POST', `/alerts/${alert.id}/resolve`, people.olive.token, { outcome: 'safe' });
  await ok('POST', `/outings/${outing.id}/end`, people.fay.token, {});
  await patrol.close();
  await context.close();
}

// [name, test, the scenarios whose pages it carries on with]
const SCENARIOS = [
  ['1. canvasser starts an outing and checks in with an emulated position (stored by the server)', canvasserStartsAndChecksIn, []],
  ['4. offline check-ins are queued in IndexedDB and sent once when back online; end with PIN', offlineCheckinsQueueAndSync, ['1.']],
  ['2. a missed outing appears on the organiser\'s open board within 2 s, without reload', missedOutingAppearsOnOpenBoard, []],
  ['3. the organiser acknowledges and resolves in the UI (checked via the API)', organiserAcknowledgesAndResolves, ['2.']],
  ['5. the service worker shows a notification for a push message', serviceWorkerShowsPush, ['2.']],
  ['7. panic needs a press and hold (pointer and keyboard)', panicNeedsPressAndHold, []],
  ['8. a duress alert\'s screen says not to call them', duressAlertSaysDoNotCall, []],
  ['6. no horizontal overflow at 360 px on every main screen', noOverflowOnEveryScreen, ['2.', '7.']],
  ['9. a canvasser reports an incident from the phone, with position, and adds a note', canvasserReportsIncident, []],
  ['10. the organiser sees it in the incident list and its detail; adds, exports, closes', organiserSeesIncident, ['9.']],
  ['11. a caution marked through the API appears on the canvasser\'s start screen, outing and check-in', cautionOnStartScreen, []],
  ['12. the organiser marks, renews and retires a caution on the board', organiserMarksAndRetiresCaution, ['11.']],
  ['13. check on me from the phone; "are you OK?" answered from the notification\'s buttons', checkOnMeAndWelfareFromTheNotification, []],
  ['14. the organiser hands an alert to the police: link, copy, QR; the page opens without an account, updates itself, then is withdrawn', organiserHandsAlertToPolice, []],
];

async function main() {
  const started = Date.now();
  const results = [];
  try {
    await startServer();
    await setUp();
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync',
      ],
    });
    // ONLY=<text>: the scenarios whose name contains it, and those they need.
    const wanted = new Set(SCENARIOS.filter(([name]) => !process.env.ONLY || name.includes(process.env.ONLY)).map(([name]) => name));
    for (const [name, , needs] of [...SCENARIOS].reverse()) {
      if (wanted.has(name)) needs.forEach((n) => SCENARIOS.filter(([m]) => m.startsWith(n)).forEach(([m]) => wanted.add(m)));
    }
    for (const [name, fn, needs] of SCENARIOS) {
      if (!wanted.has(name)) continue;
      const missing = needs.filter((n) => !results.some((r) => r.ok && r.name.startsWith(n)));
      if (missing.length) {
        results.push({ name, ok: false, ms: 0 });
        console.log(`  ✖ ${name}: not run, needs ${missing.join(', ')}`);
        continue;
      }
      const t0 = Date.now();
      try {
        await withTimeout(fn(), 90_000, name);
        results.push({ name, ok: true, ms: Date.now() - t0 });
        console.log(`  ✔ ${name} (${Date.now() - t0} ms)`);
      } catch (err) {
        results.push({ name, ok: false, ms: Date.now() - t0, err });
        console.log(`  ✖ ${name} (${Date.now() - t0} ms)\n      ${String(err.stack || err).split('\n').slice(0, 6).join('\n      ')}`);
      }
    }
  } catch (err) {
    results.push({ name: 'set-up', ok: false, err });
    console.log(`  ✖ set-up: ${err.stack || err}`);
  } finally {
    if (browser) await browser.close().catch(() => {});
    await stopServer();
  }
  const failed = results.filter((r) => !r.ok);
  if (pageErrors.length) console.log(`  ✖ uncaught errors in the app:\n    ${pageErrors.join('\n    ')}`);
  if (consoleErrors.length) console.log(`  console errors (not failures):\n    ${consoleErrors.join('\n    ')}`);
  if (failed.length && serverLog) console.log(`  server log (last lines):\n${serverLog.split('\n').slice(-20).join('\n')}`);
  console.log(
    `browser tests: ${results.length - failed.length} passed, ${failed.length} failed, in ${((Date.now() - started) / 1000).toFixed(1)} s` +
      (state.boardLagMs !== undefined ? `; board showed the missed check-in ${state.boardLagMs} ms after it opened` : '') +
      (shots.length ? `; screenshots in ${path.relative(root, SHOTS) || '.'}: ${shots.join(', ')}` : ''),
  );
  rmSync(tmp, { recursive: true, force: true });
  process.exitCode = failed.length || pageErrors.length ? 1 : 0;
}

process.on('SIGINT', () => {
  if (server && server.exitCode === null) server.kill('SIGKILL');
  process.exit(130);
});

main();
