// Organisers' and police's screens: the live board of overdue outings (SSE), alert detail
// with acknowledge/resolve, and (police) planned outings. Organisers also keep the
// do-not-knock register (cautions.js) at the foot of the board.

import { api, freshAccessToken, tokenExpiresAt } from './api.js';
import { cautionsBoard } from './cautions.js';
import { handoffCard } from './handoff.js';
import {
  h, announce, messageArea, field, time, dateTime, duration, agoEl, tickAgo, coords, accuracy,
  mapLinks, badge, alertBadge, kindText,
} from './ui.js';

// ---- The event stream: one EventSource per tab, shared by the screens. ----

// Alerts their subject's phone never shows: whoever holds it may be watching.
const SILENT = new Map([
  ['duress', 'Do not call them. They used their duress PIN: someone may be with them, watching their phone, which shows nothing of this alert. Send help to their last position.'],
  ['wrong_pins', 'Do not call them. Five wrong PINs in a row were typed on their phone: someone else may have it. Their phone shows nothing of this alert.'],
]);

const EVENTS = ['alert.opened', 'alert.escalated', 'alert.acknowledged', 'alert.resolved'];
export const stream = new EventTarget();
let source = null;
let running = false;
let retry = 0;
let retryTimer = null;
let renewTimer = null;
let streamState = 'off';

function setState(s) {
  streamState = s;
  stream.dispatchEvent(new CustomEvent('state', { detail: s }));
}

export function streamStatus() {
  return streamState;
}

async function connect() {
  retryTimer = null;
  if (!running) return;
  let token;
  try {
    token = await freshAccessToken();
  } catch {
    token = null;
  }
  if (!running) return;
  if (!token) {
    schedule();
    return;
  }
  // The server ends a stream when the access token it was opened with expires (and when the
  // login ends). A minute before expiry a new stream opens with a fresh token; the old one is
  // closed only once the new one is open, so the board never shows a gap.
  const previous = source;
  const es = new EventSource(`/api/v1/watch/stream?access_token=${encodeURIComponent(token)}`);
  source = es;
  clearTimeout(renewTimer);
  const renewIn = Math.max(5_000, tokenExpiresAt(token) - Date.now() - 60_000);
  renewTimer = setTimeout(() => {
    if (running && source === es) connect();
  }, renewIn);
  es.addEventListener('open', () => {
    if (previous && previous !== es) previous.close();
    retry = 0;
    setState('live');
    // Whatever happened while disconnected: screens reload.
    stream.dispatchEvent(new CustomEvent('event', { detail: { type: 'open', alert: null } }));
  });
  for (const type of EVENTS) {
    es.addEventListener(type, (e) => {
      let alert;
      try {
        alert = JSON.parse(e.data);
      } catch {
        return;
      }
      stream.dispatchEvent(new CustomEvent('event', { detail: { type, alert } }));
    });
  }
  es.addEventListener('error', () => {
    if (source !== es) return;
    setState('reconnecting');
    // CLOSED: the server refused (an expired token, say); reconnect ourselves with a fresh one.
    if (es.readyState === EventSource.CLOSED) {
      es.close();
      source = null;
      schedule();
    }
  });
}

function schedule() {
  if (!running || retryTimer) return;
  const delay = Math.min(30_000, 1000 * 2 ** retry);
  retry += 1;
  retryTimer = setTimeout(connect, delay);
}

export function startStream() {
  if (running) return;
  running = true;
  retry = 0;
  setState('connecting');
  connect();
}

export function stopStream() {
  running = false;
  clearTimeout(retryTimer);
  clearTimeout(renewTimer);
  retryTimer = null;
  if (source) source.close();
  source = null;
  setState('off');
}

function streamLine() {
  const el = h('p', { class: 'stream-state', id: 'stream-state', role: 'status' });
  const paint = () => {
    const s = streamStatus();
    el.replaceChildren(
      s === 'live' ? badge('ok', 'Live: new alerts appear here at once') : badge('warn', s === 'off' ? 'Not connected' : 'Reconnecting… (the list may be out of date)'),
    );
  };
  const onState = () => paint();
  stream.addEventListener('state', onState);
  paint();
  return [el, () => stream.removeEventListener('state', onState)];
}

