// Deliveries: the messages waiting in the outbox for their channel
// (GET /v1/deliveries), due now or waiting for a retry, to inspect; and the
// dead letters, messages whose delivery failed for good (GET /v1/dlq), to
// inspect, send again (redrive) or discard.
//
// Routes: #/deliveries (queued), #/deliveries/queued/ID, #/deliveries/dead,
// #/deliveries/dead/ID (and #/deliveries/ID, the dead letter's old link).

import { h, clear, errorBox, loading, json, time, ago, confirmDialog, toast, empty } from '../ui.js';
import * as api from '../api.js';

export const title = 'Deliveries';

const pageSize = 50;

const noDLQ = () => h('div.empty#no-dlq', 'No dead-letter queue on this server.',
  h('p.muted.small', 'GET /v1/dlq answered 404: this version of nudge does not keep dead letters.'));

const noOutbox = () => h('div.empty#no-outbox', 'This server does not list its queued deliveries.',
  h('p.muted.small', 'GET /v1/deliveries answered 404: this version of nudge has no outbox listing.'));

export function render(main, params, { go }) {
  const [a, b] = params;
  if (a === 'queued' && b) return inspectQueued(main, b);
  if (a === 'dead' && b) return inspectDead(main, b, go);
  if (a === 'dead') return listDead(main);
  if (a && a !== 'queued') return inspectDead(main, a, go);
  return listQueued(main);
}

// tabs is the page's header: its title, the two lists and the page's own
// buttons.
function tabs(current, ...buttons) {
  const tab = (name, href, label) => h('a.tab#tab-' + name,
    { href, role: 'tab', 'aria-selected': String(current === name), class: current === name ? 'active' : null }, label);
  return [
    h('div.page-head', h('h1', 'Deliveries'), h('div.actions', buttons)),
    h('nav.tabs', { role: 'tablist', 'aria-label': 'Deliveries' },
      tab('queued', '#/deliveries', 'Queued'), tab('dead', '#/deliveries/dead', 'Dead letters')),
  ];
}

// when says when a due time is, from now: "in 3 min", "due now", "2 min overdue".
function when(t) {
  const sec = (new Date(t).getTime() - Date.now()) / 1000;
  if (Number.isNaN(sec)) return '';
  const span = s => {
    if (s < 59.5) return Math.round(s) + ' s';
    if (Math.round(s / 60) < 60) return Math.round(s / 60) + ' min';
    if (Math.round(s / 3600) < 24) return Math.round(s / 3600) + ' h';
    return Math.round(s / 86400) + ' d';
  };
  if (Math.abs(sec) < 5) return 'due now';
  return sec > 0 ? 'in ' + span(sec) : span(-sec) + ' overdue';
}

function stateBadges(x) {
  return [
    x.inFlight ? h('span.badge.in-flight', { title: 'an attempt is under way (or was, when nudge stopped during it)' }, 'in flight') : null,
    x.transactional ? h('span.badge.transactional', 'transactional') : null,
  ];
}

// pager returns page(reset), which loads the next page of the list at path
// (from the start when reset) and hands it to onPage, or its error to
// onError; more is the "Load more" button, shown while there is a next page.
function pager(path, tbody, status, more, label, { onPage, onError, signal }) {
  let cursor = '';
  return async function page(reset) {
    if (reset) { cursor = ''; tbody.replaceChildren(); }
    more.hidden = true;
    status.replaceChildren(loading('loading ' + label + '…'));
    try {
      const q = '?limit=' + pageSize + (cursor ? '&after=' + encodeURIComponent(cursor) : '');
      const r = await api.get(path + q, { signal });
      cursor = (r && r.next) || '';
      more.hidden = !cursor;
      onPage(r || {});
    } catch (err) {
      if (err.name === 'AbortError') return;
      onError(err);
    }
  };
}

