// The do-not-knock register ("cautions"): a level in words, the cautions around a canvasser
// (start and outing screens), the banner after a check-in inside one, and the organisers' form
// and list on the board.

import { api, NetworkError } from './api.js';
import * as geo from './geo.js';
import {
  h, announce, messageArea, field, fieldError, problemFields, fullDateTime, coords, badge,
  confirmDialog,
} from './ui.js';

// Most serious first: lists and banners are ordered by it.
const LEVELS = {
  do_not_knock: { badge: 'danger', words: 'Do not knock', rank: 0 },
  pairs_only: { badge: 'warn', words: 'Go in pairs only', rank: 1 },
  note: { badge: 'info', words: 'Note', rank: 2 },
};
const NEAR_M = 1000;
// Moving this far from where the list was asked for asks again (the list covers 1 km).
const REQUERY_M = 250;
const RADII_M = [10, 25, 50, 100, 250, 500];

export function levelText(level) {
  return (LEVELS[level] || { words: level }).words;
}

export function levelBadge(level) {
  const l = LEVELS[level] || { badge: 'muted', words: level };
  return badge(l.badge, l.words);
}

function rank(c) {
  return (LEVELS[c.level] || { rank: 9 }).rank;
}

function distanceM(a, b) {
  const rad = Math.PI / 180;
  const dLat = (b.lat - a.lat) * rad;
  const dLon = (b.lon - a.lon) * rad;
  const s = Math.sin(dLat / 2) ** 2 + Math.cos(a.lat * rad) * Math.cos(b.lat * rad) * Math.sin(dLon / 2) ** 2;
  return 2 * 6_371_008.8 * Math.asin(Math.min(1, Math.sqrt(s)));
}

// "north-east": easier to act on in the street than coordinates.
function direction(from, to) {
  const rad = Math.PI / 180;
  const y = Math.sin((to.lon - from.lon) * rad) * Math.cos(to.lat * rad);
  const x = Math.cos(from.lat * rad) * Math.sin(to.lat * rad) - Math.sin(from.lat * rad) * Math.cos(to.lat * rad) * Math.cos((to.lon - from.lon) * rad);
  const deg = (Math.atan2(y, x) / rad + 360) % 360;
  return ['north', 'north-east', 'east', 'south-east', 'south', 'south-west', 'west', 'north-west'][Math.round(deg / 45) % 8];
}

function whereText(c, here) {
  const size = `${Math.round(c.radius_m)} m around ${coords(c.lat, c.lon)}`;
  if (!here) return size;
  const d = distanceM(here, c);
  if (d <= c.radius_m) return `You are inside it (${size}).`;
  const rounded = d < 100 ? Math.max(10, Math.round(d / 10) * 10) : Math.round(d / 50) * 50;
  return `About ${rounded} m ${direction(here, c)} of you (${size}).`;
}

function sorted(cautions, here) {
  return [...cautions].sort((a, b) => rank(a) - rank(b) || (here ? distanceM(here, a) - distanceM(here, b) : 0));
}

function cautionItem(c, here) {
  return h(
    'li',
    { class: `caution caution-${c.level}`, dataset: { caution: c.id } },
    h('p', { class: 'badges' }, levelBadge(c.level)),
    h('p', { class: 'caution-reason' }, c.reason),
    h('p', { class: 'hint' }, whereText(c, here)),
  );
}

/**
 * The cautions around the canvasser, as a card: those within 1 km of the current position
 * (asked again after moving 250 m), or all of the organisation's active ones while there is
 * no fix. With `given` (the `cautions` of a POST /outings answer) it shows those and asks
 * nothing. Returns [element, stop].
 */
