// The canvasser's screens: start an outing, check in, need help, panic, end; and settings.
// Cautions (cautions.js) are shown before and during an outing, and after a check-in inside one.

import { api, ApiError, NetworkError, serverNow } from './api.js';
import * as geo from './geo.js';
import * as queue from './queue.js';
import * as push from './push.js';
import { nearbyCautions, cautionBanner } from './cautions.js';
import {
  h, announce, messageArea, field, fieldError, problemFields, time, dateTime, duration, agoEl,
  tickAgo, coords, accuracy, badge, kindText, holdToActivate, confirmDialog,
} from './ui.js';

const OUTING = 'doorstep.outing';
const INTERVALS_MIN = [10, 15, 20, 30, 45, 60, 90, 120];
const RADII_M = [100, 250, 500, 1000, 2000, 5000];

// What is kept about the current outing between visits: ids and times, never a position.
function remember(o) {
  const { id, status, started_at, next_checkin_due_at, checkin_interval_s, planned_end_at } = o;
  localStorage.setItem(OUTING, JSON.stringify({ id, status, started_at, next_checkin_due_at, checkin_interval_s, planned_end_at }));
}

function forget() {
  localStorage.removeItem(OUTING);
}

function stored() {
  try {
    return JSON.parse(localStorage.getItem(OUTING));
  } catch {
    return null;
  }
}

async function currentOuting(me) {
  const kept = stored();
  if (kept) {
    try {
      const o = await api('GET', `/outings/${kept.id}`);
      if (o.status !== 'ended' && o.canvasser.id === me.id) return o;
      forget();
    } catch (err) {
      if (err instanceof NetworkError) return { ...kept, offline: true };
      if (err.status !== 404) throw err;
      forget();
    }
  }
  // Organisers list their whole organisation (an audited read of everyone's position), so
  // they look only when the server says they have an outing (see startOuting).
  if (me.role !== 'canvasser') return null;
  return findOpen(me);
}

async function findOpen(me) {
  for (const status of ['overdue', 'active']) {
    const page = await api('GET', `/outings?status=${status}&limit=100`);
    const mine = page.items.find((o) => o.canvasser.id === me.id);
    if (mine) {
      remember(mine);
      return mine;
    }
  }
  return null;
}

async function battery() {
  try {
    if (!navigator.getBattery) return null;
    const b = await navigator.getBattery();
    return Math.round(b.level * 100);
  } catch {
    return null;
  }
}

function locationLine(el) {
  return geo.watch((fix, error) => {
    el.textContent = '';
    if (fix) {
      el.append(
        h('span', { 'aria-hidden': 'true' }, '◉ '),
        `${coords(fix.lat, fix.lon)} `,
        h('strong', {}, accuracy(fix.accuracy_m)),
        ' · ',
        agoEl(new Date(fix.at).toISOString()),
      );
      if (fix.accuracy_m > 100) el.append(h('span', { class: 'warn-text' }, ' — poor accuracy'));
    } else {
      el.append(h('span', { 'aria-hidden': 'true' }, '◉ '), error || 'Finding your location…');
    }
    if (error && fix) el.append(h('span', { class: 'warn-text' }, ` (${error})`));
  });
}

export async function outingView(main, ctx) {
  const cleanups = [];
  const cleanup = () => cleanups.splice(0).forEach((f) => f());
  const title = h('h1', { tabindex: '-1' }, 'Outing');
  const body = h('div');
  main.replaceChildren(title, body);
  let outing;
  try {
    outing = await currentOuting(ctx.me);
  } catch (err) {
    body.replaceChildren(h('p', { class: 'msg msg-error', role: 'alert' }, err.message));
    return cleanup;
  }
  const show = (o) => {
    cleanup();
    if (o) {
      title.textContent = 'Your outing';
      activeOuting(body, o, ctx, cleanups, show);
    } else {
      title.textContent = 'Start an outing';
      startForm(body, ctx, cleanups, show);
    }
  };
  show(outing);
  return cleanup;
}

