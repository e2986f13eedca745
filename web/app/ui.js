// Small DOM and formatting helpers. Text is always set as text (never parsed as HTML), so
// names and notes from the server cannot inject markup.

import { serverNow } from './api.js';

/** h('button', {class: 'big', onclick: fn}, 'Check in') */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** Announces `text` to screen readers (polite, or assertive for alarms). */
export function announce(text, assertive = false) {
  const el = document.getElementById(assertive ? 'live-urgent' : 'live');
  if (!el) return;
  el.textContent = '';
  setTimeout(() => {
    el.textContent = text;
  }, 50);
}

/** A message area under a form: role=alert for errors, role=status otherwise. */
export function messageArea() {
  const el = h('p', { class: 'msg', hidden: true });
  el.show = (text, kind = 'info') => {
    el.hidden = !text;
    el.className = `msg msg-${kind}`;
    el.setAttribute('role', kind === 'error' ? 'alert' : 'status');
    el.textContent = '';
    if (!text) return;
    const icon = kind === 'error' ? '⚠ ' : kind === 'ok' ? '✓ ' : 'ℹ ';
    el.append(h('span', { 'aria-hidden': 'true' }, icon), text);
  };
  return el;
}

export function field(label, input, hint) {
  const id = input.id || `f-${Math.random().toString(36).slice(2)}`;
  input.id = id;
  const hintEl = hint ? h('span', { class: 'hint', id: `${id}-hint` }, hint) : null;
  if (hintEl) input.setAttribute('aria-describedby', hintEl.id);
  return h('div', { class: 'field' }, h('label', { for: id }, label), hintEl, input);
}

/**
 * Shows `text` as the error of one control (an input, or a fieldset of radios), or clears it
 * with ''. The error sits in the control's field, is read out with it (aria-describedby) and
 * marks it invalid, so the person sees which answer to fix, not only that one is wrong.
 */
export function fieldError(control, text) {
  const id = `${control.id}-error`;
  const wrap = control.closest('.field') || control;
  let el = wrap.querySelector(`[id="${id}"]`);
  const described = (control.getAttribute('aria-describedby') || '').split(' ').filter((d) => d && d !== id);
  if (!text) {
    if (el) el.remove();
    control.removeAttribute('aria-invalid');
    if (described.length) control.setAttribute('aria-describedby', described.join(' '));
    else control.removeAttribute('aria-describedby');
    return;
  }
  if (!el) {
    el = h('p', { class: 'field-error', id, role: 'alert' });
    wrap.append(el);
  }
  el.replaceChildren(h('span', { 'aria-hidden': 'true' }, '⚠ '), text);
  // Gone as soon as the answer is changed: a stale error reads as a new one.
  const clear = () => fieldError(control, '');
  control.addEventListener('input', clear, { once: true });
  control.addEventListener('change', clear, { once: true });
  control.setAttribute('aria-invalid', 'true');
  control.setAttribute('aria-describedby', [...described, id].join(' '));
}

/** The `errors: [{field, message}]` of a 422 problem (empty for anything else). */
export function problemFields(err) {
  const errors = err && err.problem && Array.isArray(err.problem.errors) ? err.problem.errors : [];
  return errors.filter((e) => e && typeof e.field === 'string' && typeof e.message === 'string');
}

export function time(iso) {
  if (!iso) return '—';
  return new Date(iso).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

export function dateTime(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  const today = new Date().toDateString() === d.toDateString();
  return today ? time(iso) : d.toLocaleString([], { weekday: 'short', hour: '2-digit', minute: '2-digit' });
}

/** Date and time in full ("3 Dec 2026, 14:05"): for records that may be read months later. */
export function fullDateTime(iso) {
  if (!iso) return '—';
  return new Date(iso).toLocaleString([], { dateStyle: 'medium', timeStyle: 'short' });
}

/** "14:32", "1 h 05 min" */
export function duration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s >= 3600) return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')} min`;
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

