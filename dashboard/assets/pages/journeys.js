// Journeys: the loaded journeys, and for one its diagram annotated with
// live counts (GET /v1/journeys/{id}/stats), conversions and split
// variants. The diagram comes from GET /v1/journeys/{id} when the server
// has it; otherwise the steps are listed from the stats.

import { h, s, clear, errorBox, loading, num, pct, empty } from '../ui.js';
import * as api from '../api.js';

export const title = 'Journeys';

const every = 3000; // ms between stats refreshes

export function render(main, params) {
  return params[0] ? detail(main, params[0]) : list(main);
}

function list(main) {
  const ctl = new AbortController();
  const out = h('div', loading('loading journeys…'));
  clear(main).append(h('div.page-head', h('h1', 'Journeys')), out);
  (async () => {
    try {
      const { journeys = [] } = await api.get('/v1/journeys', { signal: ctl.signal });
      if (!journeys.length) { clear(out).append(empty('No journeys are loaded.')); return; }
      const stats = await Promise.all([...new Set(journeys.map(j => j.id))].map(id =>
        api.get('/v1/journeys/' + encodeURIComponent(id) + '/stats', { signal: ctl.signal }).catch(() => null)));
      const byId = new Map(stats.filter(Boolean).map(st => [st.journey, st]));
      clear(out).append(h('div.table-wrap', h('table.list#journey-list',
        h('thead', h('tr', h('th', 'journey'), h('th', 'trigger'), h('th.num', 'version'), h('th.num', 'steps'),
          h('th.num', 'entered'), h('th.num', 'active'), h('th.num', 'conversions'))),
        h('tbody', journeys.map(j => {
          const v = ((byId.get(j.id) || {}).versions || []).find(x => x.version === j.version) || {};
          return h('tr',
            h('td', h('a.strong', { href: '#/journeys/' + encodeURIComponent(j.id) }, j.name || j.id),
              j.name ? h('div.muted.small', j.id) : null,
              j.description ? h('div.muted.small.desc', j.description) : null),
            h('td', h('span.badge', j.trigger)),
            h('td.num', String(j.version)), h('td.num', num(j.steps)),
            h('td.num', num(v.entered || 0)), h('td.num', num(v.active || 0)),
            h('td.num', num(v.conversions || 0), ' ', h('span.muted', pct(v.conversions || 0, v.entered || 0))));
        })))));
    } catch (err) {
      if (err.name !== 'AbortError') clear(out).append(errorBox(err, 'Cannot list the journeys'));
    }
  })();
  return () => ctl.abort();
}