function listQueued(main) {
  const ctl = new AbortController();
  const tbody = h('tbody');
  const status = h('div');
  const more = h('button.btn.ghost', { type: 'button', hidden: true }, 'Load more');
  const refresh = h('button.btn.ghost', { type: 'button' }, 'Refresh');
  const table = h('div.table-wrap', { hidden: true }, h('table.list#queue-list',
    h('thead', h('tr', h('th', 'due'), h('th', 'journey'), h('th', 'step'), h('th', 'channel'),
      h('th.num', 'attempts'), h('th', 'queued'), h('th', ''))), tbody));
  clear(main).append(...tabs('queued', refresh),
    h('p.muted.small', 'Messages waiting for their channel: due now, or waiting for their next attempt after a provider asked to retry. Soonest first.'),
    table, status, more);

  const row = x => {
    const link = '#/deliveries/queued/' + encodeURIComponent(x.id);
    return h('tr', { dataset: { id: x.id } },
      h('td', h('a', { href: link, title: time(x.due) }, when(x.due) || time(x.due))),
      h('td', x.journey, x.version !== undefined ? h('span.muted', ' v' + x.version) : null),
      h('td', x.step), h('td', h('span.badge', x.channel)), h('td.num', String(x.attempts ?? '')),
      h('td', { title: time(x.createdAt) }, ago(x.createdAt)),
      h('td', stateBadges(x)));
  };
  const page = pager('/v1/deliveries', tbody, status, more, 'queued deliveries', {
    signal: ctl.signal,
    onPage: r => {
      for (const x of r.items || []) tbody.append(row(x));
      table.hidden = !tbody.children.length;
      status.replaceChildren(tbody.children.length ? '' : h('div.empty#queue-empty', 'Nothing queued: every message was delivered or dead-lettered.'));
    },
    onError: err => {
      table.hidden = true;
      refresh.hidden = err.status === 404;
      status.replaceChildren(err.status === 404 ? noOutbox() : errorBox(err, 'Cannot list the queued deliveries'));
    },
  });
  more.addEventListener('click', () => page(false));
  refresh.addEventListener('click', () => page(true));
  page(true);
  return () => ctl.abort();
}

function inspectQueued(main, id) {
  const ctl = new AbortController();
  const out = h('div', loading('loading the delivery…'));
  clear(main).append(h('div.page-head', h('h1', h('a.muted', { href: '#/deliveries' }, 'Queued'), ' / ', h('code', id))), out);
  api.get('/v1/deliveries/' + encodeURIComponent(id), { signal: ctl.signal }).then(x => {
    const msg = x.message;
    const rest = { ...x };
    delete rest.message;
    clear(out).append(
      h('div.card.profile-head#delivery', h('div',
        h('div.label', 'Due ' + time(x.due) + ' · ' + when(x.due)),
        h('h2', x.journey, h('span.muted', ' v' + x.version), ' / ', x.step, ' ', h('span.badge', x.channel))),
      h('div.actions', stateBadges(x))),
      h('section.card', h('h2', 'Delivery'), h('table.kv#delivery-state', h('tbody',
        h('tr', h('th', 'attempts so far'), h('td', String(x.attempts))),
        h('tr', h('th', 'next attempt'), h('td', time(x.due), h('span.muted', ' (' + when(x.due) + ')'))),
        h('tr', h('th', 'decided to send'), h('td', time(x.createdAt), h('span.muted', ' (' + ago(x.createdAt) + ')'))),
        h('tr', h('th', 'kind'), h('td', x.transactional ? 'transactional' : 'marketing'))))),
      msg ? h('div.grid2',
        h('section.card#delivery-recipient', h('h2', 'Recipient'), json(msg.recipient || {})),
        h('section.card#delivery-message', h('h2', 'Message'), json(msg.fields || {})))
        : h('p.note', 'The message cannot be read: its person was erased. It is not sent.'),
      h('details.card', h('summary', 'Everything'), json(rest)),
      h('p.muted.small', 'A delivery tried again gets a new id; one sent or dead-lettered leaves the queue. ', h('a', { href: '#/deliveries' }, 'Back to the queue')));
  }).catch(err => {
    if (err.name === 'AbortError') return;
    clear(out).append(err.status === 404
      ? h('div.empty#no-delivery', 'No delivery ' + id + ' in the queue: sent, tried again under a new id, or dead-lettered since. ',
        h('a', { href: '#/deliveries' }, 'See the queue'), ' or ', h('a', { href: '#/deliveries/dead' }, 'the dead letters'), '.')
      : errorBox(err, 'Cannot load the delivery'));
  });
  return () => ctl.abort();
}

async function redrive(id) {
  await api.request('POST', '/v1/dlq/' + encodeURIComponent(id) + '/redrive');
  toast('Redriven: the message is queued for delivery again.');
}

async function discard(id) {
  const ok = await confirmDialog({
    title: 'Discard this dead letter?',
    body: h('p', 'The message ', h('code', id), ' will never be sent. This cannot be undone.'),
    confirm: 'Discard', danger: true,
  });
  if (!ok) return false;
  await api.request('DELETE', '/v1/dlq/' + encodeURIComponent(id));
  toast('Discarded.');
  return true;
}

// act runs a row or page action with the button showing its progress.
async function act(button, label, f) {
  button.disabled = true;
  button.replaceChildren(h('span.spinner.small'), ' ' + label + '…');
  try {
    return await f();
  } catch (err) {
    toast(label + ' failed: ' + err.message, 'bad');
    return false;
  } finally {
    button.disabled = false;
    button.textContent = label;
  }
}