export function nearbyCautions(ctx, given = null) {
  const title = h('h2', { id: 'cautions-title' }, given ? 'Cautions in your area' : 'Cautions near here');
  const state = h('p', { class: 'hint', id: 'cautions-state' });
  const list = h('ul', { class: 'cautions', id: 'cautions' });
  const section = h('section', { class: 'card', id: 'cautions-card', 'aria-labelledby': 'cautions-title' }, title, state, list);
  const org = ctx.me.org_id;
  if (!org) {
    section.hidden = true;
    return [section, () => {}];
  }
  let items = given;
  let asked = null; // where the shown list was asked for (null: the whole organisation)
  let seq = 0;

  const render = () => {
    const here = geo.lastFix();
    list.replaceChildren(...sorted(items || [], here).map((c) => cautionItem(c, here)));
    if (!items) return;
    if (given) state.textContent = items.length ? 'Marked by your organisers where this outing goes:' : '';
    else if (asked) state.textContent = items.length ? `Within ${NEAR_M / 1000} km of you, most serious first:` : '';
    else state.textContent = items.length ? 'All of your organisation’s (your position is not known yet):' : '';
    if (!items.length) {
      list.append(h('li', { class: 'empty' }, badge('ok', given ? 'No cautions in this outing’s area.' : asked ? `No cautions within ${NEAR_M / 1000} km of you.` : 'Your organisation has no cautions.')));
    }
  };

  const load = async (fix) => {
    const mine = ++seq;
    const query = fix ? `?near=${fix.lat.toFixed(5)},${fix.lon.toFixed(5)}&within_m=${NEAR_M}` : '';
    try {
      const page = await api('GET', `/orgs/${org}/cautions${query}`);
      if (mine !== seq) return;
      asked = fix;
      items = page.items;
      render();
    } catch (err) {
      if (mine !== seq) return;
      state.textContent = err instanceof NetworkError ? 'Cautions could not be loaded: no connection.' : `Cautions could not be loaded: ${err.message}`;
    }
  };

  if (given) {
    render();
    // Distances follow the position; the list itself is the server's for this outing.
    const stop = geo.watch(() => render());
    return [section, stop];
  }
  state.textContent = 'Loading cautions…';
  if (!geo.lastFix()) load(null);
  const stop = geo.watch((fix) => {
    if (fix && (!asked || distanceM(asked, fix) >= REQUERY_M)) {
      asked = fix; // not asked again while this one is on its way
      load(fix);
    } else if (items) {
      render();
    }
  });
  return [section, stop];
}

/**
 * The banner after a check-in whose position lies inside cautions (`checkin.cautions`), or
 * null: do-not-knock is red, first and announced at once; others are a plain warning.
 */
export function cautionBanner(cautions) {
  if (!cautions || !cautions.length) return null;
  const list = sorted(cautions, null);
  const top = list[0].level;
  const heading = top === 'do_not_knock' ? 'DO NOT KNOCK here' : top === 'pairs_only' ? 'Go in pairs only here' : 'A note about here';
  const icon = top === 'do_not_knock' ? '‼ ' : top === 'pairs_only' ? '⚠ ' : 'ℹ ';
  announce(`${heading}. ${list.map((c) => `${levelText(c.level)}: ${c.reason}`).join('. ')}`, top !== 'note');
  return h(
    'div',
    { class: `card caution-banner is-${top}`, id: 'caution-banner', role: 'alert' },
    h('h2', {}, h('span', { 'aria-hidden': 'true' }, icon), heading),
    h('ul', { class: 'cautions' }, list.map((c) => h('li', { class: `caution caution-${c.level}` }, levelBadge(c.level), ' ', c.reason))),
  );
}

/** Parses "51.5072" (or "51,5072") into a number within ±`max`, or NaN. */
function degrees(raw, max) {
  const n = Number(String(raw).trim().replace(',', '.'));
  return raw.trim() && Number.isFinite(n) && Math.abs(n) <= max ? n : NaN;
}

/**
 * The organisers' part of the board: the organisation's active cautions, each with Renew and
 * Retire, and a form to mark one at a position (typed, or the organiser's own position: the
 * board has no map). Returns [element, stop].
 */
