// A small live line chart drawn in SVG: points arrive one at a time, the
// chart shows the last `window` seconds of them.

import { h, s } from './ui.js';

export class LineChart {
  // series: [{key, label}]; format: a value's text; window: seconds shown.
  constructor({ title, series, format = String, window = 120, id, minTop = 1 }) {
    this.minTop = minTop;
    this.series = series;
    this.format = format;
    this.window = window;
    this.points = []; // [{t, values: {key: number|null}}]
    this.values = {};
    this.legend = h('div.legend', series.map((x, i) => h('span.key.s' + i,
      h('i'), x.label, ' ', this.values[x.key] = h('b', '–'))));
    this.svg = s('svg.plot', { role: 'img', 'aria-label': title });
    this.el = h('figure.chart', { id }, h('figcaption', h('span.title', title), this.legend), this.svg);
  }

  push(t, values) {
    this.points.push({ t, values });
    while (this.points.length && this.points[0].t < t - this.window * 1000) this.points.shift();
    for (const x of this.series) this.values[x.key].textContent = this.format(values[x.key]);
    this.draw();
  }

  draw() {
    const W = Math.max(240, Math.round(this.svg.getBoundingClientRect().width || 600));
    const H = 170, L = 56, R = 8, T = 10, B = 22;
    const now = this.points.length ? this.points[this.points.length - 1].t : Date.now();
    const t0 = now - this.window * 1000;
    let max = 0;
    for (const p of this.points) for (const x of this.series) {
      const v = p.values[x.key];
      if (v !== null && v !== undefined && Number.isFinite(v)) max = Math.max(max, v);
    }
    const top = niceCeil(Math.max(max, this.minTop));
    const xOf = t => L + (W - L - R) * (t - t0) / (this.window * 1000);
    const yOf = v => T + (H - T - B) * (1 - v / top);
    const kids = [];
    const steps = top / Math.pow(10, Math.floor(Math.log10(top))) === 2 ? 4 : 5;
    for (let i = 0; i <= steps; i++) {
      const v = top * i / steps, y = yOf(v);
      kids.push(s('line.grid', { x1: L, x2: W - R, y1: y, y2: y }));
      kids.push(s('text.ylabel', { x: L - 6, y: y + 4, 'text-anchor': 'end' }, this.format(v)));
    }
    for (let sec = 0; sec <= this.window; sec += this.window / 4) {
      const x = xOf(now - sec * 1000);
      kids.push(s('text.xlabel', { x, y: H - 6, 'text-anchor': sec === 0 ? 'end' : 'middle' }, sec === 0 ? 'now' : '−' + sec + ' s'));
    }
    this.series.forEach((x, i) => {
      let d = '', pen = false, area = '', first = null, last = null;
      for (const p of this.points) {
        const v = p.values[x.key];
        if (v === null || v === undefined || !Number.isFinite(v)) { pen = false; continue; }
        const px = xOf(p.t).toFixed(1), py = yOf(v).toFixed(1);
        d += (pen ? 'L' : 'M') + px + ' ' + py;
        pen = true;
        if (first === null) first = px;
        last = px;
      }
      if (!d) return;
      if (i === 0 && first !== null && d.indexOf('M', 1) < 0) {
        area = d.replace(/^M/, 'M' + first + ' ' + yOf(0) + 'L') + 'L' + last + ' ' + yOf(0) + 'Z';
        kids.push(s('path.area.s' + i, { d: area }));
      }
      kids.push(s('path.line.s' + i, { d }));
    });
    this.svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
    this.svg.setAttribute('width', W);
    this.svg.setAttribute('height', H);
    this.svg.replaceChildren(...kids);
  }
}

// niceCeil rounds up to 1, 2 or 5 times a power of ten.
function niceCeil(v) {
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}
