// The incident log: a canvasser's report (with the position they were at), the organisers'
// and police's list, an incident's record (entries, the head of its hash chain), adding to it,
// closing it, and the printable export.

import { api, ApiError, NetworkError, serverNow } from './api.js';
import * as geo from './geo.js';
import {
  h, announce, messageArea, field, fieldError, problemFields, fullDateTime, agoEl, tickAgo,
  coords, accuracy, mapLinks, badge, confirmDialog,
} from './ui.js';

// [value, label, what it covers]: a volunteer picks by what happened, not by a legal term.
const CATEGORIES = [
  ['verbal_abuse', 'Verbal abuse', 'shouted at, insulted, sworn at'],
  ['threat', 'Threat', 'told they would hurt you, or your things'],
  ['harassment', 'Harassment', 'followed, blocked, filmed, kept from leaving'],
  ['assault', 'Assault', 'pushed, grabbed, hit, spat at: anything physical'],
  ['damage', 'Damage', 'to you, your things or your leaflets'],
  ['other', 'Something else', 'anything your organisers should know'],
];
const LABELS = new Map(CATEGORIES.map(([value, label]) => [value, label]));
const MAX_TEXT = 4000;
const PAGE = 25;

export function categoryText(category) {
  return LABELS.get(category) || category;
}

function statusBadge(incident) {
  return incident.status === 'closed' ? badge('muted', 'Closed') : badge('warn', 'Open');
}

// The current outing, if this phone has one (ids only, see canvasser.js).
function currentOutingId() {
  try {
    const o = JSON.parse(localStorage.getItem('doorstep.outing'));
    return o && o.id && o.status !== 'ended' ? o.id : null;
  } catch {
    return null;
  }
}

/** What may be done with it: the reporter and the organisation's organisers close it. */
function canClose(incident, me) {
  return incident.reporter.id === me.id || (me.role === 'organiser' && me.org_id === incident.org_id);
}

/** The head hash, short (its first 12 characters) with the whole of it on hover and a tap
 * away: enough to compare with a printed copy without filling a phone's screen. */
function hashLine(hash) {
  if (!hash) return '';
  return h(
    'details',
    { class: 'hash', id: 'incident-hash' },
    h('summary', {}, 'Fingerprint ', h('code', { title: hash }, `${hash.slice(0, 12)}…`)),
    h('p', { class: 'hint' }, 'SHA-256 of the report and every entry, in order: any later change to the record gives a different fingerprint.'),
    h('p', {}, h('code', { class: 'hash-full' }, hash)),
  );
}

function entryItem(e) {
  return h(
    'li',
    { class: 'entry', dataset: { entry: e.id } },
    h(
      'p',
      { class: 'entry-head' },
      h('strong', {}, e.author ? e.author.display_name : 'Someone'),
      ' · ',
      h('time', { datetime: e.at }, fullDateTime(e.at)),
      e.kind === 'close' ? [' · ', badge('muted', 'Closed it')] : '',
    ),
    e.text ? h('p', { class: 'pre' }, e.text) : '',
  );
}

/**
 * A blob: page keeps the CSP of the page that made it (the app's: no inline styles), so the
 * record's own <style> would be refused there. A constructed stylesheet is not markup and CSP
 * does not govern it: once the record has loaded, its stylesheet is applied that way. (The
 * saved copy, opened from a file, needs none of this.)
 */
function styleRecord(win, url, html) {
  // Not DOMParser: a parsed <style> is refused (and reported) under the app's CSP too.
  const css = [...html.matchAll(/<style[^>]*>([\s\S]*?)<\/style>/gi)].map((m) => m[1]).join('\n');
  if (!css) return;
  const started = Date.now();
  const timer = setInterval(() => {
    try {
      const doc = win.closed ? null : win.document;
      if (doc && doc.URL === url && doc.readyState !== 'loading') {
        const sheet = new win.CSSStyleSheet();
        sheet.replaceSync(css);
        doc.adoptedStyleSheets = [sheet];
        clearInterval(timer);
      }
    } catch {
      clearInterval(timer); // not ours to style after all
    }
    if (Date.now() - started > 10_000) clearInterval(timer);
  }, 100);
}