function startForm(root, ctx, cleanups, show) {
  const interval = h(
    'select',
    { name: 'interval', required: true },
    INTERVALS_MIN.map((m) => h('option', { value: String(m * 60), selected: m === 30 }, m < 60 ? `Every ${m} minutes` : `Every ${m / 60} hour${m > 60 ? 's' : ''}`)),
  );
  const end = h('input', { type: 'time', name: 'end' });
  const areaOn = h('input', { type: 'checkbox', name: 'area', id: 'area-on' });
  const radius = h(
    'select',
    { name: 'radius', disabled: true },
    RADII_M.map((r) => h('option', { value: String(r), selected: r === 500 }, r < 1000 ? `${r} m` : `${r / 1000} km`)),
  );
  areaOn.addEventListener('change', () => {
    radius.disabled = !areaOn.checked;
  });
  const companions = h('input', { type: 'text', name: 'companions', autocomplete: 'off', spellcheck: 'false' });
  const note = h('textarea', { name: 'note', maxlength: '500', rows: '2' });
  const where = h('p', { class: 'location', id: 'location' });
  cleanups.push(locationLine(where));
  const [cautions, stopCautions] = nearbyCautions(ctx);
  cleanups.push(stopCautions);
  const msg = messageArea();
  const start = h('button', { type: 'submit', class: 'big primary', id: 'start' }, 'Start outing');
  const form = h(
    'form',
    { class: 'stack', novalidate: true },
    field('How often will you check in?', interval),
    field('Planned end (optional)', end, 'Your last check-in is due by then at the latest: end the outing when you are home.'),
    h(
      'fieldset',
      {},
      h('legend', {}, 'Area (optional)'),
      h('div', { class: 'check' }, areaOn, h('label', { for: 'area-on' }, 'I will stay near here')),
      field('Within', radius, 'Measured from where you are now.'),
    ),
    field('Companions (optional)', companions, 'Their companion codes (on their Settings screen), separated by spaces or commas.'),
    field('Note for your organisers (optional)', note),
    h('h2', {}, 'Your location'),
    where,
    // Before the button: what to expect out there is read before setting off.
    cautions,
    msg,
    start,
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    msg.show('');
    fieldError(companions, '');
    const fix = await geo.current(30_000);
    const req = { checkin_interval_s: Number(interval.value) };
    if (end.value) {
      const [hh, mm] = end.value.split(':').map(Number);
      const at = new Date(serverNow());
      at.setHours(hh, mm, 0, 0);
      if (at.getTime() <= serverNow()) at.setDate(at.getDate() + 1);
      req.planned_end_at = at.toISOString();
    }
    if (areaOn.checked) {
      if (!fix) {
        msg.show('An area needs your location. Allow location, or untick the area.', 'error');
        return;
      }
      req.area = { type: 'Circle', center: [fix.lon, fix.lat], radius_m: Number(radius.value) };
    }
    const ids = companions.value.split(/[\s,]+/).filter(Boolean);
    if (ids.length) req.companions = ids;
    if (note.value.trim()) req.note = note.value.trim();
    if (fix) req.start_location = { lat: fix.lat, lon: fix.lon, accuracy_m: fix.accuracy_m };
    start.disabled = true;
    try {
      const o = await api('POST', '/outings', req);
      remember(o);
      announce('Outing started.');
      show(o);
    } catch (err) {
      if (err instanceof ApiError && err.status === 409) {
        const open = await findOpen(ctx.me).catch(() => null);
        if (open) {
          show(open);
          return;
        }
      }
      // A pairs-only caution in the area refuses a solo outing (and a code may name nobody):
      // say so at the companions field.
      const onCompanions = problemFields(err).find((f) => f.field === 'companions' || f.field.startsWith('companions['));
      if (onCompanions) {
        fieldError(companions, onCompanions.message);
        companions.focus();
      }
      msg.show(err.message, 'error');
      start.disabled = false;
    }
  });
  root.replaceChildren(form);
}