function detail(main, id) {
  const ctl = new AbortController();
  const head = h('div.page-head', h('h1', h('a.muted', { href: '#/journeys' }, 'Journeys'), ' / ', id));
  const out = h('div', loading('loading the journey…'));
  clear(main).append(head, out);
  let timer = null, def = null, defErr = null, stopped = false;
  const path = '/v1/journeys/' + encodeURIComponent(id);

  async function first() {
    try {
      const [d, st, all] = await Promise.all([
        api.get(path, { signal: ctl.signal }).catch(err => {
          // An older server has no definitions (404): the stats alone tell
          // the steps. Any other failure says so above the diagram.
          if (err.name === 'AbortError' || err.status === 401) throw err;
          if (err.status !== 404 && err.status !== 405) defErr = err;
          return null;
        }),
        api.get(path + '/stats', { signal: ctl.signal }),
        api.get('/v1/journeys', { signal: ctl.signal }).catch(() => ({ journeys: [] })),
      ]);
      def = d && Array.isArray(d.steps) ? d : null;
      const meta = (all.journeys || []).filter(j => j.id === id).sort((a, b) => b.version - a.version)[0] || {};
      head.firstChild.append(meta.name ? h('span.muted', ' · ' + meta.name) : null);
      draw(st, meta);
      timer = setTimeout(refresh, every);
    } catch (err) {
      if (err.name === 'AbortError') return;
      clear(out).append(err.status === 404 ? empty('No journey has the id ' + id + '.') : errorBox(err, 'Cannot load the journey'));
    }
  }

  let meta = {};
  async function refresh() {
    if (stopped) return;
    if (!document.hidden) {
      try {
        draw(await api.get(path + '/stats', { signal: ctl.signal }), meta);
      } catch (err) {
        if (err.name === 'AbortError') return;
      }
    }
    timer = setTimeout(refresh, every);
  }

  function draw(st, m) {
    meta = m;
    const versions = st.versions || [];
    const version = def ? def.version : (m.version !== undefined ? m.version : (versions.length ? versions[versions.length - 1].version : 0));
    const v = versions.find(x => x.version === version) || { version, entered: 0, active: 0, conversions: 0, steps: {} };
    const steps = def ? def.steps : fallbackSteps(v);
    const scroll = out.querySelector('.diagram-wrap') ? out.querySelector('.diagram-wrap').scrollLeft : 0;
    clear(out).append(
      h('section.tiles',
        stat('Entered', num(v.entered)), stat('Active', num(v.active)),
        stat('Conversions', num(v.conversions), pct(v.conversions, v.entered) + ' of entered'),
        stat('Errors', num(v.errors || 0), 'conditions and templates'),
        stat('Version', String(version), versions.length > 1 ? versions.length + ' versions have runs' : '')),
      h('section.card',
        h('h2', 'Steps ', h('span.muted.small', 'live counts, every ' + every / 1000 + ' s')),
        defErr ? errorBox(defErr, 'Cannot read the definition') : null,
        def ? null : h('p.note', defErr ? 'Without the definition, ' : 'This server does not describe journey steps (no GET /v1/journeys/{id}): ',
          'the diagram lists the steps runs have reached, in no particular order.',
          m.steps ? ` ${m.steps} steps are defined.` : ''),
        h('div.diagram-wrap', diagram(def, steps, v, triggerLabel(def ? def.trigger : m.trigger))),
        !def && !steps.length ? empty('No run has reached a step yet.') : null),
      h('div.grid2',
        h('section.card', h('h2', 'Split variants'), variants(v.variants)),
        h('section.card', h('h2', 'Exits and skipped triggers'),
          counts(v.exits, 'No run has ended yet.'), v.skipped ? [h('h3', 'Skipped'), counts(v.skipped)] : null)),
      h('section.card', h('h2', 'Sends by step'), sends(steps, v)),
      def && def.source ? h('details.card', h('summary', 'Definition (YAML)'), h('pre.code-block', def.source)) : null);
    const wrap = out.querySelector('.diagram-wrap');
    if (wrap) wrap.scrollLeft = scroll;
  }

  first();
  return () => { stopped = true; clearTimeout(timer); ctl.abort(); };
}

function stat(label, value, hint) {
  return h('div.tile', h('div.label', label), h('div.value', value), hint ? h('div.hint', hint) : null);
}

// fallbackSteps makes a step list from the stats alone: most entered first.
function fallbackSteps(v) {
  return Object.entries(v.steps || {}).sort((a, b) => b[1].entered - a[1].entered)
    .map(([id, st]) => ({ id, type: st.queued || st.sent || st.failed ? 'send' : '', next: [], label: '' }));
}

function variants(vs) {
  const rows = Object.entries(vs || {});
  if (!rows.length) return empty('This journey has no split, or no run has reached it.');
  const best = Math.max(...rows.map(([, x]) => (x.entered ? x.converted / x.entered : 0)));
  return h('table.list#variants', h('thead', h('tr', h('th', 'variant'), h('th.num', 'runs'), h('th.num', 'converted'), h('th', 'conversion rate'))),
    h('tbody', rows.sort((a, b) => a[0].localeCompare(b[0])).map(([name, x]) => {
      const rate = x.entered ? x.converted / x.entered : 0;
      const bar = h('span.bar-fill');
      bar.style.width = (100 * rate).toFixed(1) + '%';
      return h('tr', h('td', name === 'holdout' ? h('span.badge', 'holdout') : name), h('td.num', num(x.entered)), h('td.num', num(x.converted)),
        h('td', h('span.bar' + (rate === best && rate > 0 ? '.best' : ''), bar), ' ', pct(x.converted, x.entered)));
    })));
}