/**
 * An incident's record, kept up to date by its own forms: facts, what happened, where, the
 * entries, the fingerprint, Add an entry, Close (reporter, organisers) and Print / export.
 * `noteLabel` and `noteButton` name the add form ("Add a note" for the reporter just after
 * reporting).
 */
export function incidentRecord(initial, ctx, { noteLabel = 'Add an entry', noteButton = 'Save entry', onChange = () => {} } = {}) {
  let incident = initial;
  const root = h('div', { class: 'incident', id: 'incident', dataset: { incident: initial.id } });
  const msg = messageArea();
  msg.id = 'incident-msg';

  const text = h('textarea', { name: 'entry', rows: '3', maxlength: String(MAX_TEXT), id: 'entry-text' });
  const add = h('button', { type: 'submit', class: 'primary', id: 'entry-add' }, noteButton);
  const addMsg = messageArea();
  addMsg.id = 'entry-msg';
  const addForm = h('form', { class: 'stack', novalidate: true }, field(noteLabel, text, 'For example: a crime reference number, or what happened next.'), addMsg, add);
  addForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    fieldError(text, '');
    addMsg.show('');
    if (!text.value.trim()) {
      fieldError(text, 'Write something first.');
      text.focus();
      return;
    }
    add.disabled = true;
    try {
      incident = await api('POST', `/incidents/${incident.id}/entries`, { text: text.value.trim() });
      text.value = '';
      render();
      addMsg.show('Added to the record.', 'ok');
      announce('Added to the record.');
      onChange(incident);
    } catch (err) {
      const f = problemFields(err).find((x) => x.field === 'text');
      if (f) fieldError(text, f.message);
      // A lost answer may still have been stored: the text stays, so nothing is typed twice
      // by mistake, but the person can check the list above before sending again.
      addMsg.show(err instanceof NetworkError ? 'No connection: NOT added. Your text is still here.' : err.message, 'error');
    } finally {
      add.disabled = false;
    }
  });

  const closeNote = h('textarea', { name: 'close_note', rows: '2', maxlength: String(MAX_TEXT), id: 'close-note' });
  const close = h('button', { type: 'submit', class: 'secondary', id: 'incident-close' }, 'Close incident');
  const closeMsg = messageArea();
  const closeForm = h('form', { class: 'stack', novalidate: true }, field('Closing note (optional)', closeNote, 'For example: “Reported to police, reference 1234”.'), closeMsg, close);
  closeForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    closeMsg.show('');
    if (!(await confirmDialog('Close this incident?', 'Nothing more can be added to it. It stays in the record, and can still be read and exported.', 'Close incident'))) return;
    close.disabled = true;
    try {
      const body = closeNote.value.trim() ? { note: closeNote.value.trim() } : {};
      incident = await api('POST', `/incidents/${incident.id}/close`, body);
      closeNote.value = '';
      render();
      msg.show('Incident closed.', 'ok');
      announce('Incident closed.');
      onChange(incident);
    } catch (err) {
      closeMsg.show(err.message, 'error');
    } finally {
      close.disabled = false;
    }
  });

  const exportBtn = h('button', { type: 'button', class: 'secondary', id: 'incident-export' }, 'Print / export');
  const exportMsg = messageArea();
  exportMsg.id = 'export-msg';
  const saveLine = h('p', { class: 'links', hidden: true });
  let urls = [];
  exportBtn.addEventListener('click', async () => {
    // Opened now, while the tap still counts as one (a window opened after the download
    // would be blocked as a pop-up), and pointed at the record once it has arrived.
    const win = window.open('', '_blank');
    exportBtn.disabled = true;
    exportMsg.show('Preparing the record…');
    try {
      const html = await api('GET', `/incidents/${incident.id}/export`, null, { text: true });
      urls.forEach((u) => URL.revokeObjectURL(u));
      // The saved copy is the server's, byte for byte; the one shown here has its <style>
      // applied by styleRecord instead (left in, it would only be refused).
      const saved = URL.createObjectURL(new Blob([html], { type: 'text/html;charset=utf-8' }));
      const shown = URL.createObjectURL(new Blob([html.replace(/<style[\s\S]*?<\/style>/gi, '')], { type: 'text/html;charset=utf-8' }));
      urls = [saved, shown];
      const name = `incident-${incident.id}.html`;
      saveLine.replaceChildren(h('a', { class: 'button secondary', href: saved, download: name, id: 'incident-download' }, 'Save a copy (HTML)'));
      saveLine.hidden = false;
      if (win) {
        win.opener = null;
        win.location.href = shown;
        styleRecord(win, shown, html);
        exportMsg.show('The record opened in a new tab: print it from there (Share → Print, or the browser menu).', 'ok');
      } else {
        exportMsg.show('The browser would not open a new tab: save a copy and open it to print.', 'warn');
      }
    } catch (err) {
      if (win) win.close();
      exportMsg.show(err.message, 'error');
    } finally {
      exportBtn.disabled = false;
    }
  });

  const render = () => {
    const i = incident;
    const loc = i.location;
    const open = i.status !== 'closed';
    root.replaceChildren(
      msg,
      h(
        'section',
        { class: 'card', id: 'incident-summary' },
        h('p', { class: 'badges', id: 'incident-status' }, statusBadge(i), i.share_with_police ? badge('info', 'Shared with police') : badge('muted', 'Not shared with police')),
        h(
          'dl',
          { class: 'facts' },
          h('dt', {}, 'What'), h('dd', { id: 'incident-category' }, categoryText(i.category)),
          h('dt', {}, 'Reported by'), h('dd', {}, i.reporter.display_name),
          h('dt', {}, 'Happened'), h('dd', {}, fullDateTime(i.occurred_at), ' (', agoEl(i.occurred_at), ')'),
          h('dt', {}, 'Reported'), h('dd', { id: 'incident-reported' }, fullDateTime(i.reported_at)),
          i.outing_id ? [h('dt', {}, 'Outing'), h('dd', {}, 'during an outing')] : '',
        ),
      ),
      h('section', { class: 'card' }, h('h2', {}, 'What happened'), h('p', { class: 'pre', id: 'incident-description' }, i.description)),
      h(
        'section',
        { class: 'card', id: 'incident-where' },
        h('h2', {}, 'Where'),
        loc
          ? [h('p', { id: 'incident-coords' }, coords(loc.lat, loc.lon)), mapLinks(loc.lat, loc.lon, categoryText(i.category))]
          : h('p', {}, 'No position was sent with the report.'),
      ),
      h(
        'section',
        { class: 'card', 'aria-labelledby': 'entries-title' },
        h('h2', { id: 'entries-title' }, 'Record'),
        i.entries.length ? h('ol', { class: 'entries', id: 'incident-entries' }, i.entries.map(entryItem)) : h('p', { id: 'incident-entries' }, 'Nothing added since the report.'),
        hashLine(i.hash),
      ),
      open ? h('section', { class: 'card' }, h('h2', {}, 'Add to the record'), addForm) : h('p', { class: 'msg msg-info', role: 'status' }, 'This incident is closed.'),
      open && canClose(i, ctx.me) ? h('details', { class: 'card' }, h('summary', {}, 'Close this incident'), closeForm) : '',
      h('section', { class: 'card' }, h('h2', {}, 'Evidence record'), h('p', { class: 'hint' }, 'A printable copy of the whole record with its fingerprint, for the police or a court.'), exportBtn, exportMsg, saveLine),
    );
  };
  render();
  const ticker = setInterval(() => tickAgo(root), 30_000);
  root.stop = () => {
    clearInterval(ticker);
    urls.forEach((u) => URL.revokeObjectURL(u));
  };
  return root;
}

