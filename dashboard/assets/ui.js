// Small DOM helpers. Everything a customer sent is inserted as text, never
// as HTML.

// h makes an element: h('div.card#x', {onclick: f, title: 't'}, child...).
// Children are nodes, strings, numbers, arrays of them, or null (skipped).
export function h(spec, attrs, ...children) {
  return build(document.createElement(tagOf(spec)), spec, attrs, children);
}

const svgNS = 'http://www.w3.org/2000/svg';

// s is h for SVG elements.
export function s(spec, attrs, ...children) {
  return build(document.createElementNS(svgNS, tagOf(spec)), spec, attrs, children);
}

function tagOf(spec) { return spec.match(/^[a-zA-Z0-9-]+/)[0]; }

function build(el, spec, attrs, children) {
  for (const m of spec.matchAll(/([.#])([\w-]+)/g)) {
    if (m[1] === '.') el.classList.add(m[2]); else el.id = m[2];
  }
  if (attrs && (typeof attrs !== 'object' || attrs instanceof Node || Array.isArray(attrs))) {
    children.unshift(attrs);
    attrs = null;
  }
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') for (const c of String(v).split(/\s+/).filter(Boolean)) el.classList.add(c);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? '' : v);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(el) { el.replaceChildren(); return el; }

export function loading(text = 'loading…') {
  return h('div.loading', { role: 'status' }, h('span.spinner'), ' ', text);
}

// errorBox shows an API error: its message, code and field.
export function errorBox(err, title = 'Something went wrong') {
  return h('div.error-box', { role: 'alert' },
    h('strong', title + ':'), ' ',
    h('span.msg', err && err.message ? err.message : String(err)),
    err && err.code ? h('code.code', err.code) : null,
    err && err.field ? h('span.field', ' field ', h('code', err.field)) : null);
}

export function empty(text) { return h('div.empty', text); }

// json renders a value as indented, coloured JSON.
export function json(value) {
  const pre = h('pre.json');
  walk(pre, value, '');
  return pre;
}

function walk(out, v, indent) {
  if (v === null) { out.append(h('span.j-null', 'null')); return; }
  if (Array.isArray(v)) {
    if (!v.length) { out.append('[]'); return; }
    out.append('[\n');
    v.forEach((x, i) => {
      out.append(indent + '  ');
      walk(out, x, indent + '  ');
      out.append(i < v.length - 1 ? ',\n' : '\n');
    });
    out.append(indent + ']');
    return;
  }
  switch (typeof v) {
    case 'object': {
      const keys = Object.keys(v);
      if (!keys.length) { out.append('{}'); return; }
      out.append('{\n');
      keys.forEach((k, i) => {
        out.append(indent + '  ', h('span.j-key', JSON.stringify(k)), ': ');
        walk(out, v[k], indent + '  ');
        out.append(i < keys.length - 1 ? ',\n' : '\n');
      });
      out.append(indent + '}');
      return;
    }
    case 'string': out.append(h('span.j-str', JSON.stringify(v))); return;
    case 'number': out.append(h('span.j-num', String(v))); return;
    case 'boolean': out.append(h('span.j-bool', String(v))); return;
    default: out.append(String(v));
  }
}

// confirmDialog asks a yes/no question in a modal dialog; it resolves true
// when the operator confirms.
export function confirmDialog({ title, body, confirm = 'Confirm', danger = false }) {
  return new Promise(resolve => {
    const dlg = h('dialog.dialog', { 'aria-labelledby': 'dlg-title' },
      h('form', { method: 'dialog' },
        h('h2#dlg-title', title),
        h('div.dialog-body', body),
        h('div.dialog-actions',
          h('button.btn.ghost', { value: 'cancel', type: 'submit' }, 'Cancel'),
          h('button.btn' + (danger ? '.danger' : '.primary'), { value: 'ok', type: 'submit', class: 'confirm' }, confirm))));
    dlg.addEventListener('close', () => { dlg.remove(); resolve(dlg.returnValue === 'ok'); });
    document.body.append(dlg);
    dlg.showModal();
  });
}

export function toast(text, kind = 'ok') {
  let box = document.getElementById('toasts');
  if (!box) { box = h('div#toasts', { 'aria-live': 'polite' }); document.body.append(box); }
  const t = h('div.toast.' + kind, text);
  box.append(t);
  setTimeout(() => t.remove(), 4000);
}

const nf = new Intl.NumberFormat();
export function num(n) { return n === undefined || n === null || Number.isNaN(n) ? '–' : nf.format(n); }

export function pct(a, b) {
  if (!b) return '–';
  if (!a) return '0%';
  return (100 * a / b).toFixed(a / b < 0.1 ? 1 : 0) + '%';
}

export function dur(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return '–';
  if (seconds === 0) return '0';
  if (seconds < 0.001) return (seconds * 1e6).toFixed(0) + ' µs';
  if (seconds < 1) return (seconds * 1000).toFixed(seconds < 0.01 ? 2 : 0).replace(/\.?0+$/, '') + ' ms';
  return seconds.toFixed(2) + ' s';
}

export function time(t) {
  if (!t) return '–';
  const d = new Date(t);
  if (Number.isNaN(d.getTime())) return String(t);
  return d.toLocaleString();
}

export function clock(t) {
  const d = new Date(t);
  if (Number.isNaN(d.getTime())) return '';
  return d.toLocaleTimeString();
}

export function ago(t) {
  const sec = (Date.now() - new Date(t).getTime()) / 1000;
  if (Number.isNaN(sec)) return '';
  if (sec < 5) return 'just now';
  if (sec < 60) return Math.round(sec) + ' s ago';
  if (sec < 3600) return Math.round(sec / 60) + ' min ago';
  if (sec < 86400) return Math.round(sec / 3600) + ' h ago';
  return Math.round(sec / 86400) + ' d ago';
}

// eventTitle is what a debugger row or a timeline entry calls an event.
export function eventTitle(e) {
  switch (e.type) {
    case 'track': return e.event || '(track)';
    case 'page': case 'screen': return (e.name || '') + ' ' + e.type;
    case 'group': return 'group ' + (e.groupId || '');
    case 'alias': return 'alias ' + (e.previousId || '');
    default: return e.type || '(event)';
  }
}

export function who(e) { return e.userId || e.anonymousId || ''; }
