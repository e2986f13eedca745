// Doorstep app: start-up, sign-in, navigation and routing. Screens live in canvasser.js
// (outing, settings), watch.js (board, alert, planned) and incidents.js (report, incidents).

import { api, ApiError, NetworkError, events, hasSession, login, logout, clearTokens } from './api.js';
import * as queue from './queue.js';
import * as push from './push.js';
import { outingView, settingsView } from './canvasser.js';
import { boardView, alertView, plannedView, startStream, stopStream } from './watch.js';
import { reportView, incidentsView, incidentView } from './incidents.js';
import { h, messageArea, field, confirmDialog, announce } from './ui.js';

const ME = 'doorstep.me';
const main = document.getElementById('main');
const navEl = document.getElementById('nav');
const netEl = document.getElementById('net');

const NAV = {
  canvasser: [['/app/outing', 'Outing'], ['/app/report', 'Report'], ['/app/settings', 'Settings']],
  organiser: [['/app/board', 'Board'], ['/app/incidents', 'Incidents'], ['/app/outing', 'My outing'], ['/app/settings', 'Settings']],
  police: [['/app/board', 'Board'], ['/app/incidents', 'Incidents'], ['/app/planned', 'Planned'], ['/app/settings', 'Settings']],
  admin: [['/app/settings', 'Settings']],
};

async function adminView(root) {
  root.replaceChildren(
    h('h1', { tabindex: '-1' }, 'Administrator'),
    h('p', {}, 'This app is for canvassers, organisers and police. Administrators set up organisations, people and police contacts through the API: see docs/api.md, or the API pages at '),
    h('p', {}, h('a', { href: '/api/v1/docs/' }, '/api/v1/docs/')),
  );
  return () => {};
}

function home(root, ctx) {
  if (ctx.me.role === 'canvasser') return outingView(root, ctx);
  if (ctx.me.role === 'organiser' || ctx.me.role === 'police') return boardView(root, ctx);
  return adminView(root, ctx);
}

const ROUTES = [
  [/^\/app\/?(index\.html)?$/, home],
  [/^\/app\/outing$/, outingView],
  [/^\/app\/outings\/[\w-]+$/, outingView],
  [/^\/app\/board$/, boardView],
  [/^\/app\/planned$/, plannedView],
  [/^\/app\/settings$/, settingsView],
  [/^\/app\/report$/, reportView],
  [/^\/app\/incidents$/, incidentsView],
  [/^\/app\/incidents\/([\w-]+)$/, (root, c, id) => incidentView(root, c, id)],
  [/^\/app\/alerts\/([\w-]+)$/, (root, c, id) => alertView(root, c, id)],
];

const ctx = { me: null, flush, signOut, navigate };
let cleanup = null;
let routeSeq = 0;

function paintNav() {
  const items = ctx.me ? NAV[ctx.me.role] || [] : [];
  navEl.hidden = !items.length;
  const path = location.pathname.replace(/\/$/, '');
  const first = items[0] && items[0][0];
  navEl.replaceChildren(
    h(
      'ul',
      { class: items.length > 3 ? 'nav-many' : null },
      items.map(([href, label]) => {
        const current = path === href || (path === '/app' && href === first) || (href === '/app/outing' && path.startsWith('/app/outings/'))
          || (href === '/app/incidents' && path.startsWith('/app/incidents/')) || (href === '/app/report' && path.startsWith('/app/incidents/') && ctx.me.role === 'canvasser');
        return h('li', {}, h('a', { href, 'aria-current': current ? 'page' : null }, label));
      }),
    ),
  );
}

function paintNet() {
  netEl.replaceChildren(
    navigator.onLine
      ? h('span', { class: 'net-on' }, h('span', { 'aria-hidden': 'true' }, '● '), 'Online')
      : h('span', { class: 'net-off' }, h('span', { 'aria-hidden': 'true' }, '⚠ '), 'Offline'),
  );
}

async function route(focus = true) {
  const seq = ++routeSeq;
  if (cleanup) {
    cleanup();
    cleanup = null;
  }
  if (!ctx.me) {
    showLogin();
    return;
  }
  paintNav();
  const path = location.pathname;
  let view = null;
  let param;
  for (const [re, fn] of ROUTES) {
    const m = path.match(re);
    if (m) {
      view = fn;
      param = m[1];
      break;
    }
  }
  let done;
  if (view) {
    done = await view(main, ctx, param);
  } else {
    main.replaceChildren(h('h1', { tabindex: '-1' }, 'Not found'), h('p', {}, h('a', { href: '/app/' }, 'Go to the start')));
  }
  if (seq !== routeSeq) {
    if (done) done();
    return;
  }
  cleanup = done || null;
  if (focus) {
    const title = main.querySelector('h1');
    if (title) title.focus();
  }
}

export function navigate(path) {
  if (path !== location.pathname) history.pushState(null, '', path);
  route();
}

