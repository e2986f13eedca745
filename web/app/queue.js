// The offline queue: check-ins (and panics) made without a connection are kept in IndexedDB
// and sent when the network returns. Each item has a client_id (crypto.randomUUID()):
//   op "batch": a check-in made while offline; sent with POST /outings/{id}/checkins/batch,
//               which stores each client_id once, so resending a batch is harmless.
//   op "live":  a live check-in whose answer never came (it may have been stored); resent
//               byte for byte to POST /outings/{id}/checkins with the same Idempotency-Key,
//               so the server returns the first answer instead of storing it twice.
//   op "panic": a panic press that did not get through; resent to POST /outings/{id}/panic
//               (a panic on an outing with an open alert upgrades it, never duplicates it).

import { api, ApiError, NetworkError } from './api.js';

const DB = 'doorstep';
const STORE = 'queue';
const MAX_AGE_MS = 7 * 24 * 3600 * 1000 - 3600 * 1000; // the server refuses check-ins older than 7 days
const BATCH_MAX = 500;

export const changes = new EventTarget();
let dbPromise = null;
let flushing = null;

function open() {
  if (!dbPromise) {
    dbPromise = new Promise((resolve, reject) => {
      const req = indexedDB.open(DB, 1);
      req.onupgradeneeded = () => {
        req.result.createObjectStore(STORE, { keyPath: 'client_id' });
      };
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
  }
  return dbPromise;
}

async function tx(mode, fn) {
  const db = await open();
  return new Promise((resolve, reject) => {
    const t = db.transaction(STORE, mode);
    const result = fn(t.objectStore(STORE));
    t.oncomplete = () => resolve(result && 'result' in result ? result.result : undefined);
    t.onerror = () => reject(t.error);
    t.onabort = () => reject(t.error);
  });
}

// Other tabs of the app share the queue: tell them when it changes (one may send what
// another saved).
const channel = 'BroadcastChannel' in self ? new BroadcastChannel('doorstep-queue') : null;
if (channel) channel.onmessage = () => changes.dispatchEvent(new Event('change'));

function changed() {
  changes.dispatchEvent(new Event('change'));
  if (channel) channel.postMessage('change');
}

export async function add(item) {
  await tx('readwrite', (s) => s.put({ ...item, created: Date.now() }));
  changed();
}

export async function all() {
  const items = (await tx('readonly', (s) => s.getAll())) || [];
  return items.sort((a, b) => a.created - b.created);
}

export async function count(outingId) {
  const items = await all();
  return outingId ? items.filter((i) => i.outing_id === outingId).length : items.length;
}

async function remove(ids) {
  if (!ids.length) return;
  await tx('readwrite', (s) => ids.forEach((id) => s.delete(id)));
  changed();
}

/** Forgets everything queued (at logout: a queue holds positions). */
export async function clear() {
  await tx('readwrite', (s) => s.clear());
  changed();
}

/** Whether a failure means the items can never be stored (so keeping them is pointless). */
function hopeless(err) {
  return err instanceof ApiError && [403, 404, 409, 422].includes(err.status);
}

async function sendOne(item) {
  const path = `/outings/${item.outing_id}`;
  if (item.op === 'live') {
    await api('POST', `${path}/checkins`, item.body, {
      raw: true,
      headers: { 'Idempotency-Key': item.client_id },
    });
  } else if (item.op === 'panic') {
    await api('POST', `${path}/panic`, item.body);
  }
}

async function flushNow() {
  const report = { sent: 0, dropped: [], left: 0 };
  const items = await all();
  const tooOld = items.filter((i) => Date.now() - i.created > MAX_AGE_MS);
  await remove(tooOld.map((i) => i.client_id));
  const fresh = items.filter((i) => !tooOld.includes(i));
  // Panics first: they matter most.
  const ordered = [...fresh.filter((i) => i.op === 'panic'), ...fresh.filter((i) => i.op !== 'panic')];
  try {
    for (const item of ordered.filter((i) => i.op !== 'batch')) {
      try {
        await sendOne(item);
        report.sent += 1;
        await remove([item.client_id]);
      } catch (err) {
        if (!hopeless(err)) throw err;
        report.dropped.push(err.message);
        await remove([item.client_id]);
      }
    }
    const outings = [...new Set(ordered.filter((i) => i.op === 'batch').map((i) => i.outing_id))];
    for (const outing of outings) {
      const mine = ordered.filter((i) => i.op === 'batch' && i.outing_id === outing);
      for (let at = 0; at < mine.length; at += BATCH_MAX) {
        const chunk = mine.slice(at, at + BATCH_MAX);
        try {
          const res = await api('POST', `/outings/${outing}/checkins/batch`, {
            checkins: chunk.map((i) => i.body),
          });
          report.sent += res.stored + res.duplicates;
        } catch (err) {
          if (!hopeless(err)) throw err;
          report.dropped.push(err.message);
        }
        await remove(chunk.map((i) => i.client_id));
      }
    }
  } catch (err) {
    if (!(err instanceof NetworkError) && !(err instanceof ApiError)) throw err;
    report.error = err.message;
  }
  report.left = await count();
  return report;
}

/** Sends what is queued; one flush at a time (in this tab and, with Web Locks, across tabs). */
export function flush() {
  if (!flushing) {
    const run = () => flushNow();
    const p = navigator.locks ? navigator.locks.request('doorstep-flush', run) : run();
    flushing = p.finally(() => {
      flushing = null;
      changed(); // even when another tab had sent everything already
    });
  }
  return flushing;
}