function incidentItem(i) {
  const excerpt = i.description.length > 140 ? `${i.description.slice(0, 140)}…` : i.description;
  return h(
    'li',
    { class: `card incident-item${i.status === 'closed' ? '' : ' is-open'}`, dataset: { incident: i.id } },
    h('h2', {}, categoryText(i.category)),
    h('p', { class: 'badges' }, statusBadge(i), i.share_with_police ? badge('info', 'Shared with police') : ''),
    h('p', {}, h('strong', {}, i.reporter.display_name), ' · ', fullDateTime(i.reported_at)),
    h('p', { class: 'pre excerpt' }, excerpt),
    h('a', { class: 'button primary', href: `/app/incidents/${i.id}` }, 'Open incident'),
  );
}

/** A list of incidents (newest first) with "Show older" while the server has more. */
function incidentList(empty) {
  const list = h('ul', { class: 'board', id: 'incidents' });
  const more = h('button', { type: 'button', class: 'secondary', id: 'incidents-more', hidden: true }, 'Show older');
  const msg = messageArea();
  let items = [];
  let cursor = null;
  const render = () => {
    // The server pages newest first; sorting again keeps that true across pages.
    const shown = [...items].sort((a, b) => Date.parse(b.reported_at) - Date.parse(a.reported_at));
    list.replaceChildren(...shown.map(incidentItem));
    if (!shown.length) list.append(h('li', { class: 'empty' }, empty));
    more.hidden = !cursor;
  };
  const load = async (older = false) => {
    try {
      const q = `?limit=${PAGE}${older && cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
      const page = await api('GET', `/incidents${q}`);
      if (older) {
        items = [...items, ...page.items.filter((i) => !items.some((x) => x.id === i.id))];
        cursor = page.next_cursor || null;
      } else {
        // A reload brings the newest page; older pages already shown stay (and so does the
        // cursor that follows them), so the list does not shrink under the reader's thumb.
        const fresh = new Set(page.items.map((i) => i.id));
        const oldest = Math.min(...page.items.map((i) => Date.parse(i.reported_at)));
        const kept = page.next_cursor ? items.filter((i) => !fresh.has(i.id) && Date.parse(i.reported_at) < oldest) : [];
        items = [...page.items, ...kept];
        if (!kept.length) cursor = page.next_cursor || null;
      }
      msg.show('');
      render();
    } catch (err) {
      msg.show(err.message, 'error');
    }
  };
  more.addEventListener('click', async () => {
    more.disabled = true;
    await load(true);
    more.disabled = false;
  });
  return { el: [msg, list, more], load };
}

export async function incidentsView(main, ctx) {
  const title = h('h1', { tabindex: '-1' }, 'Incidents');
  const intro = h(
    'p',
    { class: 'hint' },
    ctx.me.role === 'police' ? 'Incidents your organisations have shared with you, newest first.' : 'Reports from your organisation’s canvassers, newest first.',
  );
  const report = ctx.me.role === 'police' ? '' : h('a', { class: 'button primary', href: '/app/report', id: 'report-link' }, 'Report an incident');
  const { el, load } = incidentList(badge('ok', 'No incidents reported.'));
  main.replaceChildren(title, intro, report, ...el);
  const onPush = () => load();
  window.addEventListener('doorstep-push', onPush);
  const poller = setInterval(() => load(), 60_000);
  await load();
  return () => {
    window.removeEventListener('doorstep-push', onPush);
    clearInterval(poller);
  };
}

export async function incidentView(main, ctx, id) {
  const title = h('h1', { tabindex: '-1' }, 'Incident');
  const back = h('p', {}, h('a', { href: ctx.me.role === 'canvasser' ? '/app/report' : '/app/incidents' }, ctx.me.role === 'canvasser' ? '← Your reports' : '← All incidents'));
  const msg = messageArea();
  main.replaceChildren(title, back, msg);
  let record = null;
  try {
    const incident = await api('GET', `/incidents/${id}`);
    title.textContent = `${categoryText(incident.category)}: ${incident.reporter.display_name}`;
    record = incidentRecord(incident, ctx);
    main.append(record);
  } catch (err) {
    msg.show(err instanceof ApiError && err.status === 404 ? 'No such incident, or it is not yours to see.' : err.message, 'error');
  }
  return () => {
    if (record) record.stop();
  };
}

function positionLine(el, include) {
  let fix = null;
  let error = null;
  const paint = () => {
    el.replaceChildren(h('span', { 'aria-hidden': 'true' }, '◉ '));
    if (!include.checked) {
      el.append('Your position will not be sent.');
    } else if (fix) {
      el.append('Will send ', h('strong', {}, coords(fix.lat, fix.lon)), ` ${accuracy(fix.accuracy_m)} · `, agoEl(new Date(fix.at).toISOString()));
    } else {
      el.append(error ? `${error} The report will be sent without a position.` : 'Finding your location… (without one, the report is sent with no position)');
    }
  };
  include.addEventListener('change', paint);
  return geo.watch((f, e) => {
    fix = f;
    error = e;
    paint();
  });
}

export async function reportView(main, ctx) {
  const cleanups = [];
  const title = h('h1', { tabindex: '-1' }, 'Report an incident');
  const body = h('div');
  const earlier = h('section', { class: 'card', 'aria-labelledby': 'earlier-title' });
  main.replaceChildren(
    title,
    h('p', {}, 'Anything that happened while canvassing: your organisers read it, and it is kept as a record that cannot be changed later.'),
    h('p', { class: 'msg msg-warn' }, h('span', { 'aria-hidden': 'true' }, '⚠ '), 'In danger now? Call 999 / 112, or use Panic on the outing screen.'),
    body,
  );
  if (ctx.me.role === 'canvasser') main.append(earlier);

  const form = () => {
    cleanups.splice(0).forEach((f) => f());
    const category = h(
      'fieldset',
      { id: 'report-category', tabindex: '-1' },
      h('legend', {}, 'What happened?'),
      CATEGORIES.map(([value, label, what]) =>
        h(
          'div',
          { class: 'check' },
          h('input', { type: 'radio', name: 'category', value, id: `category-${value}` }),
          h('label', { for: `category-${value}` }, label, h('span', { class: 'hint' }, what)),
        ),
      ),
    );
    const description = h('textarea', { name: 'description', rows: '5', maxlength: String(MAX_TEXT), id: 'report-description' });
    const when = h('input', { type: 'time', name: 'occurred_at', id: 'report-when' });
    const include = h('input', { type: 'checkbox', name: 'position', id: 'report-position', checked: true });
    const where = h('p', { class: 'location', id: 'report-location' });
    cleanups.push(positionLine(where, include));
    const share = h('input', { type: 'checkbox', name: 'share_with_police', id: 'report-share' });
    const outingId = currentOutingId();
    const msg = messageArea();
    msg.id = 'report-msg';
    const submit = h('button', { type: 'submit', class: 'big primary', id: 'report-send' }, 'Send report');
    const el = h(
      'form',
      { class: 'stack', novalidate: true },
      category,
      field('Describe what happened', description, 'In your own words: what was said or done, and by whom (what they looked like, not a guess at their name).'),
      field('When did it happen? (optional)', when, 'Leave empty if it has just happened.'),
      h(
        'fieldset',
        { id: 'report-where' },
        h('legend', {}, 'Where'),
        h('div', { class: 'check' }, include, h('label', { for: 'report-position' }, 'Send my position with the report')),
        where,
      ),
      h(
        'div',
        { class: 'field' },
        h('div', { class: 'check' }, share, h('label', { for: 'report-share' }, 'Share with the police contact')),
        h('span', { class: 'hint', id: 'report-share-hint' }, 'Your organisation’s police contact can then read this report and add to it. Your organisers see it either way.'),
      ),
      outingId ? h('p', { class: 'hint' }, 'It will be linked to your current outing.') : '',
      msg,
      submit,
    );
    share.setAttribute('aria-describedby', 'report-share-hint');
    const controls = { category, description, occurred_at: when, lat: include, lon: include, share_with_police: share, outing_id: include };
    el.addEventListener('submit', async (e) => {
      e.preventDefault();
      msg.show('');
      Object.values(controls).forEach((c) => fieldError(c, ''));
      const picked = el.querySelector('input[name="category"]:checked');
      const wrong = [];
      if (!picked) wrong.push(['category', 'Choose what happened (“Something else” if none fits).']);
      if (!description.value.trim()) wrong.push(['description', 'Describe what happened.']);
      if (wrong.length) {
        wrong.forEach(([f, text]) => fieldError(controls[f], text));
        controls[wrong[0][0]].focus();
        return;
      }
      const req = { category: picked.value, description: description.value.trim(), share_with_police: share.checked };
      if (when.value) {
        const [hh, mm] = when.value.split(':').map(Number);
        const at = new Date(serverNow());
        at.setHours(hh, mm, 0, 0);
        // A time later than now was yesterday evening.
        if (at.getTime() > serverNow()) at.setDate(at.getDate() - 1);
        req.occurred_at = at.toISOString();
      }
      submit.disabled = true;
      if (include.checked) {
        msg.show('Getting your position…');
        const fix = await geo.current(30_000);
        if (fix) Object.assign(req, { lat: fix.lat, lon: fix.lon });
      }
      if (outingId) req.outing_id = outingId;
      msg.show('Sending…');
      try {
        const incident = await api('POST', '/incidents', req);
        announce('Report sent.');
        done(incident);
      } catch (err) {
        // The outing may have ended on another device: send the report without it.
        if (err instanceof ApiError && req.outing_id && problemFields(err).some((f) => f.field === 'outing_id')) {
          localStorage.removeItem('doorstep.outing');
        }
        const fields = problemFields(err).filter((f) => controls[f.field]);
        fields.forEach((f) => fieldError(controls[f.field], f.message));
        msg.show(err instanceof NetworkError ? 'No connection: the report was NOT sent. Your text is still here: send it again when you have signal.' : err.message, 'error');
        submit.disabled = false;
      }
    });
    body.replaceChildren(el);
  };

  const done = (incident) => {
    cleanups.splice(0).forEach((f) => f());
    title.textContent = 'Report sent';
    const record = incidentRecord(incident, ctx, { noteLabel: 'Add a note', noteButton: 'Save note', onChange: () => loadEarlier() });
    cleanups.push(() => record.stop());
    const again = h('button', { type: 'button', class: 'secondary', id: 'report-another' }, 'Report something else');
    again.addEventListener('click', () => {
      title.textContent = 'Report an incident';
      form();
      title.focus();
    });
    body.replaceChildren(
      h('p', { class: 'msg msg-ok', role: 'status', id: 'report-done' }, h('span', { 'aria-hidden': 'true' }, '✓ '), `Report sent at ${fullDateTime(incident.reported_at)}. Your organisers can read it now.`),
      record,
      again,
    );
    title.focus();
    loadEarlier();
  };

  const loadEarlier = async () => {
    if (ctx.me.role !== 'canvasser') return;
    earlier.replaceChildren(h('h2', { id: 'earlier-title' }, 'Your reports'));
    try {
      const { items } = await api('GET', `/incidents?limit=${PAGE}`);
      if (!items.length) {
        earlier.append(h('p', {}, 'None yet.'));
        return;
      }
      earlier.append(
        h(
          'ul',
          { class: 'plain', id: 'my-incidents' },
          items.map((i) =>
            h('li', {}, h('a', { class: 'button secondary', href: `/app/incidents/${i.id}` }, `${categoryText(i.category)} · ${fullDateTime(i.reported_at)} · ${i.status === 'closed' ? 'closed' : 'open'}`)),
          ),
        ),
      );
    } catch (err) {
      earlier.append(h('p', { class: 'hint' }, `Could not load your reports: ${err.message}`));
    }
  };

  form();
  loadEarlier();
  return () => cleanups.splice(0).forEach((f) => f());
}