function activeOuting(root, initial, ctx, cleanups, show) {
  let outing = initial;
  let lastAnnounced = null;
  const statusEl = h('p', { class: 'status-line', id: 'outing-status', role: 'status' });
  const countdown = h('strong', { id: 'countdown', class: 'countdown' });
  const dueLine = h('p', { class: 'due' }, h('span', { id: 'due-label' }), ' ', countdown, h('span', { id: 'due-at' }));
  const checkin = h('button', { type: 'button', class: 'big ok', id: 'checkin' }, h('span', { 'aria-hidden': 'true' }, '✓ '), 'Check in');
  const checkinMsg = messageArea();
  checkinMsg.id = 'checkin-msg';
  const cautionLine = h('div', { id: 'checkin-cautions' });
  // The cautions POST /outings answered with (only just after starting), else those nearby.
  const [cautions, stopCautions] = nearbyCautions(ctx, Array.isArray(initial.cautions) ? initial.cautions : null);
  cleanups.push(stopCautions);
  const report = h('a', { class: 'button secondary', href: '/app/report', id: 'report-incident' }, 'Report an incident');
  const queueLine = h('div', { class: 'queue', id: 'queue', hidden: true });
  const lastLine = h('p', { id: 'last-checkin' });
  const where = h('p', { class: 'location', id: 'location' });
  cleanups.push(locationLine(where));
  const alertLine = h('div', { id: 'open-alert' });
  // "Check on me": one tap before going into a house.
  const checkNote = h('input', { type: 'text', name: 'check-note', maxlength: '500', autocomplete: 'off', placeholder: 'e.g. going into number 14' });
  const checkMsg = messageArea();
  checkMsg.id = 'check-on-me-msg';
  const checkButtons = [5, 10, 15, 30].map((m) =>
    h('button', { type: 'button', class: 'secondary', 'data-minutes': String(m), id: `check-on-me-${m}` }, `${m} min`),
  );
  const checkCard = h(
    'section',
    { class: 'card', 'aria-labelledby': 'check-on-me-title', id: 'check-on-me' },
    h('h2', { id: 'check-on-me-title' }, 'Check on me'),
    h('p', { class: 'hint' }, 'Going somewhere you are unsure of? If you have not checked in by then, the alarm is raised with your note.'),
    field('Note for whoever is alerted (optional)', checkNote),
    h('div', { class: 'row' }, ...checkButtons),
    checkMsg,
  );
  // Changing the outing: more time, another interval.
  const intervalSel = h(
    'select',
    { name: 'interval', id: 'change-interval' },
    ...[5, 10, 15, 20, 30, 45, 60, 90, 120].map((m) => h('option', { value: String(m * 60) }, `every ${m} min`)),
  );
  const extend = h('button', { type: 'button', class: 'secondary', id: 'extend-30' }, 'Extend by 30 min');
  const saveInterval = h('button', { type: 'button', class: 'secondary', id: 'save-interval' }, 'Change interval');
  const changeMsg = messageArea();
  changeMsg.id = 'change-msg';
  // All clear: the owner cancels their own false alarm, with the safe PIN.
  const clearPin = h('input', { type: 'password', inputmode: 'numeric', autocomplete: 'off', pattern: '[0-9]*', maxlength: '8', name: 'clear-pin', id: 'clear-pin' });
  const clearBtn = h('button', { type: 'button', class: 'secondary', id: 'all-clear' }, 'All clear: cancel the alarm');
  const clearMsg = messageArea();
  clearMsg.id = 'all-clear-msg';
  const help = h('button', { type: 'button', class: 'warn', id: 'help' }, 'I need help');
  const panicProgress = h('progress', { max: '100', value: '0', id: 'panic-progress', 'aria-label': 'Panic hold progress' });
  const panic = h(
    'button',
    { type: 'button', class: 'danger hold', id: 'panic', 'aria-describedby': 'panic-hint' },
    h('span', { 'aria-hidden': 'true' }, '⚠ '),
    'Panic',
  );
  const panicHint = h('span', { class: 'hint', id: 'panic-hint' }, 'Press and hold for 2 seconds. Alerts police and your organisers at once.');
  const panicMsg = messageArea();
  panicMsg.id = 'panic-msg';
  const pin = h('input', { type: 'password', inputmode: 'numeric', autocomplete: 'off', pattern: '[0-9]*', maxlength: '8', name: 'pin' });
  const endBtn = h('button', { type: 'submit', class: 'secondary', id: 'end' }, 'End outing');
  const endMsg = messageArea();
  const details = h('dl', { class: 'facts' });
  const endForm = h(
    'form',
    { class: 'stack', novalidate: true },
    ctx.me.has_pins ? field('Your PIN', pin, 'Needed to end the outing.') : h('p', { class: 'hint' }, 'Tip: set PINs in Settings so nobody else can end your outing.'),
    endMsg,
    endBtn,
  );

  root.replaceChildren(
    h('section', { class: 'card', 'aria-labelledby': 'outing-status' }, statusEl, dueLine, lastLine),
    checkin,
    cautionLine,
    checkinMsg,
    queueLine,
    alertLine,
    checkCard,
    h('section', { class: 'card' }, h('h2', {}, 'Your location'), where),
    h('div', { class: 'row emergency' }, help, h('div', { class: 'hold-wrap' }, panic, panicProgress)),
    panicHint,
    panicMsg,
    h('p', { class: 'links' }, report),
    cautions,
    h(
      'section',
      { class: 'card', 'aria-labelledby': 'change-title' },
      h('h2', { id: 'change-title' }, 'Change this outing'),
      h('div', { class: 'row' }, extend),
      field('Check-in interval', intervalSel),
      saveInterval,
      changeMsg,
    ),
    h('section', { class: 'card' }, h('h2', {}, 'Home safe?'), endForm),
    h('details', { class: 'card' }, h('summary', {}, 'Outing details'), details),
  );

  const render = () => {
    const overdue = outing.status === 'overdue';
    // A live region: only touched when what it says changes.
    const status = `${outing.status}${outing.offline ? '-offline' : ''}`;
    if (statusEl.dataset.shown !== status) {
      statusEl.dataset.shown = status;
      statusEl.replaceChildren(
        overdue ? badge('danger', 'OVERDUE — check in now') : badge('ok', 'Active'),
        outing.offline ? h('span', { class: 'hint' }, ' (offline: showing what this phone knew)') : '',
      );
    }
    lastLine.replaceChildren();
    if (outing.last_checkin) {
      const c = outing.last_checkin;
      lastLine.append('Last check-in ', h('strong', {}, time(c.recorded_at)), ' (', agoEl(c.recorded_at), ')');
      if (outing.inside_area === true) lastLine.append(' · ', badge('ok', 'inside area'));
      if (outing.inside_area === false) lastLine.append(' · ', badge('warn', 'outside area'));
    } else if (!outing.offline) {
      lastLine.append('No check-in yet.');
    }
    alertLine.replaceChildren();
    const a = outing.open_alert;
    if (a) {
      const missed = a.kind === 'missed_checkin';
      alertLine.append(
        h(
          'div',
          { class: 'card alert-card', role: 'status' },
          h('p', {}, badge(missed ? 'warn' : 'danger', `${kindText(a.kind)} alert · ${a.status}`)),
          a.reason ? h('p', {}, 'Because: ', h('q', {}, a.reason)) : '',
          h(
            'p',
            {},
            missed
              ? 'Check in to tell everyone you are safe, or cancel the alarm below.'
              : 'Your organisers and the police have been told. A check-in does not cancel it: if it was a mistake, cancel it below with your PIN.',
          ),
          ctx.me.has_pins ? field('PIN to cancel the alarm', clearPin) : '',
          clearBtn,
          clearMsg,
        ),
      );
    }
    checkCard.hidden = outing.status !== 'active' || !!outing.offline;
    intervalSel.value = String(outing.checkin_interval_s);
    details.replaceChildren(
      h('dt', {}, 'Started'), h('dd', {}, dateTime(outing.started_at)),
      h('dt', {}, 'Check in every'), h('dd', {}, duration(outing.checkin_interval_s)),
      h('dt', {}, 'Planned end'), h('dd', {}, outing.planned_end_at ? dateTime(outing.planned_end_at) : 'not set'),
      h('dt', {}, 'Area'), h('dd', {}, outing.area && outing.area.type === 'Circle' ? `within ${outing.area.radius_m} m of the start` : outing.area ? 'a drawn area' : 'none'),
      h('dt', {}, 'Companions'), h('dd', {}, outing.companions && outing.companions.length ? outing.companions.map((c) => c.display_name).join(', ') : 'none (solo)'),
    );
    tick();
  };

  const tick = () => {
    const due = outing.next_checkin_due_at ? Date.parse(outing.next_checkin_due_at) : null;
    const label = root.querySelector('#due-label');
    const at = root.querySelector('#due-at');
    if (!due) {
      label.textContent = 'No check-in due.';
      countdown.textContent = '';
      at.textContent = '';
      return;
    }
    const left = (due - serverNow()) / 1000;
    if (left >= 0) {
      label.textContent = 'Next check-in due in';
      countdown.textContent = duration(left);
      at.textContent = ` (by ${time(outing.next_checkin_due_at)})`;
    } else {
      label.textContent = 'Check-in overdue by';
      countdown.textContent = duration(-left);
      at.textContent = ` (was due ${time(outing.next_checkin_due_at)})`;
    }
    countdown.classList.toggle('late', left < 0);
    // Screen readers hear the milestones, not every second.
    const mark = left < 0 ? 'due' : left <= 60 ? '1' : left <= 300 ? '5' : null;
    if (mark && mark !== lastAnnounced) {
      announce(mark === 'due' ? 'Your check-in is due now.' : `Check-in due in ${mark} minute${mark === '1' ? '' : 's'}.`, mark === 'due');
    }
    lastAnnounced = mark;
    tickAgo(root);
  };

  const showQueue = async () => {
    const n = await queue.count(outing.id);
    queueLine.hidden = n === 0;
    if (!n) queueLine.dataset.count = '';
    if (!n || queueLine.dataset.count === String(n)) return;
    queueLine.dataset.count = String(n);
    queueLine.replaceChildren(
      h(
        'p',
        { class: 'msg msg-warn', role: 'status' },
        h('span', { 'aria-hidden': 'true' }, '⚠ '),
        `${n} check-in${n === 1 ? '' : 's'} saved on this phone, not sent yet. They will be sent when you are back online; until then your deadline does not move.`,
      ),
      h('button', { type: 'button', class: 'secondary', id: 'send-now', onclick: () => ctx.flush() }, 'Send now'),
    );
  };

  const refresh = async () => {
    try {
      const o = await api('GET', `/outings/${outing.id}`);
      if (o.status === 'ended') {
        forget();
        show(null);
        return;
      }
      outing = o;
      remember(o);
      render();
    } catch {
      // Offline or a blip: keep showing what we have.
    }
  };

  const doCheckin = async (kind) => {
    checkin.disabled = true;
    help.disabled = true;
    checkinMsg.show('Getting your position…');
    try {
      const fix = await geo.current(10_000);
      if (!fix) {
        checkinMsg.show(`${geo.error() || 'No position yet.'} A check-in needs a position.`, 'error');
        return;
      }
      const clientId = crypto.randomUUID();
      const req = { lat: fix.lat, lon: fix.lon, recorded_at: new Date(serverNow()).toISOString() };
      if (fix.accuracy_m !== null) req.accuracy_m = fix.accuracy_m;
      const pct = await battery();
      if (pct !== null) req.battery_pct = pct;
      if (kind === 'need_help') req.kind = 'need_help';
      const saved = kind === 'need_help' ? 'Help request saved on this phone, NOT sent: no connection. If you are in danger call 999 / 112.' : 'No connection: check-in saved on this phone, NOT sent yet.';
      if (!navigator.onLine) {
        await queue.add({ client_id: clientId, outing_id: outing.id, op: 'batch', body: { ...req, client_id: clientId } });
        checkinMsg.show(saved, 'warn');
        announce(saved, true);
        return;
      }
      const raw = JSON.stringify(req);
      try {
        const res = await api('POST', `/outings/${outing.id}/checkins`, raw, { raw: true, headers: { 'Idempotency-Key': clientId } });
        outing = res.outing;
        remember(outing);
        render();
        // Where this check-in stands (a door not to knock at, say): shown until the next one.
        const banner = cautionBanner(res.checkin.cautions);
        cautionLine.replaceChildren(...(banner ? [banner] : []));
        const text = kind === 'need_help' ? `Help request sent at ${time(res.checkin.received_at)}. Your organisers are being alerted.` : `Checked in at ${time(res.checkin.received_at)}.`;
        checkinMsg.show(text, 'ok');
        announce(text);
      } catch (err) {
        if (!(err instanceof NetworkError)) throw err;
        // It may have arrived: resend the same request with the same key later.
        await queue.add({ client_id: clientId, outing_id: outing.id, op: 'live', body: raw });
        checkinMsg.show(saved, 'warn');
        announce(saved, true);
      }
    } catch (err) {
      checkinMsg.show(err.message, 'error');
      if (err instanceof ApiError && err.status === 409) refresh();
    } finally {
      checkin.disabled = false;
      help.disabled = false;
      showQueue();
    }
  };

  checkin.addEventListener('click', () => doCheckin('ok'));
  help.addEventListener('click', async () => {
    if (await confirmDialog('Ask for help?', 'Your organisers and companions will be alerted with your position.', 'Send help request', true)) doCheckin('need_help');
  });
  holdToActivate(
    panic,
    panicProgress,
    2000,
    async () => {
      const fix = geo.lastFix();
      const req = fix ? { lat: fix.lat, lon: fix.lon, accuracy_m: fix.accuracy_m } : {};
      panicMsg.show('Sending panic alert…', 'warn');
      try {
        await api('POST', `/outings/${outing.id}/panic`, req);
        const text = 'PANIC ALERT SENT. Police and your organisers are being alerted. Call 999 / 112 if you can.';
        panicMsg.show(text, 'error');
        announce(text, true);
        refresh();
      } catch (err) {
        if (err instanceof NetworkError) {
          await queue.add({ client_id: crypto.randomUUID(), outing_id: outing.id, op: 'panic', body: req });
          const text = 'Panic NOT sent: no connection. Call 999 / 112 now. Doorstep will keep trying.';
          panicMsg.show(text, 'error');
          announce(text, true);
          showQueue();
        } else {
          panicMsg.show(err.message, 'error');
        }
      }
    },
    () => panicMsg.show('Keep holding the Panic button for 2 seconds to send.', 'info'),
  );
  endForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    endMsg.show('');
    const req = {};
    if (ctx.me.has_pins) {
      if (!/^\d{4,8}$/.test(pin.value)) {
        endMsg.show('Enter your PIN (4 to 8 digits).', 'error');
        pin.focus();
        return;
      }
      req.pin = pin.value;
    }
    const fix = geo.lastFix();
    if (fix) Object.assign(req, { lat: fix.lat, lon: fix.lon, accuracy_m: fix.accuracy_m });
    endBtn.disabled = true;
    try {
      await ctx.flush(); // queued check-ins first: after the end they would be refused
      await api('POST', `/outings/${outing.id}/end`, req);
      forget();
      pin.value = '';
      announce('Outing ended. Welcome home.');
      show(null);
      const done = document.querySelector('main h1');
      if (done) done.after(h('p', { class: 'msg msg-ok', role: 'status' }, 'Outing ended. Welcome home.'));
    } catch (err) {
      endMsg.show(err.message, 'error');
      endBtn.disabled = false;
    }
  });

  for (const button of checkButtons) {
    button.addEventListener('click', async () => {
      const minutes = Number(button.dataset.minutes);
      checkMsg.show('');
      checkButtons.forEach((b) => { b.disabled = true; });
      try {
        const req = { in_s: minutes * 60 };
        if (checkNote.value.trim()) req.note = checkNote.value.trim();
        const res = await api('POST', `/outings/${outing.id}/check-on-me`, req);
        const text = `If you have not checked in by ${time(res.due_at)}, the alarm is raised${req.note ? ' with your note' : ''}. A check-in cancels it.`;
        checkMsg.show(text, 'ok');
        announce(text);
        checkNote.value = '';
        refresh();
      } catch (err) {
        checkMsg.show(err.message, 'error');
      } finally {
        checkButtons.forEach((b) => { b.disabled = false; });
      }
    });
  }

  const change = async (req, done) => {
    changeMsg.show('');
    extend.disabled = true;
    saveInterval.disabled = true;
    try {
      outing = await api('PATCH', `/outings/${outing.id}`, req);
      remember(outing);
      render();
      changeMsg.show(done(outing), 'ok');
      announce(done(outing));
    } catch (err) {
      changeMsg.show(err.message, 'error');
    } finally {
      extend.disabled = false;
      saveInterval.disabled = false;
    }
  };
  extend.addEventListener('click', () => {
    // 30 minutes more than planned; with no planned end, 30 minutes from now.
    const base = outing.planned_end_at ? Math.max(Date.parse(outing.planned_end_at), serverNow()) : serverNow();
    change({ planned_end_at: new Date(base + 30 * 60_000).toISOString() }, (o) => `Planned end moved to ${time(o.planned_end_at)}.`);
  });
  saveInterval.addEventListener('click', () => {
    change({ checkin_interval_s: Number(intervalSel.value) }, (o) => `You now check in every ${duration(o.checkin_interval_s)}; next by ${time(o.next_checkin_due_at)}.`);
  });

  clearBtn.addEventListener('click', async () => {
    clearMsg.show('');
    const req = {};
    if (ctx.me.has_pins) {
      if (!/^\d{4,8}$/.test(clearPin.value)) {
        clearMsg.show('Enter your PIN (4 to 8 digits).', 'error');
        clearPin.focus();
        return;
      }
      req.pin = clearPin.value;
    }
    clearBtn.disabled = true;
    try {
      outing = await api('POST', `/outings/${outing.id}/all-clear`, req);
      clearPin.value = '';
      remember(outing);
      render();
      checkinMsg.show('Alarm cancelled: everyone who was told has been sent the all clear.', 'ok');
      announce('Alarm cancelled.');
    } catch (err) {
      clearMsg.show(err.message, 'error');
      if (err instanceof ApiError && err.status === 409) refresh();
    } finally {
      clearBtn.disabled = false;
    }
  });

  // An "are you OK?" answered from the notification: show the outing as it now is.
  const onServiceWorker = (event) => {
    if (event.data && event.data.type === 'welfare-answered') refresh();
  };
  if (navigator.serviceWorker) navigator.serviceWorker.addEventListener('message', onServiceWorker);
  cleanups.push(() => {
    if (navigator.serviceWorker) navigator.serviceWorker.removeEventListener('message', onServiceWorker);
  });

  render();
  showQueue();
  const ticker = setInterval(tick, 1000);
  const poller = setInterval(refresh, 30_000);
  const onQueue = () => {
    showQueue();
    refresh();
  };
  queue.changes.addEventListener('change', onQueue);
  const onPush = () => refresh();
  window.addEventListener('doorstep-push', onPush);
  cleanups.push(() => {
    clearInterval(ticker);
    clearInterval(poller);
    queue.changes.removeEventListener('change', onQueue);
    window.removeEventListener('doorstep-push', onPush);
  });
  if (initial.offline) refresh();
}

