// The admin API as the dashboard uses it: the token, JSON requests, API
// errors and the live event stream.

const tokenKey = 'nudge.adminToken';

export function token() { return sessionStorage.getItem(tokenKey) || ''; }
export function setToken(t) { sessionStorage.setItem(tokenKey, t); }
export function clearToken() { sessionStorage.removeItem(tokenKey); }

// ApiError is a failed request: the HTTP status and the API's error body
// ({"error":{"code","message","field"}}), or a network failure (status 0).
export class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message || code || 'HTTP ' + status);
    this.status = status;
    this.code = code || '';
    this.field = field || '';
  }
}

// Called with every 401: the app goes back to the login form.
let onUnauthorized = () => {};
export function whenUnauthorized(f) { onUnauthorized = f; }

async function errorOf(resp) {
  let body = null;
  try { body = await resp.json(); } catch { /* not JSON */ }
  const e = body && body.error;
  if (e && typeof e === 'object') return new ApiError(resp.status, e.code, e.message, e.field);
  return new ApiError(resp.status, '', resp.status + ' ' + resp.statusText);
}

// request sends an admin API request and returns the parsed JSON body
// (null for an empty one). It throws an ApiError.
export async function request(method, path, opts = {}) {
  const headers = { 'Authorization': 'Bearer ' + token(), 'Accept': 'application/json' };
  let resp;
  try {
    resp = await fetch(path, { method, headers, signal: opts.signal, cache: 'no-store' });
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new ApiError(0, 'network', 'nudge did not answer: ' + err.message);
  }
  if (!resp.ok) {
    const err = await errorOf(resp);
    if (resp.status === 401 && !opts.login) onUnauthorized();
    throw err;
  }
  const text = await resp.text();
  if (!text) return null;
  try { return JSON.parse(text); } catch { return text; }
}

export const get = (path, opts) => request('GET', path, opts);

// stream reads GET /v1/events/stream with fetch, as EventSource cannot send
// the Authorization header. It calls onOpen once connected, onEvent with
// each event, and resolves when the stream ends; abort it with signal.
export async function stream(path, { signal, onOpen, onEvent }) {
  const resp = await fetch(path, {
    headers: { 'Authorization': 'Bearer ' + token(), 'Accept': 'text/event-stream' },
    signal, cache: 'no-store',
  });
  if (!resp.ok) {
    const err = await errorOf(resp);
    if (resp.status === 401) onUnauthorized();
    throw err;
  }
  onOpen();
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value;
    let end;
    while ((end = buf.search(/\r?\n\r?\n/)) >= 0) {
      const block = buf.slice(0, end);
      buf = buf.slice(end).replace(/^\r?\n\r?\n/, '');
      const data = block.split(/\r?\n/).filter(l => l.startsWith('data:')).map(l => l.slice(5).replace(/^ /, '')).join('\n');
      if (!data) continue; // a comment such as ": connected"
      try { onEvent(JSON.parse(data)); } catch (err) { console.warn('nudge: an event that is not JSON', err); }
    }
  }
}

// metrics fetches GET /metrics (no credential needed) as text.
export async function metricsText(signal) {
  let resp;
  try {
    resp = await fetch('/metrics', { signal, cache: 'no-store' });
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new ApiError(0, 'network', 'nudge did not answer: ' + err.message);
  }
  if (!resp.ok) throw await errorOf(resp);
  return resp.text();
}
