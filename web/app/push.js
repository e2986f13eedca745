// Web Push: the service worker, the browser's push subscription, and its registration with
// the server (POST /push/subscriptions) under the VAPID key the server publishes.

import { api } from './api.js';

export const supported = 'serviceWorker' in navigator && 'PushManager' in window && 'Notification' in window;

export function registerWorker() {
  if (!('serviceWorker' in navigator)) return Promise.resolve(null);
  return navigator.serviceWorker.register('/app/sw.js', { scope: '/app/' }).catch(() => null);
}

function keyBytes(b64url) {
  const b64 = b64url.replace(/-/g, '+').replace(/_/g, '/');
  const bin = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

function sameKey(buffer, bytes) {
  if (!buffer) return false;
  const a = new Uint8Array(buffer);
  return a.length === bytes.length && a.every((v, i) => v === bytes[i]);
}

function withTimeout(promise, ms, message) {
  return Promise.race([
    promise,
    new Promise((_, reject) => setTimeout(() => reject(new Error(message)), ms)),
  ]);
}

async function registration() {
  return withTimeout(navigator.serviceWorker.ready, 10_000, 'The app’s service worker is not running.');
}

/** 'unsupported' | 'blocked' | 'on' | 'off' for this browser. */
export async function state() {
  if (!supported) return 'unsupported';
  if (Notification.permission === 'denied') return 'blocked';
  try {
    const sub = await (await registration()).pushManager.getSubscription();
    return sub && Notification.permission === 'granted' ? 'on' : 'off';
  } catch {
    return 'off';
  }
}

/** Asks for permission, subscribes with the server's VAPID key and registers the subscription. */
export async function enable() {
  if (!supported) throw new Error('This browser cannot receive push notifications.');
  const permission = await Notification.requestPermission();
  if (permission !== 'granted') throw new Error('Notifications are not allowed for this site: allow them in the browser settings.');
  const reg = await registration();
  const { public_key: publicKey } = await api('GET', '/push/vapid-public-key', null, { auth: false });
  const key = keyBytes(publicKey);
  let sub = await reg.pushManager.getSubscription();
  if (sub && !sameKey(sub.options.applicationServerKey, key)) {
    await sub.unsubscribe();
    sub = null;
  }
  if (!sub) {
    sub = await withTimeout(
      reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key }),
      20_000,
      'The browser’s push service did not answer.',
    );
  }
  try {
    await api('POST', '/push/subscriptions', sub.toJSON());
  } catch (err) {
    // 409: this browser's subscription is another account's (a shared phone whose last user
    // did not sign out). Make a new one for this account; the old one stops working.
    if (err.status !== 409) throw err;
    await sub.unsubscribe();
    sub = await withTimeout(
      reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key }),
      20_000,
      'The browser’s push service did not answer.',
    );
    await api('POST', '/push/subscriptions', sub.toJSON());
  }
}

/** Re-registers an existing subscription (after a login on a phone that already allowed push). */
export async function reconnect() {
  if (!supported || Notification.permission !== 'granted') return;
  try {
    const sub = await (await registration()).pushManager.getSubscription();
    if (sub) await api('POST', '/push/subscriptions', sub.toJSON());
  } catch {
    // Not fatal: the settings screen shows the state and offers to turn push on.
  }
}

/** Removes this browser's subscription from the server and the browser (settings, logout). */
export async function disable() {
  if (!supported) return;
  const reg = await registration().catch(() => null);
  const sub = reg && (await reg.pushManager.getSubscription());
  if (!sub) return;
  try {
    const { items } = await api('GET', '/push/subscriptions');
    const mine = items.find((s) => s.endpoint === sub.endpoint);
    if (mine) await api('DELETE', `/push/subscriptions/${mine.id}`);
  } finally {
    await sub.unsubscribe();
  }
}