function counts(obj, none) {
  const rows = Object.entries(obj || {});
  if (!rows.length) return none ? empty(none) : null;
  return h('table.kv', h('tbody', rows.sort((a, b) => b[1] - a[1]).map(([k, n]) => h('tr', h('th', k), h('td', num(n))))));
}

function sends(steps, v) {
  const rows = steps.filter(x => x.type === 'send' || ((v.steps || {})[x.id] || {}).queued);
  if (!rows.length) return empty('No send step has queued a message yet.');
  return h('div.table-wrap', h('table.list', h('thead', h('tr', h('th', 'step'), h('th.num', 'entered'), h('th.num', 'queued'), h('th.num', 'sent'),
    h('th.num', 'retried'), h('th.num', 'failed'), h('th.num', 'suppressed'))),
  h('tbody', rows.map(x => {
    const c = (v.steps || {})[x.id] || {};
    return h('tr', h('td', x.id), h('td.num', num(c.entered || 0)), h('td.num', num(c.queued || 0)), h('td.num', num(c.sent || 0)),
      h('td.num', num(c.retried || 0)), h('td.num' + (c.failed ? '.bad-text' : ''), num(c.failed || 0)), h('td.num', num(c.suppressed || 0)));
  }))));
}

// The diagram: the trigger on top, then the steps in layers; an edge to a
// later layer goes down, one back to an earlier step loops on the right.
const W = 196, H = 64, GX = 28, GY = 46, PAD = 16;