export function cautionsBoard(ctx) {
  const org = ctx.me.org_id;
  const list = h('ul', { class: 'cautions', id: 'board-cautions' });
  const listMsg = messageArea();
  listMsg.id = 'cautions-msg';

  const lat = h('input', { type: 'text', name: 'lat', inputmode: 'decimal', autocomplete: 'off', id: 'caution-lat' });
  const lon = h('input', { type: 'text', name: 'lon', inputmode: 'decimal', autocomplete: 'off', id: 'caution-lon' });
  const here = h('button', { type: 'button', class: 'secondary', id: 'caution-here' }, 'Use my position');
  const radius = h('select', { name: 'radius_m', id: 'caution-radius' }, RADII_M.map((r) => h('option', { value: String(r), selected: r === 25 }, `${r} m`)));
  const levels = h(
    'fieldset',
    { id: 'caution-level', tabindex: '-1' },
    h('legend', {}, 'Level'),
    Object.entries(LEVELS).map(([value, l], i) =>
      h('div', { class: 'check' }, h('input', { type: 'radio', name: 'level', value, id: `level-${value}`, checked: i === 0 }), h('label', { for: `level-${value}` }, l.words)),
    ),
  );
  const reason = h('textarea', { name: 'reason', rows: '3', maxlength: '500', id: 'caution-reason' });
  const expires = h('input', { type: 'date', name: 'expires_at', id: 'caution-expires' });
  const formMsg = messageArea();
  formMsg.id = 'caution-form-msg';
  const submit = h('button', { type: 'submit', class: 'primary', id: 'caution-add' }, 'Mark caution');
  const form = h(
    'form',
    { class: 'stack', novalidate: true },
    h('div', { class: 'row' }, field('Latitude', lat), field('Longitude', lon)),
    here,
    field('Radius', radius, 'Around the position: a door is about 10–25 m, a short street 100 m.'),
    levels,
    field('Reason', reason, 'What to expect, never a resident’s name. For example: “Dog loose in the front garden” or “Shouted at canvassers in May”.'),
    field('Expires (optional)', expires, 'Leave empty for 90 days from now. Renew it then if it is still true.'),
    formMsg,
    submit,
  );
  const section = h(
    'section',
    { class: 'card', id: 'cautions-board', 'aria-labelledby': 'cautions-board-title' },
    h('h2', { id: 'cautions-board-title' }, 'Cautions (do-not-knock register)'),
    h('p', { class: 'hint' }, 'Canvassers see these on their start screen, and a check-in inside one warns them.'),
    listMsg,
    list,
    h('details', { class: 'card', id: 'caution-new' }, h('summary', {}, 'Mark a new caution'), form),
  );
  if (!org) {
    section.hidden = true;
    return [section, () => {}];
  }
  let items = [];

  const render = () => {
    list.replaceChildren();
    if (!items.length) list.append(h('li', { class: 'empty' }, 'No active cautions.'));
    for (const c of sorted(items, null)) {
      const renew = h('button', { type: 'button', class: 'secondary', dataset: { action: 'renew' } }, 'Renew');
      const retire = h('button', { type: 'button', class: 'danger', dataset: { action: 'retire' } }, 'Retire');
      renew.addEventListener('click', async () => {
        renew.disabled = true;
        try {
          const fresh = await api('POST', `/orgs/${org}/cautions/${c.id}/renew`);
          items = items.map((x) => (x.id === c.id ? fresh : x));
          render();
          const text = `Renewed: “${fresh.reason}” now lasts until ${fullDateTime(fresh.expires_at)}.`;
          listMsg.show(text, 'ok');
          announce(text);
        } catch (err) {
          listMsg.show(err.message, 'error');
          renew.disabled = false;
        }
      });
      retire.addEventListener('click', async () => {
        if (!(await confirmDialog('Retire this caution?', `“${c.reason}” will no longer be shown to canvassers.`, 'Retire', true))) return;
        retire.disabled = true;
        try {
          await api('DELETE', `/orgs/${org}/cautions/${c.id}`);
          items = items.filter((x) => x.id !== c.id);
          render();
          listMsg.show('Caution retired.', 'ok');
          announce('Caution retired.');
        } catch (err) {
          listMsg.show(err.message, 'error');
          retire.disabled = false;
        }
      });
      const map = h(
        'a',
        {
          class: 'button secondary',
          href: `https://www.openstreetmap.org/?mlat=${c.lat.toFixed(6)}&mlon=${c.lon.toFixed(6)}#map=18/${c.lat.toFixed(6)}/${c.lon.toFixed(6)}`,
          target: '_blank',
          rel: 'noopener noreferrer',
        },
        'Map ↗',
      );
      list.append(
        h(
          'li',
          { class: `caution caution-${c.level}`, dataset: { caution: c.id } },
          h('p', { class: 'badges' }, levelBadge(c.level)),
          h('p', { class: 'caution-reason' }, c.reason),
          h('p', { class: 'hint' }, `${Math.round(c.radius_m)} m around ${coords(c.lat, c.lon)}`),
          h('p', { class: 'hint' }, `Marked by ${c.created_by ? c.created_by.display_name : 'someone'}, ${fullDateTime(c.created_at)}. Expires ${c.expires_at ? fullDateTime(c.expires_at) : 'never'}.`),
          h('div', { class: 'row tight' }, map, renew, retire),
        ),
      );
    }
  };

  const load = async () => {
    try {
      items = (await api('GET', `/orgs/${org}/cautions`)).items;
      render();
    } catch (err) {
      listMsg.show(`Cautions could not be loaded: ${err.message}`, 'error');
    }
  };

  // The position is asked for only when the organiser taps: the board does not follow them.
  here.addEventListener('click', async () => {
    here.disabled = true;
    formMsg.show('Getting your position…');
    const fix = await geo.current(30_000);
    here.disabled = false;
    if (!fix) {
      formMsg.show(geo.error() || 'No position yet.', 'error');
      return;
    }
    lat.value = fix.lat.toFixed(6);
    lon.value = fix.lon.toFixed(6);
    formMsg.show(`Your position, ±${Math.round(fix.accuracy_m || 0)} m. Move the numbers if the door is elsewhere.`);
  });

  const controls = { lat, lon, radius_m: radius, level: levels, reason, expires_at: expires };
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    formMsg.show('');
    Object.values(controls).forEach((c) => fieldError(c, ''));
    const body = {
      lat: degrees(lat.value, 90),
      lon: degrees(lon.value, 180),
      radius_m: Number(radius.value),
      level: form.querySelector('input[name="level"]:checked').value,
      reason: reason.value.trim(),
    };
    const wrong = [];
    if (Number.isNaN(body.lat)) wrong.push(['lat', 'Enter a latitude, such as 51.5072 (or tap “Use my position”).']);
    if (Number.isNaN(body.lon)) wrong.push(['lon', 'Enter a longitude, such as -0.1276.']);
    if (!body.reason) wrong.push(['reason', 'Say what to expect.']);
    if (expires.value) {
      // The end of the chosen day, on this phone's clock.
      const [y, m, d] = expires.value.split('-').map(Number);
      body.expires_at = new Date(y, m - 1, d, 23, 59, 0).toISOString();
    }
    if (wrong.length) {
      wrong.forEach(([f, text]) => fieldError(controls[f], text));
      controls[wrong[0][0]].focus();
      return;
    }
    submit.disabled = true;
    try {
      const made = await api('POST', `/orgs/${org}/cautions`, body);
      items = [made, ...items.filter((x) => x.id !== made.id)];
      render();
      reason.value = '';
      expires.value = '';
      formMsg.show(`Caution marked: ${levelText(made.level)}, ${Math.round(made.radius_m)} m around ${coords(made.lat, made.lon)}.`, 'ok');
      announce('Caution marked.');
    } catch (err) {
      const fields = problemFields(err).filter((f) => controls[f.field]);
      fields.forEach((f) => fieldError(controls[f.field], f.message));
      if (fields.length) controls[fields[0].field].focus();
      formMsg.show(err.message, 'error');
    } finally {
      submit.disabled = false;
    }
  });

  load();
  return [section, () => {}];
}