export async function settingsView(main, ctx) {
  const me = ctx.me;
  const title = h('h1', { tabindex: '-1' }, 'Settings');
  const sections = [
    h(
      'section',
      { class: 'card' },
      h('h2', {}, 'Account'),
      h('dl', { class: 'facts' }, h('dt', {}, 'Name'), h('dd', {}, me.display_name), h('dt', {}, 'Email'), h('dd', {}, me.email), h('dt', {}, 'Role'), h('dd', {}, me.role)),
    ),
    pushSection(),
    phoneSection(),
  ];
  if (me.role === 'canvasser' || me.role === 'organiser') {
    sections.push(pinSection(ctx));
    sections.push(
      h(
        'section',
        { class: 'card' },
        h('h2', {}, 'Companion code'),
        h('p', {}, 'Give this code to a colleague who adds you as a companion when starting an outing:'),
        h('p', {}, h('code', { class: 'code', id: 'companion-code' }, me.id)),
      ),
    );
  }
  const out = h('button', { type: 'button', class: 'secondary', id: 'logout' }, 'Sign out');
  out.addEventListener('click', () => ctx.signOut());
  sections.push(h('section', { class: 'card' }, h('h2', {}, 'Sign out'), h('p', { class: 'hint' }, 'Signing out stops alerts to this phone and deletes unsent check-ins from it.'), out));
  main.replaceChildren(title, ...sections);
  return () => {};
}

