// Profiles: find a person by any identifier, see everything nudge holds on
// them, their timeline, and erase them.

import { h, clear, errorBox, loading, json, time, num, eventTitle, confirmDialog, toast, empty } from '../ui.js';
import * as api from '../api.js';

export const title = 'Profiles';

const pageSize = 25;

export function render(main, params, { go }) {
  const id = params[0] || '';
  const input = h('input#profile-search', {
    type: 'search', name: 'id', value: id, required: true, autocomplete: 'off', spellcheck: 'false',
    placeholder: 'userId, anonymousId, email, phone or profile id', 'aria-label': 'Identifier',
  });
  const form = h('form.toolbar.search', {
    onsubmit: ev => { ev.preventDefault(); const v = input.value.trim(); if (v) go('profiles', v); },
  }, input, h('button.btn.primary', { type: 'submit' }, 'Find'));
  const out = h('div.profile-out');
  clear(main).append(h('div.page-head', h('h1', 'Profiles')), form, out);
  if (!id) {
    out.append(empty('Search for a person by any of their identifiers: a userId, an anonymousId, an email (any letter case), a phone number or the profile id.'));
    input.focus();
    return null;
  }
  const ctl = new AbortController();
  out.append(loading('loading the profile…'));
  api.get('/v1/profiles/' + encodeURIComponent(id), { signal: ctl.signal })
    .then(p => clear(out).append(view(p, id, ctl, go)))
    .catch(err => {
      if (err.name === 'AbortError') return;
      clear(out).append(err.status === 404
        ? h('div.empty', 'No profile has the identifier ', h('code', id), '.')
        : errorBox(err, 'Cannot load the profile'));
    });
  return () => ctl.abort();
}

function view(p, asked, ctl, go) {
  const c = p.computed || {};
  const erase = h('button.btn.danger#erase', { type: 'button' }, 'Erase…');
  const exportBtn = h('button.btn.ghost', { type: 'button' }, 'Export JSON');
  erase.addEventListener('click', async () => {
    const ok = await confirmDialog({
      title: 'Erase this person?',
      body: [
        h('p', 'This erases profile ', h('code', p.id), ' and its ', String((p.identities || []).length), ' identifiers for good: ',
          'their keys are destroyed, so every copy of their events, backups included, becomes unreadable, and later events for them are dropped.'),
        h('p', h('strong', 'It cannot be undone.')),
      ],
      confirm: 'Erase for good', danger: true,
    });
    if (!ok) return;
    erase.disabled = true;
    erase.replaceChildren(h('span.spinner.small'), ' erasing…');
    try {
      const r = await api.request('DELETE', '/v1/profiles/' + encodeURIComponent(p.id));
      toast(`Erased: ${r && r.identities} identifiers`);
      go('profiles');
    } catch (err) {
      erase.disabled = false;
      erase.textContent = 'Erase…';
      toast('Erase failed: ' + err.message, 'bad');
    }
  });
  exportBtn.addEventListener('click', async () => {
    exportBtn.disabled = true;
    try {
      const doc = await api.get('/v1/profiles/' + encodeURIComponent(p.id) + '/export');
      const url = URL.createObjectURL(new Blob([JSON.stringify(doc, null, 2)], { type: 'application/json' }));
      const a = h('a', { href: url, download: 'profile-' + p.id + '.json' });
      document.body.append(a); a.click(); a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    } catch (err) {
      toast('Export failed: ' + err.message, 'bad');
    } finally { exportBtn.disabled = false; }
  });

  const traits = p.traits || {};
  return h('div.profile#profile',
    h('div.card.profile-head',
      h('div',
        h('div.label', 'Profile'),
        h('h2.profile-id', h('code', p.id)),
        asked !== p.id ? h('div.muted', 'found by ', h('code', asked)) : null),
      h('div.actions', exportBtn, erase)),
    h('div.grid2',
      card('Identities', p.identities && p.identities.length
        ? h('ul.chips#identities', p.identities.map(x => h('li.chip', h('span.chip-type', x.type), ' ', x.id)))
        : empty('none')),
      card('Traits', Object.keys(traits).length ? kv(traits, 'traits') : empty('No traits yet.')),
      card('Computed', h('div',
        kv({ 'first seen': time(c.firstSeen), 'last seen': time(c.lastSeen), orders: num(c.orders), revenue: num(c.revenue) }),
        c.counts && Object.keys(c.counts).length ? [h('h3', 'Events'), kv(Object.fromEntries(
          Object.entries(c.counts).sort((a, b) => b[1] - a[1]).map(([k, v]) => [k, num(v)])))] : null,
        c.cart && c.cart.length ? [h('h3', 'Cart'), cart(c.cart)] : null,
        c.dropped ? [h('h3', 'Dropped'), kv(c.dropped)] : null)),
      card('Consent, subscriptions, timezone', h('div',
        h('h3', 'Consent'), pills(p.consent),
        h('h3', 'Subscriptions'), pills(p.subscriptions),
        h('h3', 'Timezone'), h('p', p.timezone || h('span.muted', 'unknown')),
        p.refusedLinks ? h('p.warn-text', `${p.refusedLinks} identifier links refused by the caps`) : null))),
    timeline(p.id, ctl));
}