// ---- Screens ----

function lastPosition(item) {
  const a = item.alert;
  if (a && a.last_location) return a.last_location;
  const c = item.outing.last_checkin;
  if (c && c.lat !== null && c.lon !== null) return { lat: c.lat, lon: c.lon, accuracy_m: c.accuracy_m, recorded_at: c.recorded_at };
  return null;
}

function positionText(loc) {
  if (!loc) return h('p', {}, 'No known position.');
  return h('p', {}, 'Last seen ', h('strong', {}, coords(loc.lat, loc.lon)), ` ${accuracy(loc.accuracy_m)}, `, agoEl(loc.recorded_at));
}

export async function boardView(main, ctx) {
  const title = h('h1', { tabindex: '-1' }, 'Overdue board');
  const [line, unline] = streamLine();
  // Not a live region (it is redrawn every reload): new alerts are announced on their own.
  const list = h('ul', { class: 'board', id: 'board' });
  const updated = h('p', { class: 'hint', id: 'board-updated' });
  const msg = messageArea();
  main.replaceChildren(title, line, msg, list, updated);
  // Police mark cautions too, but the app does not know their organisations' ids (GET /me has
  // none for them): they use the API.
  let uncautions = () => {};
  if (ctx.me.role === 'organiser' && ctx.me.org_id) {
    const [cautions, stop] = cautionsBoard(ctx);
    main.append(cautions);
    uncautions = stop;
  }
  let loadedAt = Date.now();
  let items = [];
  let pending = null;

  const render = () => {
    const elapsed = Math.round((Date.now() - loadedAt) / 1000);
    list.replaceChildren();
    if (!items.length) {
      list.append(h('li', { class: 'empty' }, badge('ok', 'Nobody is overdue.')));
    }
    for (const item of items) {
      const a = item.alert;
      const o = item.outing;
      const overdue = h('span', { class: 'overdue-for', dataset: { base: String(item.overdue_s) } }, duration(item.overdue_s + elapsed));
      const li = h(
        'li',
        { class: `card board-item${a && a.status === 'open' ? ' is-open' : ''}`, dataset: { outing: o.id, alert: a ? a.id : '' } },
        h('h2', {}, o.canvasser.display_name),
        h(
          'p',
          { class: 'badges' },
          a ? alertBadge(a) : '',
          a ? badge('muted', `level ${a.level}`) : '',
          o.status === 'overdue' ? badge('danger', 'overdue') : '',
        ),
        h('p', {}, o.status === 'overdue' ? 'Overdue for ' : 'Alert for ', overdue),
        positionText(lastPosition(item)),
        a && a.acknowledged_by ? h('p', {}, `Acknowledged by ${a.acknowledged_by.display_name} at ${time(a.acknowledged_at)}`) : '',
        a ? h('a', { class: 'button primary', href: `/app/alerts/${a.id}` }, 'Open alert') : '',
        o.canvasser.phone && !(a && SILENT.has(a.kind)) ? h('a', { class: 'button secondary', href: `tel:${o.canvasser.phone}` }, `Call ${o.canvasser.phone}`) : '',
        a && SILENT.has(a.kind) ? '' : welfareButton(o, msg),
      );
      list.append(li);
    }
    updated.textContent = `Updated ${new Date().toLocaleTimeString()}`;
  };

  const load = async () => {
    try {
      const board = await api('GET', '/watch/overdue');
      items = board.items;
      loadedAt = Date.now();
      msg.show('');
      render();
    } catch (err) {
      msg.show(err.message, 'error');
    }
  };
  // Several events in a burst: one reload.
  const reload = () => {
    if (pending) return;
    pending = setTimeout(() => {
      pending = null;
      load();
    }, 50);
  };
  const onEvent = (e) => {
    const { type, alert } = e.detail;
    if (alert && (type === 'alert.opened' || type === 'alert.escalated')) {
      announce(`${type === 'alert.opened' ? 'New alert' : 'Escalated'}: ${kindText(alert.kind)}, ${alert.canvasser.display_name}`, true);
    }
    reload();
  };
  stream.addEventListener('event', onEvent);
  const onPush = () => reload();
  window.addEventListener('doorstep-push', onPush);
  const ticker = setInterval(() => {
    const elapsed = Math.round((Date.now() - loadedAt) / 1000);
    list.querySelectorAll('.overdue-for').forEach((el) => {
      el.textContent = duration(Number(el.dataset.base) + elapsed);
    });
    tickAgo(list);
  }, 1000);
  const poller = setInterval(load, 30_000);
  await load();
  return () => {
    unline();
    uncautions();
    stream.removeEventListener('event', onEvent);
    window.removeEventListener('doorstep-push', onPush);
    clearInterval(ticker);
    clearInterval(poller);
    clearTimeout(pending);
  };
}