function pushSection() {
  const stateEl = h('p', { id: 'push-state', role: 'status' });
  const toggle = h('button', { type: 'button', class: 'primary', id: 'push-toggle' }, 'Turn on alerts');
  const test = h('button', { type: 'button', class: 'secondary', id: 'push-test' }, 'Send a test alert');
  const msg = messageArea();
  msg.id = 'push-msg';
  let current = 'off';
  const paint = async () => {
    current = await push.state();
    const words = {
      unsupported: ['warn', 'This browser cannot receive alerts. Use Chrome, Edge, Firefox or Safari (installed to the home screen).'],
      blocked: ['warn', 'Notifications are blocked for this site: allow them in the browser settings.'],
      on: ['ok', 'Alerts are on for this phone.'],
      off: ['warn', 'Alerts are off for this phone.'],
    }[current];
    stateEl.replaceChildren(badge(words[0], words[1]));
    toggle.hidden = current === 'unsupported' || current === 'blocked';
    toggle.textContent = current === 'on' ? 'Turn off alerts' : 'Turn on alerts';
  };
  toggle.addEventListener('click', async () => {
    toggle.disabled = true;
    msg.show(current === 'on' ? 'Turning alerts off…' : 'Turning alerts on…');
    try {
      if (current === 'on') await push.disable();
      else await push.enable();
      msg.show(current === 'on' ? 'Alerts turned off.' : 'Alerts turned on.', 'ok');
    } catch (err) {
      msg.show(`Could not turn alerts ${current === 'on' ? 'off' : 'on'}: ${err.message}`, 'error');
    } finally {
      toggle.disabled = false;
      paint();
    }
  });
  test.addEventListener('click', async () => {
    test.disabled = true;
    try {
      await api('POST', '/push/test');
      const here = current === 'on' ? '' : ' Alerts are off on this phone, so it will not arrive here.';
      msg.show(`Test sent: it should reach every device where your alerts are on within a few seconds.${here}`, 'ok');
    } catch (err) {
      msg.show(err.message, 'error');
    } finally {
      test.disabled = false;
    }
  });
  paint();
  return h('section', { class: 'card' }, h('h2', {}, 'Alerts on this phone'), stateEl, h('div', { class: 'row' }, toggle, test), msg);
}

