// Dead letters: messages whose delivery failed for good (GET /v1/dlq),
// to inspect, send again (redrive) or discard.

import { h, clear, errorBox, loading, json, time, ago, confirmDialog, toast, empty } from '../ui.js';
import * as api from '../api.js';

export const title = 'Dead letters';

const pageSize = 50;

const noDLQ = () => h('div.empty#no-dlq', 'No dead-letter queue on this server.',
  h('p.muted.small', 'GET /v1/dlq answered 404: this version of nudge does not keep dead letters.'));

export function render(main, params, { go }) {
  return params[0] ? inspect(main, params[0], go) : list(main, go);
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

function list(main) {
  const ctl = new AbortController();
  const tbody = h('tbody');
  const status = h('div', loading('loading dead letters…'));
  const more = h('button.btn.ghost', { type: 'button', hidden: true }, 'Load more');
  const refresh = h('button.btn.ghost', { type: 'button' }, 'Refresh');
  const table = h('div.table-wrap', { hidden: true }, h('table.list#dlq-list',
    h('thead', h('tr', h('th', 'failed'), h('th', 'journey'), h('th', 'step'), h('th', 'channel'),
      h('th.num', 'attempts'), h('th', 'error'), h('th', ''))), tbody));
  const total = h('span.muted');
  clear(main).append(h('div.page-head', h('h1', 'Dead letters ', total), refresh), table, status, more);
  let cursor = '';

  async function page(reset) {
    if (reset) { cursor = ''; tbody.replaceChildren(); }
    more.hidden = true;
    status.replaceChildren(loading('loading dead letters…'));
    try {
      const q = '?limit=' + pageSize + (cursor ? '&after=' + encodeURIComponent(cursor) : '');
      const r = await api.get('/v1/dlq' + q, { signal: ctl.signal });
      for (const x of (r && r.items) || []) tbody.append(row(x));
      cursor = (r && r.next) || '';
      total.textContent = r && typeof r.total === 'number' ? '(' + r.total + ')' : '';
      more.hidden = !cursor;
      table.hidden = !tbody.children.length;
      status.replaceChildren(tbody.children.length ? '' : h('div.empty#dlq-empty', 'No dead letters: every message was delivered or is still being retried.'));
    } catch (err) {
      if (err.name === 'AbortError') return;
      table.hidden = true;
      refresh.hidden = err.status === 404;
      status.replaceChildren(err.status === 404 ? noDLQ() : errorBox(err, 'Cannot list dead letters'));
    }
  }

  function row(x) {
    const link = '#/deliveries/' + encodeURIComponent(x.id);
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

  more.addEventListener('click', () => page(false));
  refresh.addEventListener('click', () => page(true));
  page(true);
  return () => ctl.abort();
}

function inspect(main, id, go) {
  const ctl = new AbortController();
  const out = h('div', loading('loading the dead letter…'));
  clear(main).append(h('div.page-head', h('h1', h('a.muted', { href: '#/deliveries' }, 'Dead letters'), ' / ', h('code', id))), out);
  api.get('/v1/dlq/' + encodeURIComponent(id), { signal: ctl.signal }).then(x => {
    const rd = h('button.btn.primary#redrive', { type: 'button' }, 'Redrive');
    const ds = h('button.btn.danger#discard', { type: 'button' }, 'Discard');
    rd.addEventListener('click', async () => { if (await act(rd, 'Redrive', () => redrive(id).then(() => true))) go('deliveries'); });
    ds.addEventListener('click', async () => { if (await act(ds, 'Discard', () => discard(id))) go('deliveries'); });
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