/** "Are you OK?": pushes the canvasser a question they answer from the notification. Not for a
 * duress or wrong-PIN alert: whoever holds the phone must not be prompted. */
function welfareButton(outing, msg) {
  const button = h('button', { type: 'button', class: 'secondary', 'data-outing': outing.id }, 'Ask "Are you OK?"');
  button.addEventListener('click', async () => {
    button.disabled = true;
    try {
      const res = await api('POST', `/outings/${outing.id}/welfare-check`, {});
      const text = `Asked ${outing.canvasser.display_name}. No answer by ${time(res.due_at)} (plus grace) raises a missed check-in alert.`;
      msg.show(text, 'ok');
      announce(text);
    } catch (err) {
      msg.show(err.message, 'error');
    } finally {
      button.disabled = false;
    }
  });
  return button;
}

const CHANNELS = { webpush: 'push', email: 'email', webhook: 'webhook', sms: 'SMS', voice: 'phone call' };
const DELIVERY = {
  pending: ['info', 'pending'],
  sent: ['ok', 'sent'],
  failed: ['danger', 'failed'],
  no_subscription: ['warn', 'no device registered'],
};

function deliveryList(alert) {
  if (!alert.notifications.length) return h('p', {}, 'Nobody has been notified yet.');
  return h(
    'ul',
    { class: 'deliveries', id: 'deliveries' },
    alert.notifications.map((n) => {
      const [kind, words] = DELIVERY[n.status] || ['muted', n.status];
      return h(
        'li',
        {},
        h('strong', {}, n.recipient ? `${n.recipient.display_name} (${n.recipient.role})` : 'Organisation webhook'),
        h('br'),
        `Level ${n.level} · ${CHANNELS[n.channel] || n.channel} · `,
        badge(kind, words),
        ` · ${n.attempts} attempt${n.attempts === 1 ? '' : 's'}`,
        n.sent_at ? ` · ${time(n.sent_at)}` : '',
        n.last_error ? h('span', { class: 'hint' }, ` (${n.last_error})`) : '',
      );
    }),
  );
}