async function loadMe() {
  try {
    const me = await api('GET', '/me');
    localStorage.setItem(ME, JSON.stringify(me));
    return me;
  } catch (err) {
    if (err instanceof NetworkError) {
      try {
        return JSON.parse(localStorage.getItem(ME));
      } catch {
        return null;
      }
    }
    throw err;
  }
}

async function flush() {
  if (!navigator.onLine) return null;
  const report = await queue.flush();
  if (report.sent) announce(`${report.sent} saved check-in${report.sent === 1 ? '' : 's'} sent.`);
  if (report.dropped.length) announce(`Some saved check-ins were refused: ${report.dropped[0]}`, true);
  return report;
}

async function start(focus = false) {
  paintNav();
  if (ctx.me.role === 'organiser' || ctx.me.role === 'police') startStream();
  push.reconnect();
  flush().catch(() => {});
  await route(focus);
}

function showLogin(notice) {
  ctx.me = null;
  stopStream();
  if (cleanup) {
    cleanup();
    cleanup = null;
  }
  paintNav();
  const email = h('input', { type: 'email', name: 'email', autocomplete: 'username', required: true });
  const password = h('input', { type: 'password', name: 'password', autocomplete: 'current-password', required: true });
  const code = h('input', { type: 'text', name: 'totp_code', inputmode: 'numeric', autocomplete: 'one-time-code', maxlength: '6' });
  const codeField = field('Code from your authenticator app', code);
  codeField.hidden = true;
  const msg = messageArea();
  msg.id = 'login-msg';
  const submit = h('button', { type: 'submit', class: 'big primary', id: 'login' }, 'Sign in');
  const form = h('form', { class: 'stack', novalidate: true }, field('Email', email), field('Password', password), codeField, msg, submit);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    msg.show('');
    submit.disabled = true;
    try {
      await login(email.value.trim(), password.value, code.value.trim() || undefined);
      const previous = JSON.parse(localStorage.getItem(ME) || 'null');
      ctx.me = await loadMe();
      // A queue left by someone else on this phone is theirs, not ours.
      if (previous && previous.id !== ctx.me.id) {
        await queue.clear();
        localStorage.removeItem('doorstep.outing');
      }
      password.value = '';
      await start(true);
    } catch (err) {
      if (err instanceof ApiError && (err.kind === 'totp-required' || err.kind === 'totp-invalid')) {
        codeField.hidden = false;
        code.focus();
      }
      msg.show(err.message, 'error');
    } finally {
      submit.disabled = false;
    }
  });
  main.replaceChildren(
    h('h1', { tabindex: '-1' }, 'Sign in'),
    notice ? h('p', { class: 'msg msg-info', role: 'status' }, notice) : '',
    h('p', {}, 'Doorstep keeps you safe while canvassing: check in as you go, and if you stop, your organisers hear about it.'),
    form,
  );
}

async function signOut() {
  const n = await queue.count();
  if (n && !(await confirmDialog('Sign out?', `${n} check-in${n === 1 ? '' : 's'} on this phone have not been sent yet and will be deleted.`, 'Sign out anyway', true))) return;
  try {
    await push.disable();
  } catch {
    // The server forgets subscriptions of ended logins' users only when told; best effort.
  }
  try {
    await logout();
  } catch {
    clearTokens();
  }
  await queue.clear();
  localStorage.removeItem(ME);
  localStorage.removeItem('doorstep.outing');
  history.replaceState(null, '', '/app/');
  showLogin('You are signed out.');
}

function boot() {
  paintNet();
  push.registerWorker();
  if ('serviceWorker' in navigator) {
    navigator.serviceWorker.addEventListener('message', (e) => {
      const data = e.data || {};
      if (data.type === 'navigate' && typeof data.url === 'string' && data.url.startsWith('/app/')) navigate(data.url);
      if (data.type === 'push') window.dispatchEvent(new CustomEvent('doorstep-push', { detail: data.message }));
    });
  }
  window.addEventListener('popstate', () => route());
  window.addEventListener('online', () => {
    paintNet();
    flush().catch(() => {});
  });
  window.addEventListener('offline', paintNet);
  setInterval(async () => {
    if (ctx.me && navigator.onLine && (await queue.count())) flush().catch(() => {});
  }, 15_000);
  document.addEventListener('click', (e) => {
    const a = e.target.closest('a[href]');
    if (!a || a.target || e.defaultPrevented || e.button || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    const url = new URL(a.href, location.href);
    if (url.origin !== location.origin || !url.pathname.startsWith('/app/')) return;
    e.preventDefault();
    navigate(url.pathname);
  });
  events.addEventListener('signed-out', () => {
    if (ctx.me) showLogin('Your session has ended: please sign in again. Unsent check-ins stay on this phone.');
  });
  if (!hasSession()) {
    showLogin();
    return;
  }
  loadMe()
    .then((me) => {
      if (!me) {
        showLogin();
        return null;
      }
      ctx.me = me;
      return start();
    })
    .catch((err) => showLogin(err.message));
}

boot();
