// The nudge dashboard: login, navigation and hash routes. Each page is a
// module of pages/ exporting render(main, params, ctx), which may return a
// function that stops what the page started (polling, streams).

import * as api from './api.js';
import { h, clear, errorBox, loading } from './ui.js';
import * as overview from './pages/overview.js';
import * as events from './pages/events.js';
import * as profiles from './pages/profiles.js';
import * as journeys from './pages/journeys.js';
import * as deliveries from './pages/deliveries.js';

const pages = { overview, events, profiles, journeys, deliveries };

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const toggle = document.getElementById('nav-toggle');
const logout = document.getElementById('logout');

let stop = null; // stops the current page

function route() {
  if (stop) { try { stop(); } catch (err) { console.error(err); } stop = null; }
  setNavOpen(false);
  if (!api.token()) { showLogin(); return; }
  nav.hidden = false;
  logout.hidden = false;
  document.body.classList.remove('logged-out');
  const parts = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  const name = parts[0] || 'overview';
  const page = pages[name];
  if (!page) { location.replace('#/overview'); return; }
  for (const a of nav.querySelectorAll('a')) a.classList.toggle('active', a.dataset.page === name);
  document.title = page.title + ' · nudge';
  clear(main).append(loading());
  main.dataset.page = name;
  try {
    stop = page.render(main, parts.slice(1), { go }) || null;
  } catch (err) {
    console.error(err);
    clear(main).append(errorBox(err));
  }
  main.focus({ preventScroll: true });
}

// go navigates to a hash route: go('profiles', id).
export function go(...parts) {
  location.hash = '#/' + parts.map(encodeURIComponent).join('/');
}

function showLogin(message) {
  nav.hidden = true;
  logout.hidden = true;
  document.body.classList.add('logged-out');
  document.title = 'Log in · nudge';
  const input = h('input#token', {
    type: 'password', name: 'token', autocomplete: 'current-password', required: true,
    placeholder: 'admin token', 'aria-label': 'Admin token', spellcheck: 'false',
  });
  const status = h('div.login-status', message ? errorBox({ message }, 'Logged out') : null);
  const button = h('button.btn.primary#login-submit', { type: 'submit' }, 'Log in');
  const form = h('form.login-card', {
    onsubmit: async ev => {
      ev.preventDefault();
      const t = input.value.trim();
      if (!t) return;
      button.disabled = true;
      clear(status).append(loading('checking the token…'));
      api.setToken(t);
      try {
        await api.request('GET', '/v1/journeys', { login: true });
      } catch (err) {
        api.clearToken();
        button.disabled = false;
        clear(status).append(errorBox(err, err.status === 401 ? 'Wrong token' : 'Cannot log in'));
        input.select();
        return;
      }
      if (!location.hash || location.hash === '#/' || location.hash === '#/login') location.hash = '#/overview';
      else route();
    },
  },
  h('h1', 'nudge dashboard'),
  h('p.muted', 'Log in with the admin token: the one given to ', h('code', 'nudge serve --admin-token'),
    ', or the development token it printed at start-up. It is kept in this tab only.'),
  h('label', { for: 'token' }, 'Admin token'), input, button, status);
  clear(main).append(h('div.login', form));
  main.dataset.page = 'login';
  input.focus();
}

function setNavOpen(open) {
  document.body.classList.toggle('nav-open', open);
  toggle.setAttribute('aria-expanded', String(open));
}

toggle.addEventListener('click', () => setNavOpen(!document.body.classList.contains('nav-open')));
// A tap beside the open drawer closes it.
document.addEventListener('click', ev => {
  if (document.body.classList.contains('nav-open') && !nav.contains(ev.target) && !toggle.contains(ev.target)) setNavOpen(false);
});
logout.addEventListener('click', () => {
  api.clearToken();
  if (stop) { stop(); stop = null; }
  showLogin();
});
api.whenUnauthorized(() => {
  api.clearToken();
  if (stop) { try { stop(); } catch { /* ignore */ } stop = null; }
  showLogin('The admin token was refused: log in again.');
});
// A blocked load or inline style is a bug of the dashboard: say so loudly.
document.addEventListener('securitypolicyviolation', e =>
  console.error('nudge: content security policy violation:', e.violatedDirective, e.blockedURI || '(inline)'));
window.addEventListener('hashchange', route);
route();
