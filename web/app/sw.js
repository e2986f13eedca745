// Doorstep service worker: keeps the app shell for offline use and shows push messages.
// It never sees login tokens and never caches API answers. A welfare check ("are you OK?")
// carries a one-question reply token: its notification's buttons answer with it, without the app.

const VERSION = 'doorstep-shell-v4';
const SHELL = [
  '/app/',
  '/app/app.css',
  '/app/app.js',
  '/app/api.js',
  '/app/ui.js',
  '/app/geo.js',
  '/app/queue.js',
  '/app/push.js',
  '/app/canvasser.js',
  '/app/watch.js',
  '/app/incidents.js',
  '/app/cautions.js',
  '/app/handoff.js',
  '/app/manifest.webmanifest',
  '/app/icon.svg',
  '/app/icon-192.png',
  '/app/badge-96.png',
];
// Messages that must not be missed: they stay until dismissed, and vibrate hard. A caution is
// one: it arrives as the canvasser checks in at a door they must not knock at.
const URGENT = new Set(['missed_checkin', 'escalation', 'panic', 'duress', 'wrong_pins', 'need_help', 'caution', 'welfare_check']);

self.addEventListener('install', (event) => {
  event.waitUntil(
    caches
      .open(VERSION)
      .then((cache) => cache.addAll(SHELL))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((keys) => Promise.all(keys.filter((k) => k !== VERSION).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

function timeout(ms) {
  return new Promise((_, reject) => setTimeout(() => reject(new Error('timeout')), ms));
}

// Network first (the newest app when online), the cached shell when the network fails or is
// slow. Every app route is the same index.html, cached under /app/.
async function networkFirst(request, key) {
  const cache = await caches.open(VERSION);
  try {
    const response = await Promise.race([fetch(request), timeout(4000)]);
    if (response.ok) await cache.put(key, response.clone());
    return response;
  } catch (err) {
    const hit = await cache.match(key);
    if (hit) return hit;
    throw err;
  }
}

self.addEventListener('fetch', (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== 'GET' || url.origin !== self.location.origin) return;
  if (!url.pathname.startsWith('/app/')) return; // the API is never cached
  const key = event.request.mode === 'navigate' ? '/app/' : url.pathname;
  event.respondWith(networkFirst(event.request, key));
});

function options(msg) {
  const urgent = URGENT.has(msg.type);
  // One notification per alert, incident or caution: a second report must not replace the first.
  const tag = msg.alert_id
    || (msg.incident_id ? `incident-${msg.incident_id}` : null)
    || (msg.caution_id ? `caution-${msg.caution_id}` : null)
    || (msg.type === 'checkin_reminder' ? `reminder-${msg.outing_id}` : null)
    || (msg.type === 'welfare_check' ? `welfare-${msg.outing_id}` : msg.type || 'doorstep');
  const welfare = msg.type === 'welfare_check' && msg.reply_token && msg.outing_id;
  return {
    body: msg.body || '',
    tag, // a newer message about the same alert replaces the older one
    renotify: true,
    requireInteraction: urgent,
    vibrate: urgent ? [600, 200, 600, 200, 600, 200, 600] : [200],
    silent: false,
    icon: '/app/icon-192.png',
    badge: '/app/badge-96.png',
    timestamp: msg.sent_at ? Date.parse(msg.sent_at) || Date.now() : Date.now(),
    data: {
      url: safeUrl(msg.url),
      type: msg.type || null,
      alert_id: msg.alert_id || null,
      outing_id: welfare ? msg.outing_id : null,
      reply_token: welfare ? msg.reply_token : null,
    },
    // "Are you OK?" is answered from the notification itself.
    actions: welfare
      ? [
          { action: 'ok', title: "I'm OK" },
          { action: 'need_help', title: 'I need help' },
        ]
      : [],
  };
}

// Only ever open the app's own pages from a notification.
function safeUrl(raw) {
  try {
    const url = new URL(raw || '/app/', self.location.origin);
    if (url.origin === self.location.origin && url.pathname.startsWith('/app/')) return url.pathname;
  } catch {
    // fall through
  }
  return '/app/';
}

self.addEventListener('push', (event) => {
  let msg;
  try {
    msg = event.data ? event.data.json() : {};
  } catch {
    msg = { title: 'Doorstep', body: event.data ? event.data.text() : '' };
  }
  const title = msg.title || 'Doorstep';
  event.waitUntil(
    Promise.all([
      self.registration.showNotification(title, options(msg)),
      // Open pages refresh what they show (the board, the outing, an alert).
      self.clients
        .matchAll({ type: 'window' })
        .then((clients) => clients.forEach((c) => c.postMessage({ type: 'push', message: msg }))),
    ]),
  );
});

/** Answers a welfare check with the push's reply token (no login). True when the server took
 * it; on failure the app opens instead, where the canvasser can check in. */
async function answerWelfare(data, kind) {
  if (!data || !data.reply_token || !/^[0-9a-f-]{36}$/.test(data.outing_id || '')) return false;
  try {
    const response = await fetch(`/api/v1/outings/${data.outing_id}/welfare-reply`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token: data.reply_token, kind }),
    });
    return response.ok;
  } catch {
    return false;
  }
}

function notifyPages(message) {
  return self.clients
    .matchAll({ type: 'window' })
    .then((clients) => clients.forEach((c) => c.postMessage(message)));
}

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  const data = event.notification.data || {};
  if (data.type === 'welfare_check' && (event.action === 'ok' || event.action === 'need_help')) {
    event.waitUntil(
      answerWelfare(data, event.action).then(async (answered) => {
        if (answered) {
          await notifyPages({ type: 'welfare-answered', kind: event.action, outing_id: data.outing_id });
          if (event.action === 'ok') {
            return self.registration.showNotification('Thanks: answered "I\'m OK"', {
              body: 'Your organiser has been told. Your next check-in is due as before.',
              tag: `welfare-${data.outing_id}`,
              icon: '/app/icon-192.png',
              badge: '/app/badge-96.png',
            });
          }
        }
        // "I need help", or no answer got through: open the app.
        const clients = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
        const open = clients.find((c) => new URL(c.url).pathname.startsWith('/app/'));
        if (open) return open.focus();
        return self.clients.openWindow('/app/');
      }),
    );
    return;
  }
  const target = safeUrl(data.url);
  event.waitUntil(
    self.clients.matchAll({ type: 'window', includeUncontrolled: true }).then((clients) => {
      const open = clients.find((c) => new URL(c.url).pathname.startsWith('/app/'));
      if (open) {
        // The page routes itself (no reload, so a running check-in countdown keeps going).
        open.postMessage({ type: 'navigate', url: target });
        return open.focus();
      }
      return self.clients.openWindow(target);
    }),
  );
});
