// app.js: the shell. It owns hash routing (#/endpoints/…), the signed-in guard, the header
// navigation, and hands each route a fresh <main> and an AbortSignal that fires when the
// reader navigates away, so a slow answer never paints over the next page.

import { session, onUnauthorized } from './api.js';
import { h, errorBox, notice } from './ui.js';
import { signIn, signUp } from './views/auth.js';
import { workspaceList, workspaceDetail } from './views/workspaces.js';
import { endpointList, endpointNew, endpointDetail, endpointEdit } from './views/endpoints.js';
import { testConsole } from './views/console.js';
import { runList, runDetail } from './views/runs.js';
import { charts } from './views/charts.js';
import { wallet } from './views/wallet.js';

const routes = [
  { re: /^\/signin$/, view: signIn, open: true },
  { re: /^\/signup$/, view: signUp, open: true },
  { re: /^\/workspaces$/, view: workspaceList, nav: 'workspaces' },
  { re: /^\/workspaces\/([^/]+)$/, view: workspaceDetail, nav: 'workspaces' },
  { re: /^\/endpoints$/, view: endpointList, nav: 'endpoints' },
  { re: /^\/endpoints\/new$/, view: endpointNew, nav: 'endpoints' },
  { re: /^\/endpoints\/([^/]+)$/, view: endpointDetail, nav: 'endpoints' },
  { re: /^\/endpoints\/([^/]+)\/edit$/, view: endpointEdit, nav: 'endpoints' },
  { re: /^\/endpoints\/([^/]+)\/console$/, view: testConsole, nav: 'endpoints' },
  { re: /^\/endpoints\/([^/]+)\/runs$/, view: runList, nav: 'endpoints' },
  { re: /^\/endpoints\/([^/]+)\/runs\/([^/]+)$/, view: runDetail, nav: 'endpoints' },
  { re: /^\/endpoints\/([^/]+)\/charts$/, view: charts, nav: 'endpoints' },
  { re: /^\/wallet$/, view: wallet, nav: 'wallet' },
];

let current = null; // AbortController of the page on screen
let pendingNotice = ''; // a message for the next page (sign-out, expired session)

/**
 * go navigates to a hash route such as '/endpoints'; message, when given, is shown in the
 * status line of the page it lands on ("Endpoint created.").
 */
export function go(path, message) {
  if (message) pendingNotice = message;
  const target = `#${path}`;
  if (location.hash === target) render();
  else location.hash = target;
}

function parse() {
  const raw = location.hash.replace(/^#/, '') || '/endpoints';
  const [path, query = ''] = raw.split('?');
  return { path, query: new URLSearchParams(query) };
}

function updateHeader(navKey) {
  const signedIn = Boolean(session.token);
  const nav = document.getElementById('nav');
  nav.hidden = !signedIn;
  document.getElementById('who').textContent = signedIn ? session.user?.email ?? '' : '';
  for (const a of nav.querySelectorAll('a[data-nav]')) {
    if (a.dataset.nav === navKey) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

async function render() {
  current?.abort();
  const ctrl = new AbortController();
  current = ctrl;
  const { path, query } = parse();
  const route = routes.find((r) => r.re.test(path));
  if (!route) {
    go(session.token ? '/endpoints' : '/signin');
    return;
  }
  if (!route.open && !session.token) {
    go('/signin');
    return;
  }
  if (route.open && session.token) {
    go('/endpoints');
    return;
  }
  updateHeader(route.nav);
  notice(pendingNotice);
  pendingNotice = '';
  const params = route.re.exec(path).slice(1).map(decodeURIComponent);
  const main = document.getElementById('main');
  const page = h('div', { class: 'page' });
  main.replaceChildren(page);
  try {
    await route.view(page, { params, query, signal: ctrl.signal, go });
  } catch (err) {
    if (err?.name === 'AbortError' || ctrl.signal.aborted) return;
    page.append(errorBox(err, 'This page could not be shown'));
  }
  if (ctrl.signal.aborted) return;
  const heading = page.querySelector('h1');
  document.title = heading ? `${heading.textContent} · agentgate` : 'agentgate';
  // Move focus to the new page so keyboard and screen-reader users start at its top.
  if (heading && !page.contains(document.activeElement)) {
    heading.tabIndex = -1;
    heading.focus({ preventScroll: true });
  }
}

function signOut() {
  session.clear();
  pendingNotice = 'Signed out.';
  go('/signin');
}

onUnauthorized(() => {
  pendingNotice = 'Your session has ended. Please sign in again.';
  go('/signin');
});

document.getElementById('signout').addEventListener('click', signOut);
// The skip link must not change the hash: #main is not a route.
document.querySelector('a.skip')?.addEventListener('click', (e) => {
  e.preventDefault();
  document.getElementById('main').focus();
});
window.addEventListener('hashchange', render);
render();
