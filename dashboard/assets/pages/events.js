// Event debugger: the live stream of incoming events (GET
// /v1/events/stream), newest on top, filtered as you type; a row opens to
// the event's JSON.

import { h, clear, errorBox, json, clock, eventTitle, who } from '../ui.js';
import * as api from '../api.js';

export const title = 'Event debugger';

const keep = 500; // events held in the page

export function render(main) {
  const filter = h('input#event-filter', {
    type: 'search', placeholder: 'Filter by event name, user or type', 'aria-label': 'Filter events',
    autocomplete: 'off', spellcheck: 'false',
  });
  const pause = h('button.btn.ghost#pause', { type: 'button', 'aria-pressed': 'false' }, 'Pause');
  const clearBtn = h('button.btn.ghost', { type: 'button' }, 'Clear');
  const status = h('span.stream-status#stream-status', { role: 'status' });
  const counter = h('span.muted');
  const list = h('ol.event-list#event-list', { 'aria-live': 'off' });
  const hint = h('div.empty', 'Waiting for events… send one to the tracking API (',
    h('code', 'curl -u KEY: …/v1/track'), ') and it shows up here.');
  clear(main).append(
    h('div.page-head', h('h1', 'Event debugger'), status),
    h('div.toolbar', filter, pause, clearBtn, counter),
    hint, list);

  let events = []; // newest first
  let paused = false, held = [];
  const ctl = new AbortController();

  const matches = e => {
    const q = filter.value.trim().toLowerCase();
    if (!q) return true;
    return [e.event, e.name, e.type, e.userId, e.anonymousId, e.messageId, e.source, e.groupId, e.previousId]
      .some(v => v && String(v).toLowerCase().includes(q));
  };

  function row(e) {
    const body = h('div.event-body');
    const li = h('li.event', { dataset: { type: e.type || '' } },
      h('button.event-row', {
        type: 'button', 'aria-expanded': 'false',
        onclick: () => {
          const open = !li.classList.contains('open');
          li.classList.toggle('open', open);
          li.firstChild.setAttribute('aria-expanded', String(open));
          if (open && !body.firstChild) {
            const id = who(e);
            body.append(
              h('div.event-actions',
                id ? h('a.btn.small', { href: '#/profiles/' + encodeURIComponent(id) }, 'Open profile') : null,
                h('button.btn.small.ghost', { type: 'button', onclick: () => navigator.clipboard && navigator.clipboard.writeText(JSON.stringify(e, null, 2)) }, 'Copy JSON')),
              json(e));
          }
        },
      },
      h('span.badge.t-' + (e.type || 'x'), e.type || '?'),
      h('span.ev-name', eventTitle(e)),
      h('span.ev-user', who(e)),
      h('span.ev-source.muted', e.source || ''),
      h('time.ev-time', { datetime: e.receivedAt || '' }, clock(e.receivedAt || e.timestamp))),
      body);
    li.hidden = !matches(e);
    return li;
  }

  function add(e) {
    if (paused) { held.push(e); pause.textContent = `Resume (${held.length} new)`; return; }
    events.unshift(e);
    list.prepend(row(e));
    while (events.length > keep) { events.pop(); list.lastChild.remove(); }
    hint.hidden = true;
    count();
  }

  function count() {
    const shown = list.querySelectorAll('li.event:not([hidden])').length;
    counter.textContent = filter.value ? `${shown} of ${events.length}` : `${events.length} event${events.length === 1 ? '' : 's'}`;
  }

  filter.addEventListener('input', () => {
    events.forEach((e, i) => { list.children[i].hidden = !matches(e); });
    count();
  });
  pause.addEventListener('click', () => {
    paused = !paused;
    pause.setAttribute('aria-pressed', String(paused));
    pause.textContent = paused ? 'Resume' : 'Pause';
    if (!paused) { const h2 = held; held = []; h2.forEach(add); }
  });
  clearBtn.addEventListener('click', () => { events = []; held = []; list.replaceChildren(); hint.hidden = false; count(); });

  (async () => {
    let delay = 1000;
    while (!ctl.signal.aborted) {
      status.className = 'stream-status connecting';
      status.replaceChildren(h('span.spinner.small'), ' connecting…');
      try {
        await api.stream('/v1/events/stream', {
          signal: ctl.signal,
          onOpen: () => {
            delay = 1000;
            status.className = 'stream-status live';
            status.replaceChildren(h('span.live-dot'), ' live');
          },
          onEvent: add,
        });
      } catch (err) {
        if (ctl.signal.aborted) return;
        if (err.status === 401) return;
        status.className = 'stream-status down';
        status.replaceChildren(errorBox(err, 'Stream interrupted'), ` retrying in ${delay / 1000} s`);
      }
      if (ctl.signal.aborted) return;
      await new Promise(r => setTimeout(r, delay));
      delay = Math.min(delay * 2, 15000);
    }
  })();
  return () => ctl.abort();
}
