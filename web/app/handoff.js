// "Hand to police" on the alert screen (organisers, police): makes a hand-off link
// (POST /alerts/{id}/handoff) that the police open without an account, and offers it as a
// copy, through the phone's share sheet, or as a QR code to scan off this screen; "Withdraw
// link" stops it (DELETE). The token is shown only in the answer that made it: leaving the
// screen forgets it here (a new one can always be made, and replaces it).

import { api } from './api.js';
import { h, announce, messageArea, field, fullDateTime, confirmDialog } from './ui.js';

/** The section, and a function that tidies up when the screen goes. */
export function handoffCard(alertId) {
  const section = h('section', { class: 'card', id: 'alert-handoff', 'aria-labelledby': 'handoff-title' });
  const msg = messageArea();
  msg.id = 'handoff-msg';
  const make = h('button', { type: 'button', class: 'primary', id: 'handoff-make' }, 'Hand to police');
  const withdraw = h('button', { type: 'button', class: 'secondary', id: 'handoff-withdraw' }, 'Withdraw link');
  const result = h('div', { class: 'stack', id: 'handoff-link', hidden: true });
  section.append(
    h('h2', { id: 'handoff-title' }, 'Hand to police'),
    h(
      'p',
      { class: 'hint' },
      'A link the police open without an account: this alert, the person and their phone, who is with them, the note, their trail and a map. ' +
        'It works for 24 hours, or until an hour after the alert is resolved, and every opening is recorded. Give it only to the police.',
    ),
    msg,
    result,
    h('div', { class: 'row' }, make, withdraw),
  );

  let link = null;
  let gone = false;

  const showLink = () => {
    const input = h('input', { type: 'text', readonly: true, value: link.url, id: 'handoff-url', spellcheck: 'false', autocomplete: 'off' });
    input.addEventListener('focus', () => input.select());
    const copy = h('button', { type: 'button', class: 'primary', id: 'handoff-copy' }, 'Copy link');
    copy.addEventListener('click', async () => {
      let done = false;
      try {
        if (navigator.clipboard && window.isSecureContext) {
          await navigator.clipboard.writeText(link.url);
          done = true;
        }
      } catch {
        done = false;
      }
      if (!done) {
        input.focus();
        input.select();
        try {
          done = document.execCommand('copy');
        } catch {
          done = false;
        }
      }
      msg.show(done ? 'Link copied.' : 'Could not copy: the link is selected, copy it by hand.', done ? 'ok' : 'error');
      if (done) announce('Link copied.');
    });
    const buttons = [copy];
    if (typeof navigator.share === 'function') {
      const share = h('button', { type: 'button', class: 'secondary', id: 'handoff-share' }, 'Share…');
      share.addEventListener('click', async () => {
        try {
          await navigator.share({ title: 'Doorstep alert hand-off', text: 'Doorstep alert: the page for the police (no account needed).', url: link.url });
        } catch (err) {
          // Closing the share sheet is not an error.
          if (err && err.name !== 'AbortError') msg.show(`Could not share: ${err.message}`, 'error');
        }
      });
      buttons.push(share);
    }
    const qr = h('figure', { class: 'qr', id: 'handoff-qr', hidden: true },
      h('img', {
        src: `data:image/svg+xml;charset=utf-8,${encodeURIComponent(link.qr_svg)}`,
        alt: 'QR code of the hand-off link: scan it with the phone that needs the page',
        width: '240',
        height: '240',
      }),
      h('figcaption', {}, 'Scan with the phone that needs the page.'));
    const toggle = h('button', { type: 'button', class: 'secondary', id: 'handoff-show-qr', 'aria-expanded': 'false', 'aria-controls': 'handoff-qr' }, 'Show QR code');
    toggle.addEventListener('click', () => {
      qr.hidden = !qr.hidden;
      toggle.setAttribute('aria-expanded', String(!qr.hidden));
      toggle.textContent = qr.hidden ? 'Show QR code' : 'Hide QR code';
    });
    buttons.push(toggle);
    result.replaceChildren(
      field('Link for the police', input, `Works until ${fullDateTime(link.expires_at)}, unless withdrawn.`),
      h('div', { class: 'row' }, buttons),
      qr,
    );
    result.hidden = false;
    make.textContent = 'Make a new link (this one stops)';
  };

  make.addEventListener('click', async () => {
    msg.show('');
    make.disabled = true;
    try {
      const made = await api('POST', `/alerts/${alertId}/handoff`, {});
      if (gone) return;
      link = made;
      showLink();
      msg.show('Link made. Give it to the police: copy it, share it or show the QR code.', 'ok');
      announce('Hand-off link made.');
      document.getElementById('handoff-url').focus();
    } catch (err) {
      msg.show(err.message, 'error');
    } finally {
      make.disabled = false;
    }
  });

  withdraw.addEventListener('click', async () => {
    const sure = await confirmDialog('Withdraw the link?', 'The police page of this alert stops working at once, for everyone who has the link.', 'Withdraw link', true);
    if (!sure || gone) return;
    msg.show('');
    try {
      await api('DELETE', `/alerts/${alertId}/handoff`);
      link = null;
      result.hidden = true;
      result.replaceChildren();
      make.textContent = 'Hand to police';
      msg.show('Link withdrawn: it no longer opens.', 'ok');
      announce('Hand-off link withdrawn.');
    } catch (err) {
      msg.show(err.message, 'error');
    }
  });

  return [section, () => {
    gone = true;
  }];
}