/** SMS and calls: alert steps by SMS (reply OK and the code to take charge), and a call for
 * level-2 alerts still unacknowledged; both need the account's phone number. */
function phoneSection() {
  const sms = h('input', { type: 'checkbox', id: 'sms-on', name: 'sms' });
  const voice = h('input', { type: 'checkbox', id: 'voice-on', name: 'voice' });
  const save = h('button', { type: 'button', class: 'secondary', id: 'phone-save' }, 'Save');
  const test = h('button', { type: 'button', class: 'secondary', id: 'sms-test' }, 'Send a test SMS');
  const msg = messageArea();
  msg.id = 'phone-msg';
  let current = null;
  const load = async () => {
    try {
      current = await api('GET', '/me/channels');
      sms.checked = !!current.sms;
      voice.checked = !!current.voice;
    } catch (err) {
      msg.show(err.message, 'error');
    }
  };
  save.addEventListener('click', async () => {
    if (!current) return;
    save.disabled = true;
    try {
      const body = { email: current.email, webhook_url: current.webhook_url, sms: sms.checked, voice: voice.checked };
      current = { ...current, ...(await api('PUT', '/me/channels', body)) };
      msg.show(sms.checked || voice.checked ? 'Saved: alerts will also reach your phone number.' : 'Saved.', 'ok');
    } catch (err) {
      msg.show(err.message, 'error');
    } finally {
      save.disabled = false;
    }
  });
  test.addEventListener('click', async () => {
    test.disabled = true;
    try {
      await api('POST', '/me/sms-test', {});
      msg.show('Test SMS sent to your phone number.', 'ok');
    } catch (err) {
      msg.show(err.message, 'error');
    } finally {
      test.disabled = false;
    }
  });
  load();
  return h(
    'section',
    { class: 'card', 'aria-labelledby': 'phone-title' },
    h('h2', { id: 'phone-title' }, 'SMS and calls'),
    h('p', { class: 'hint' }, 'For a phone without data or on Do Not Disturb. They need your phone number on your account (ask your organiser).'),
    h('div', { class: 'check' }, sms, h('label', { for: 'sms-on' }, 'Alerts by SMS (reply OK and the code to take charge)')),
    h('div', { class: 'check' }, voice, h('label', { for: 'voice-on' }, 'A phone call for urgent alerts nobody has taken (press 1 to take charge)')),
    h('div', { class: 'row' }, save, test),
    msg,
  );
}

