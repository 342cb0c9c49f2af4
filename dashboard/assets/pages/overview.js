// Overview: the pipeline's health, live, from GET /metrics (polled) and
// GET /readyz.

import { h, clear, errorBox, num, dur, pct } from '../ui.js';
import * as api from '../api.js';
import * as prom from '../prom.js';
import { LineChart } from '../chart.js';

export const title = 'Overview';

const every = 2000; // ms between scrapes

export function render(main) {
  const charts = {
    throughput: new LineChart({
      id: 'chart-throughput', title: 'Throughput (events/s)',
      series: [{ key: 'accepted', label: 'accepted' }, { key: 'rejected', label: 'rejected requests' }],
      format: rate,
    }),
    trigger: new LineChart({
      id: 'chart-trigger', title: 'Time to trigger (event to send)',
      series: [{ key: 'p50', label: 'p50' }, { key: 'p99', label: 'p99' }],
      format: dur, minTop: 0.01,
    }),
    lag: new LineChart({
      id: 'chart-lag', title: 'Consumer lag (log messages)',
      series: [{ key: 'lag', label: 'profiles' }],
      format: v => (v === null || v === undefined ? '–' : num(Math.round(v))), minTop: 10,
    }),
  };
  const tiles = {
    rate: tile('Events/s', 'accepted by the tracking API'),
    errors: tile('Error rate', 'requests rejected, last interval'),
    p50: tile('Time to trigger p50', 'since start'),
    p99: tile('Time to trigger p99', 'since start'),
    lag: tile('Consumer lag', 'log messages not yet applied'),
    total: tile('Events accepted', 'since start'),
  };
  const ready = h('div.ready');
  const rejections = h('div.rejections');
  const status = h('div.page-status');
  clear(main).append(
    h('div.page-head', h('h1', 'Overview'), status),
    h('section.tiles', Object.values(tiles).map(t => t.el)),
    h('section.charts', Object.values(charts).map(c => c.el)),
    h('section.grid2',
      h('div.card', h('h2', 'Readiness'), ready),
      h('div.card', h('h2', 'Rejected requests by code'), rejections)));

  let prev = null, timer = null, stopped = false;
  const ctl = new AbortController();

  async function poll() {
    if (stopped) return;
    if (!document.hidden) {
      try {
        const [text, readyz] = await Promise.all([api.metricsText(ctl.signal), readiness(ctl.signal)]);
        const now = { t: Date.now(), samples: prom.parse(text) };
        update(now, readyz);
        prev = now;
        status.replaceChildren(h('span.live-dot'), ' live, every ' + every / 1000 + ' s');
      } catch (err) {
        if (err.name === 'AbortError') return;
        status.replaceChildren(errorBox(err, 'Cannot read /metrics'));
      }
    }
    timer = setTimeout(poll, prev && charts.throughput.points.length ? every : 500);
  }

  function update(now, readyz) {
    const x = now.samples;
    const accepted = prom.sum(x, 'nudge_events_ingested_total') || 0;
    const rejected = prom.sum(x, 'nudge_events_rejected_total') || 0;
    const requests = prom.sum(x, 'nudge_ingest_request_seconds_count') || 0;
    const lag = prom.sum(x, 'nudge_consumer_lag_messages');
    const ttt = prom.buckets(x, 'nudge_time_to_trigger_seconds');
    tiles.total.set(num(accepted));
    tiles.lag.set(lag === null ? '–' : num(lag), lag > 1000 ? 'warn' : '');
    tiles.p50.set(dur(prom.quantile(0.5, ttt)));
    tiles.p99.set(dur(prom.quantile(0.99, ttt)));
    if (prev) {
      const p = prev.samples, dt = (now.t - prev.t) / 1000;
      const dAcc = Math.max(0, accepted - (prom.sum(p, 'nudge_events_ingested_total') || 0));
      const dRej = Math.max(0, rejected - (prom.sum(p, 'nudge_events_rejected_total') || 0));
      const dReq = Math.max(0, requests - (prom.sum(p, 'nudge_ingest_request_seconds_count') || 0));
      const window = prom.delta(ttt, prom.buckets(p, 'nudge_time_to_trigger_seconds'));
      tiles.rate.set(rate(dAcc / dt));
      tiles.errors.set(dReq ? pct(dRej, dReq) : '0%', dRej ? 'bad' : '');
      charts.throughput.push(now.t, { accepted: dAcc / dt, rejected: dRej / dt });
      charts.trigger.push(now.t, { p50: prom.quantile(0.5, window), p99: prom.quantile(0.99, window) });
    }
    charts.lag.push(now.t, { lag });
    renderReady(ready, readyz);
    renderRejections(rejections, x);
  }

  poll();
  const onResize = () => Object.values(charts).forEach(c => c.draw());
  window.addEventListener('resize', onResize);
  return () => { stopped = true; clearTimeout(timer); ctl.abort(); window.removeEventListener('resize', onResize); };
}

function rate(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return '–';
  return v >= 100 ? num(Math.round(v)) : v.toFixed(v >= 10 ? 1 : 2).replace(/\.?0+$/, '') || '0';
}

function tile(label, hint) {
  const value = h('div.value', '–');
  const el = h('div.tile', h('div.label', label), value, h('div.hint', hint));
  return {
    el,
    set(text, kind = '') {
      value.textContent = text;
      el.classList.toggle('warn', kind === 'warn');
      el.classList.toggle('bad', kind === 'bad');
    },
  };
}

async function readiness(signal) {
  try {
    const resp = await fetch('/readyz', { signal, cache: 'no-store' });
    const body = await resp.json().catch(() => null);
    return { ok: resp.ok, body };
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    return { ok: false, body: null };
  }
}

function renderReady(el, r) {
  const checks = (r.body && r.body.checks) || {};
  el.replaceChildren(
    h('p', h('span.pill.' + (r.ok ? 'ok' : 'bad'), r.ok ? 'ready' : 'not ready')),
    h('table.kv', h('tbody', Object.entries(checks).map(([k, v]) =>
      h('tr', h('th', k), h('td', h('span.pill.' + (v === 'ok' ? 'ok' : 'bad'), String(v))))))));
}

function renderRejections(el, samples) {
  const by = new Map();
  for (const x of samples) {
    if (x.name !== 'nudge_events_rejected_total') continue;
    by.set(x.labels.reason, (by.get(x.labels.reason) || 0) + x.value);
  }
  if (!by.size) { el.replaceChildren(h('p.muted', 'None since start.')); return; }
  el.replaceChildren(h('table.kv', h('tbody', [...by.entries()].sort((a, b) => b[1] - a[1]).map(([code, n]) =>
    h('tr', h('th', h('code', code)), h('td', num(n)))))));
}