function diagram(def, steps, v, trigger) {
  const nodes = [{ id: '\u0000trigger', type: 'trigger', label: trigger, next: steps.length ? [steps[0].id] : [] }, ...steps];
  const index = new Map(nodes.map((n, i) => [n.id, i]));
  const level = new Array(nodes.length).fill(-1);
  level[0] = 0;
  for (let i = 0; i < nodes.length; i++) {
    if (level[i] < 0) level[i] = i > 0 ? level[i - 1] + 1 : 0; // unreached: below the one before it
    for (const n of nodes[i].next || []) {
      const j = index.get(n);
      if (j > i) level[j] = Math.max(level[j], level[i] + 1);
    }
  }
  if (!def) for (let i = 1; i < nodes.length; i++) { level[i] = i; if (i > 1) nodes[i - 1].dashed = [nodes[i].id]; }
  if (!def && nodes.length > 1) nodes[0].dashed = [nodes[1].id], nodes[0].next = [];
  const layers = [];
  nodes.forEach((n, i) => (layers[level[i]] = layers[level[i]] || []).push(i));
  const widest = Math.max(...layers.map(l => (l ? l.length : 0)));
  const width = PAD * 2 + widest * W + (widest - 1) * GX + 60;
  const pos = [];
  layers.forEach((l, y) => {
    if (!l) return;
    const row = l.length * W + (l.length - 1) * GX;
    const x0 = PAD + (width - 60 - PAD * 2 - row) / 2;
    l.forEach((i, k) => { pos[i] = { x: x0 + k * (W + GX), y: PAD + y * (H + GY) }; });
  });
  const height = PAD * 2 + layers.length * H + (layers.length - 1) * GY;
  const edges = [], boxes = [];
  nodes.forEach((n, i) => {
    const from = pos[i];
    const out = [...(n.next || []).map(t => [t, false]), ...(n.dashed || []).map(t => [t, true])];
    out.forEach(([t, dashed], k) => {
      const j = index.get(t);
      if (j === undefined) return;
      const to = pos[j];
      let d;
      if (level[j] > level[i]) {
        const x1 = from.x + W / 2 + (out.length > 1 ? (k - (out.length - 1) / 2) * 24 : 0), y1 = from.y + H;
        const x2 = to.x + W / 2, y2 = to.y - 3, my = (y1 + y2) / 2;
        d = `M${x1} ${y1}C${x1} ${my} ${x2} ${my} ${x2} ${y2}`;
      } else {
        const x1 = from.x + W, y1 = from.y + H / 2, x2 = to.x + W + 3, y2 = to.y + H / 2;
        const bend = Math.max(x1, x2) + 40;
        d = `M${x1} ${y1}C${bend} ${y1} ${bend} ${y2} ${x2} ${y2}`;
      }
      edges.push(s('path.edge' + (dashed ? '.dashed' : ''), { d, 'marker-end': 'url(#arrow)' }));
    });
    const c = i === 0 ? { entered: v.entered } : (v.steps || {})[n.id] || {};
    const type = i === 0 ? 'trigger' : n.type || 'step';
    const line2 = i === 0 ? n.label : (n.label || '');
    const detail = [];
    if (c.queued || c.sent || c.failed) {
      detail.push(`sent ${num(c.sent || 0)}`);
      if (c.failed) detail.push(`failed ${num(c.failed)}`);
      if (c.suppressed) detail.push(`supp. ${num(c.suppressed)}`);
    }
    boxes.push(s('g.node.k-' + type.replace(/[^\w-]/g, ''), { transform: `translate(${from.x} ${from.y})`, 'data-step': i === 0 ? 'trigger' : n.id },
      s('title', i === 0 ? 'trigger: ' + n.label : `${n.id} (${type})${n.label ? ': ' + n.label : ''}`),
      s('rect', { width: W, height: H, rx: 10 }),
      s('text.n-type', { x: 12, y: 17 }, type.replace('_', ' ')),
      s('text.n-count', { x: W - 12, y: 17, 'text-anchor': 'end' }, num(c.entered || 0)),
      s('text.n-id', { x: 12, y: 36 }, clip(i === 0 ? 'trigger' : n.id, 24)),
      s('text.n-label', { x: 12, y: 53 }, clip(detail.length ? detail.join(' · ') : line2, 30))));
  });
  return s('svg.diagram#journey-diagram', { width, height, viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': 'journey diagram' },
    s('defs', s('marker#arrow', { viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' },
      s('path.arrowhead', { d: 'M0 0L10 5L0 10z' }))),
    edges, boxes);
}

// triggerLabel is a short text of a trigger, as GET /v1/journeys/{id}
// describes it ({"kind":"event","event":"Signed Up"}), or its kind alone.
function triggerLabel(t) {
  if (!t) return '';
  if (typeof t === 'string') return t;
  const ev = f => (f && (f.event || f.type)) || 'any event';
  const p = t.pattern, a = t.absence;
  switch (t.kind) {
    case 'event': return ev(t);
    case 'pattern':
      if (!p) return 'pattern';
      if (p.kind === 'count') return `${p.count}× ${ev(p.event)} in ${p.within}`;
      if (p.kind === 'sequence') return (p.sequence || []).map(ev).join(' → ') + ` in ${p.within}`;
      if (p.kind === 'not_followed_by') return `${ev(p.event)}, no ${ev(p.not_followed_by)} in ${p.within}`;
      return 'pattern';
    case 'absence': return a ? `no ${ev(a.event)} for ${a.for}` : 'absence';
    case 'profile': return 'profile: ' + (t.profile || '');
    default: return t.kind || '';
  }
}

function clip(text, n) {
  text = String(text || '');
  return text.length > n ? text.slice(0, n - 1) + '…' : text;
}