function pinSection(ctx) {
  const safe = h('input', { type: 'password', inputmode: 'numeric', autocomplete: 'new-password', maxlength: '8', name: 'safe_pin' });
  const duress = h('input', { type: 'password', inputmode: 'numeric', autocomplete: 'new-password', maxlength: '8', name: 'duress_pin' });
  const msg = messageArea();
  msg.id = 'pin-msg';
  const current = h('input', { type: 'password', inputmode: 'numeric', autocomplete: 'current-password', maxlength: '8', name: 'current_pin' });
  const submit = h('button', { type: 'submit', class: 'primary' }, ctx.me.has_pins ? 'Change PINs' : 'Set PINs');
  const currentField = field('Current safe PIN', current, 'Needed to change your PINs, so nobody else holding your phone can.');
  currentField.hidden = !ctx.me.has_pins;
  const state = h('p', { id: 'pin-state' }, ctx.me.has_pins ? badge('ok', 'Your PINs are set.') : badge('warn', 'No PINs set: anyone holding your phone can end your outing.'));
  const form = h(
    'form',
    { class: 'stack', novalidate: true },
    // For password managers: whose PINs these are.
    h('input', { type: 'text', name: 'username', autocomplete: 'username', value: ctx.me.email, hidden: true, readonly: true }),
    state,
    currentField,
    field('Safe PIN (4–8 digits)', safe, 'Ends your outing normally.'),
    field('Duress PIN (4–8 digits, different)', duress, 'If someone forces you to end the outing, use this one: the app looks exactly the same, but police and your organisers are silently alerted.'),
    msg,
    submit,
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      const body = { safe_pin: safe.value, duress_pin: duress.value };
      if (ctx.me.has_pins) body.current_pin = current.value;
      await api('PUT', '/me/pins', body);
      safe.value = '';
      duress.value = '';
      current.value = '';
      ctx.me.has_pins = true;
      currentField.hidden = false;
      submit.textContent = 'Change PINs';
      localStorage.setItem('doorstep.me', JSON.stringify(ctx.me));
      state.replaceChildren(badge('ok', 'Your PINs are set.'));
      msg.show('PINs saved.', 'ok');
    } catch (err) {
      msg.show(err.message, 'error');
    }
  });
  return h('section', { class: 'card' }, h('h2', {}, 'PINs'), form);
}