function card(title, body) { return h('section.card', h('h2', title), body); }

function kv(obj, id) {
  return h('table.kv', { id: id ? 'kv-' + id : null }, h('tbody', Object.entries(obj).map(([k, v]) =>
    h('tr', h('th', k), h('td', typeof v === 'string' || typeof v === 'number' ? String(v) : JSON.stringify(v))))));
}

function pills(obj) {
  const entries = Object.entries(obj || {});
  if (!entries.length) return h('p.muted', 'none recorded');
  return h('div.pills', entries.map(([k, v]) => h('span.pill.' + (v ? 'ok' : 'bad'), k + ': ' + (v ? 'yes' : 'no'))));
}

function cart(items) {
  return h('table.list', h('thead', h('tr', h('th', 'item'), h('th', 'sku'), h('th.num', 'qty'), h('th.num', 'price'))),
    h('tbody', items.map(x => h('tr', h('td', x.name || x.productId || x.id), h('td', x.sku || ''),
      h('td.num', num(x.quantity)), h('td.num', num(x.price))))));
}

// timeline lists the person's events, newest first, a page at a time.
function timeline(id, ctl) {
  const list = h('ol.event-list.timeline#timeline');
  const more = h('button.btn.ghost', { type: 'button' }, 'Load older events');
  const status = h('div');
  const el = h('section.card', h('h2', 'Timeline'), list, status, more);
  let cursor = '';
  async function page() {
    more.hidden = true;
    status.replaceChildren(loading('loading events…'));
    try {
      const q = '?limit=' + pageSize + (cursor ? '&before=' + encodeURIComponent(cursor) : '');
      const r = await api.get('/v1/profiles/' + encodeURIComponent(id) + '/events' + q, { signal: ctl.signal });
      for (const e of r.events || []) list.append(entry(e));
      cursor = r.next || '';
      more.hidden = !cursor;
      status.replaceChildren(list.children.length ? '' : empty('No events.'));
    } catch (err) {
      if (err.name === 'AbortError') return;
      status.replaceChildren(errorBox(err, 'Cannot load the timeline'));
      more.hidden = false;
    }
  }
  more.addEventListener('click', page);
  page();
  return el;
}

function entry(e) {
  const body = h('div.event-body');
  const li = h('li.event',
    h('button.event-row', {
      type: 'button',
      onclick: () => {
        li.classList.toggle('open');
        if (!body.firstChild) body.append(json(e));
      },
    },
    h('span.badge.t-' + (e.type || 'x'), e.type || '?'),
    h('span.ev-name', eventTitle(e)),
    h('span.ev-user', e.userId || e.anonymousId || ''),
    h('span.ev-source.muted', e.source || ''),
    h('time.ev-time', { datetime: e.timestamp || '' }, time(e.timestamp))),
    body);
  return li;
}