export async function alertView(main, ctx, id) {
  const title = h('h1', { tabindex: '-1' }, 'Alert');
  const summary = h('section', { class: 'card', id: 'alert-summary' });
  const where = h('section', { class: 'card', id: 'alert-position' });
  const actions = h('section', { class: 'card', id: 'alert-actions' });
  const record = h('section', { class: 'card', id: 'alert-deliveries' });
  const msg = messageArea();
  msg.id = 'alert-msg';
  main.replaceChildren(title, msg, summary, where, actions, record);
  let alert = null;
  let actionsFor = null;
  const canAct = ctx.me.role === 'organiser' || ctx.me.role === 'police';
  // Organisers and police hand the alert to the police (handoff.js).
  const [handoff, unhandoff] = canAct ? handoffCard(id) : [null, () => {}];
  if (handoff) actions.after(handoff);

  const act = async (path, body, done) => {
    msg.show('');
    try {
      alert = await api('POST', `/alerts/${id}/${path}`, body);
      render();
      msg.show(done, 'ok');
      announce(done);
    } catch (err) {
      msg.show(err.message, 'error');
      load();
    }
  };

  const renderActions = () => {
    actionsFor = alert.status;
    actions.replaceChildren(h('h2', {}, 'Take charge'));
    if (!canAct) {
      actions.append(
        h('p', {}, alert.status === 'resolved' ? 'This alert is over.' : alert.kind === 'missed_checkin' ? 'Your organisers have this alert. A check-in clears it if you are safe.' : 'Your organisers have this alert. A check-in does not clear it: they resolve it, or you cancel a false alarm with your PIN (All clear) on your outing screen.'),
        h('a', { class: 'button primary', href: '/app/outing' }, 'Go to your outing'),
      );
      return;
    }
    if (alert.status === 'resolved') {
      actions.append(h('p', {}, `Resolved at ${dateTime(alert.resolved_at)}: ${(alert.resolution || '').replace(/_/g, ' ')}.`));
      return;
    }
    if (alert.status === 'open') {
      const note = h('textarea', { rows: '2', maxlength: '1000', name: 'ack_note' });
      const hint = SILENT.has(alert.kind)
        ? 'For example: “police asked to attend”. Do not call or message them.'
        : 'For example: “calling them now”.';
      const form = h(
        'form',
        { class: 'stack', novalidate: true },
        field('Acknowledgement note (optional)', note, hint),
        h('button', { type: 'submit', class: 'primary', id: 'ack' }, 'Acknowledge: I am handling this'),
      );
      form.addEventListener('submit', (e) => {
        e.preventDefault();
        const body = note.value.trim() ? { note: note.value.trim() } : {};
        act('ack', body, 'Acknowledged. Repeats and escalation are paused.');
      });
      actions.append(form);
    }
    const outcomes = [
      ['safe', 'Safe: they are fine'],
      ['false_alarm', 'False alarm'],
      ['incident', 'Incident: something happened'],
    ];
    const radios = outcomes.map(([value, label], i) =>
      h('div', { class: 'check' }, h('input', { type: 'radio', name: 'outcome', value, id: `outcome-${value}`, checked: i === 0 }), h('label', { for: `outcome-${value}` }, label)),
    );
    const note = h('textarea', { rows: '2', maxlength: '1000', name: 'resolve_note' });
    const form = h(
      'form',
      { class: 'stack', novalidate: true },
      h('fieldset', {}, h('legend', {}, 'Outcome'), radios),
      field('Resolution note (optional)', note),
      h('button', { type: 'submit', class: 'ok', id: 'resolve' }, 'Resolve alert'),
    );
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      const outcome = form.querySelector('input[name="outcome"]:checked').value;
      const body = { outcome };
      if (note.value.trim()) body.note = note.value.trim();
      act('resolve', body, 'Resolved. Everyone notified gets an all-clear.');
    });
    actions.append(form);
  };

  const render = () => {
    title.textContent = `${kindText(alert.kind)}: ${alert.canvasser.display_name}`;
    summary.replaceChildren(
      h('p', { class: 'badges', id: 'alert-status' }, alertBadge(alert), badge('muted', `level ${alert.level}`)),
      SILENT.has(alert.kind) ? h('p', { class: 'warning', id: 'alert-silent', role: 'note' }, SILENT.get(alert.kind)) : '',
      h(
        'dl',
        { class: 'facts' },
        h('dt', {}, 'Opened'), h('dd', {}, dateTime(alert.opened_at), ' (', agoEl(alert.opened_at), ')'),
        alert.escalated_at ? [h('dt', {}, 'Escalated'), h('dd', {}, dateTime(alert.escalated_at))] : '',
        alert.acknowledged_at ? [h('dt', {}, 'Acknowledged'), h('dd', {}, `${dateTime(alert.acknowledged_at)}${alert.acknowledged_by ? ` by ${alert.acknowledged_by.display_name}` : ''}`)] : '',
        alert.resolved_at ? [h('dt', {}, 'Resolved'), h('dd', {}, `${dateTime(alert.resolved_at)} (${(alert.resolution || '').replace(/_/g, ' ')})`)] : '',
        alert.note ? [h('dt', {}, 'Note'), h('dd', {}, alert.note)] : '',
        alert.reason ? [h('dt', {}, 'Why'), h('dd', { id: 'alert-reason' }, alert.reason)] : '',
        alert.canvasser.phone && !SILENT.has(alert.kind)
          ? [h('dt', {}, 'Phone'), h('dd', {}, h('a', { href: `tel:${alert.canvasser.phone}`, id: 'alert-phone' }, alert.canvasser.phone))]
          : '',
      ),
    );
    const loc = alert.last_location;
    where.replaceChildren(h('h2', {}, 'Last known position'));
    if (loc) {
      where.append(
        h(
          'dl',
          { class: 'facts' },
          h('dt', {}, 'Coordinates'), h('dd', { id: 'alert-coords' }, coords(loc.lat, loc.lon)),
          h('dt', {}, 'Accuracy'), h('dd', {}, accuracy(loc.accuracy_m)),
          h('dt', {}, 'Recorded'), h('dd', {}, dateTime(loc.recorded_at), ' (', agoEl(loc.recorded_at), ')'),
        ),
        mapLinks(loc.lat, loc.lon, alert.canvasser.display_name),
      );
    } else {
      where.append(h('p', {}, 'No known position.'));
    }
    if (actionsFor !== alert.status) renderActions();
    record.replaceChildren(h('h2', {}, 'Who was notified'), deliveryList(alert));
  };

  const load = async () => {
    try {
      alert = await api('GET', `/alerts/${id}`);
      render();
    } catch (err) {
      msg.show(err.message, 'error');
    }
  };
  const onEvent = (e) => {
    const { type, alert: a } = e.detail;
    if (type === 'open') load();
    else if (a && a.id === id) {
      alert = a;
      render();
    }
  };
  stream.addEventListener('event', onEvent);
  const onPush = () => load();
  window.addEventListener('doorstep-push', onPush);
  const ticker = setInterval(() => tickAgo(main), 5000);
  // The delivery record fills in as the worker sends: refresh it now and then.
  const poller = setInterval(load, 15_000);
  await load();
  return () => {
    unhandoff();
    stream.removeEventListener('event', onEvent);
    window.removeEventListener('doorstep-push', onPush);
    clearInterval(ticker);
    clearInterval(poller);
  };
}