function listDead(main) {
  const ctl = new AbortController();
  const tbody = h('tbody');
  const status = h('div');
  const more = h('button.btn.ghost', { type: 'button', hidden: true }, 'Load more');
  const refresh = h('button.btn.ghost', { type: 'button' }, 'Refresh');
  const table = h('div.table-wrap', { hidden: true }, h('table.list#dlq-list',
    h('thead', h('tr', h('th', 'failed'), h('th', 'journey'), h('th', 'step'), h('th', 'channel'),
      h('th.num', 'attempts'), h('th', 'error'), h('th', ''))), tbody));
  const total = h('span.muted#dlq-total');
  clear(main).append(...tabs('dead', refresh),
    h('p.muted.small', 'Messages whose delivery failed for good, or that were in doubt after a crash. Oldest first. ', total),
    table, status, more);

  function row(x) {
    const link = '#/deliveries/dead/' + encodeURIComponent(x.id);
    const rd = h('button.btn.small', { type: 'button' }, 'Redrive');
    const ds = h('button.btn.small.ghost.danger-text', { type: 'button' }, 'Discard');
    const tr = h('tr',
      h('td', h('a', { href: link, title: time(x.failedAt) }, ago(x.failedAt) || time(x.failedAt))),
      h('td', x.journey, x.version !== undefined ? h('span.muted', ' v' + x.version) : null),
      h('td', x.step), h('td', h('span.badge', x.channel)), h('td.num', String(x.attempts ?? '')),
      h('td.error-cell', { title: x.error || '' }, x.error || ''),
      h('td.actions', rd, ds));
    rd.addEventListener('click', async () => { if (await act(rd, 'Redrive', () => redrive(x.id).then(() => true))) tr.remove(); });
    ds.addEventListener('click', async () => { if (await act(ds, 'Discard', () => discard(x.id))) tr.remove(); });
    return tr;
  }

  const page = pager('/v1/dlq', tbody, status, more, 'dead letters', {
    signal: ctl.signal,
    onPage: r => {
      for (const x of r.items || []) tbody.append(row(x));
      total.textContent = typeof r.total === 'number' ? r.total + ' in the queue.' : '';
      table.hidden = !tbody.children.length;
      status.replaceChildren(tbody.children.length ? '' : h('div.empty#dlq-empty', 'No dead letters: every message was delivered or is still being retried.'));
    },
    onError: err => {
      table.hidden = true;
      refresh.hidden = err.status === 404;
      status.replaceChildren(err.status === 404 ? noDLQ() : errorBox(err, 'Cannot list dead letters'));
    },
  });
  more.addEventListener('click', () => page(false));
  refresh.addEventListener('click', () => page(true));
  page(true);
  return () => ctl.abort();
}

function inspectDead(main, id, go) {
  const ctl = new AbortController();
  const out = h('div', loading('loading the dead letter…'));
  clear(main).append(h('div.page-head', h('h1', h('a.muted', { href: '#/deliveries/dead' }, 'Dead letters'), ' / ', h('code', id))), out);
  api.get('/v1/dlq/' + encodeURIComponent(id), { signal: ctl.signal }).then(x => {
    const rd = h('button.btn.primary#redrive', { type: 'button' }, 'Redrive');
    const ds = h('button.btn.danger#discard', { type: 'button' }, 'Discard');
    rd.addEventListener('click', async () => { if (await act(rd, 'Redrive', () => redrive(id).then(() => true))) go('deliveries', 'dead'); });
    ds.addEventListener('click', async () => { if (await act(ds, 'Discard', () => discard(id))) go('deliveries', 'dead'); });
    const msg = x.message || {};
    const rest = { ...x };
    delete rest.message;
    clear(out).append(
      h('div.card.profile-head', h('div',
        h('div.label', 'Failed ' + time(x.failedAt)),
        h('h2', x.journey, h('span.muted', ' v' + x.version), ' / ', x.step, ' ', h('span.badge', x.channel))),
      h('div.actions', rd, ds)),
      h('section.card', h('h2', 'Error'), h('p.error-text', x.error || ''), h('p.muted', `${x.attempts} attempt${x.attempts === 1 ? '' : 's'}`)),
      h('div.grid2',
        h('section.card', h('h2', 'Recipient'), json(msg.recipient || msg.Recipient || {})),
        h('section.card', h('h2', 'Message'), json(msg.fields || msg.Fields || {}))),
      h('details.card', h('summary', 'Everything'), json(rest)));
  }).catch(err => {
    if (err.name === 'AbortError') return;
    clear(out).append(err.status === 404 ? empty('No dead letter ' + id + ' here: redriven or discarded already, or this server keeps none.')
      : errorBox(err, 'Cannot load the dead letter'));
  });
  return () => ctl.abort();
}