export function ago(iso) {
  if (!iso) return '';
  const s = Math.max(0, Math.round((serverNow() - Date.parse(iso)) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min ago`;
  return `${Math.floor(s / 86400)} days ago`;
}

/** A relative time that keeps itself up to date (see tickAgo). */
export function agoEl(iso) {
  return h('span', { class: 'ago', dataset: { t: iso } }, ago(iso));
}

export function tickAgo(root = document) {
  root.querySelectorAll('.ago').forEach((el) => {
    el.textContent = ago(el.dataset.t);
  });
}

export function coords(lat, lon) {
  return `${lat.toFixed(5)}, ${lon.toFixed(5)}`;
}

export function accuracy(m) {
  return m === null || m === undefined ? 'accuracy unknown' : `±${Math.round(m)} m`;
}

/** Links that open a position in a maps app (geo: URI) and on openstreetmap.org. */
export function mapLinks(lat, lon, label = 'Position') {
  const la = lat.toFixed(6);
  const lo = lon.toFixed(6);
  return h(
    'p',
    { class: 'links' },
    h('a', { class: 'button secondary', href: `geo:${la},${lo}?q=${la},${lo}(${encodeURIComponent(label)})` }, 'Open in maps app'),
    h(
      'a',
      {
        class: 'button secondary',
        href: `https://www.openstreetmap.org/?mlat=${la}&mlon=${lo}#map=18/${la}/${lo}`,
        target: '_blank',
        rel: 'noopener noreferrer',
      },
      'OpenStreetMap ↗',
    ),
  );
}

const KINDS = {
  missed_checkin: 'Missed check-in',
  need_help: 'Needs help',
  panic: 'PANIC',
  duress: 'Duress',
  wrong_pins: 'Wrong PINs',
};

export function kindText(kind) {
  return KINDS[kind] || kind;
}

/** A status badge: icon + words, never colour alone. */
export function badge(kind, text) {
  const icons = { ok: '✓', warn: '⚠', danger: '‼', info: 'ℹ', muted: '•' };
  return h('span', { class: `badge badge-${kind}` }, h('span', { 'aria-hidden': 'true' }, `${icons[kind] || ''} `), text);
}

export function alertBadge(alert) {
  if (alert.status === 'resolved') return badge('ok', `Resolved${alert.resolution ? `: ${alert.resolution.replace(/_/g, ' ')}` : ''}`);
  if (alert.status === 'acknowledged') return badge('info', 'Acknowledged');
  return badge(alert.kind === 'missed_checkin' ? 'warn' : 'danger', `${kindText(alert.kind)} · open`);
}

/**
 * Makes `button` fire `onDone` only after being held for `ms` (pointer, or Space/Enter held
 * down), showing progress in `progress` (a <progress>). A tap does nothing but explain.
 */
export function holdToActivate(button, progress, ms, onDone, onShortPress) {
  let timer = null;
  let frame = null;
  let started = 0;
  const tick = () => {
    progress.value = Math.min(100, ((performance.now() - started) / ms) * 100);
    frame = requestAnimationFrame(tick);
  };
  const stop = () => {
    clearTimeout(timer);
    cancelAnimationFrame(frame);
    timer = null;
    progress.value = 0;
    button.classList.remove('holding');
  };
  const begin = () => {
    if (timer) return;
    started = performance.now();
    button.classList.add('holding');
    tick();
    timer = setTimeout(() => {
      stop();
      onDone();
    }, ms);
  };
  const release = () => {
    if (timer && onShortPress) onShortPress();
    stop();
  };
  button.addEventListener('pointerdown', (e) => {
    e.preventDefault();
    if (button.setPointerCapture) button.setPointerCapture(e.pointerId);
    begin();
  });
  button.addEventListener('pointerup', release);
  button.addEventListener('pointercancel', stop);
  button.addEventListener('keydown', (e) => {
    if (e.key !== ' ' && e.key !== 'Enter') return;
    e.preventDefault();
    if (!e.repeat) begin();
  });
  button.addEventListener('keyup', (e) => {
    if (e.key === ' ' || e.key === 'Enter') release();
  });
  button.addEventListener('blur', stop);
  button.addEventListener('contextmenu', (e) => e.preventDefault());
  button.addEventListener('click', (e) => e.preventDefault());
}

/** A native modal dialog asking to confirm; resolves to true or false. */
export function confirmDialog(title, text, yes, danger = false) {
  return new Promise((resolve) => {
    const dlg = h(
      'dialog',
      { class: 'dialog', 'aria-labelledby': 'dlg-title' },
      h('h2', { id: 'dlg-title' }, title),
      h('p', {}, text),
      h(
        'div',
        { class: 'row' },
        h('button', { type: 'button', class: danger ? 'danger' : 'primary', value: 'yes', onclick: () => dlg.close('yes') }, yes),
        h('button', { type: 'button', class: 'secondary', onclick: () => dlg.close('no') }, 'Cancel'),
      ),
    );
    dlg.addEventListener('close', () => {
      dlg.remove();
      resolve(dlg.returnValue === 'yes');
    });
    document.body.append(dlg);
    dlg.showModal();
  });
}