function areaText(area) {
  if (!area) return 'No area given.';
  if (area.type === 'Circle') return `Within ${area.radius_m} m of ${coords(area.center[1], area.center[0])}`;
  const rings = area.type === 'Polygon' ? [area.coordinates[0]] : area.coordinates.map((p) => p[0]);
  return `${area.type === 'Polygon' ? 'An area' : `${rings.length} areas`} of ${rings.reduce((n, r) => n + r.length - 1, 0)} points`;
}

function areaCentre(area) {
  if (!area) return null;
  if (area.type === 'Circle') return { lat: area.center[1], lon: area.center[0] };
  const ring = area.type === 'Polygon' ? area.coordinates[0] : area.coordinates[0][0];
  const pts = ring.slice(0, -1);
  return { lon: pts.reduce((s, p) => s + p[0], 0) / pts.length, lat: pts.reduce((s, p) => s + p[1], 0) / pts.length };
}

export async function plannedView(main) {
  const title = h('h1', { tabindex: '-1' }, 'Planned outings');
  const intro = h('p', { class: 'hint' }, 'Areas and times of outings that have not ended. Live positions appear on the board only during an alert at level 2, a panic or a duress.');
  const list = h('ul', { class: 'board', id: 'planned' });
  const msg = messageArea();
  main.replaceChildren(title, intro, msg, list);
  const load = async () => {
    try {
      const { items } = await api('GET', '/watch/planned');
      list.replaceChildren();
      if (!items.length) list.append(h('li', { class: 'empty' }, 'No outings planned or under way.'));
      for (const p of items) {
        const centre = areaCentre(p.area);
        list.append(
          h(
            'li',
            { class: 'card' },
            h('h2', {}, p.canvasser.display_name),
            h('p', { class: 'badges' }, p.status === 'overdue' ? badge('danger', 'overdue') : badge('ok', p.status)),
            h('dl', { class: 'facts' },
              h('dt', {}, 'Started'), h('dd', {}, dateTime(p.started_at)),
              h('dt', {}, 'Planned end'), h('dd', {}, p.planned_end_at ? dateTime(p.planned_end_at) : 'not given'),
              h('dt', {}, 'Area'), h('dd', {}, areaText(p.area))),
            centre ? mapLinks(centre.lat, centre.lon, `Area of ${p.canvasser.display_name}`) : '',
          ),
        );
      }
    } catch (err) {
      msg.show(err.message, 'error');
    }
  };
  const poller = setInterval(load, 60_000);
  await load();
  return () => clearInterval(poller);
}
