// nova dashboard: chat, live swarm view and performance charts over the gateway's own API.
// Plain JS modules, no framework, no remote code. Every request carries the bearer token the
// user typed; the page itself holds no data until signed in.

import { $, api, errorText, getToken, setToken, sleep, sse, Refused, REFUSED } from './dom.js';
import { initChat, showConversations, clearChat, setModels, setStrategies } from './chat.js';
import { renderSwarm, clearSwarm, redraw } from './swarm.js';
import { watchSize } from './topology.js';
import { perfLoop, clearPerf } from './perf.js';

const TOKEN_KEY = 'nova.token';
/** Where an older page kept its single conversation; removed so it does not linger. */
const OLD_CHAT_KEY = 'nova.chat';

/** Aborted on sign-out: stops the swarm feed, the metrics loop and any running chat. */
let session = null;

// ---------------------------------------------------------------- sign-in

async function login(candidate) {
  const err = $('login-error');
  err.textContent = '';
  let r;
  try {
    r = await fetch('/v1/models', { headers: { Authorization: `Bearer ${candidate}` }, cache: 'no-store' });
  } catch {
    err.textContent = 'The gateway cannot be reached. Is `nova serve` running?';
    return;
  }
  if (r.status === 401) {
    sessionStorage.removeItem(TOKEN_KEY);
    err.textContent = REFUSED + '. Check <data dir>/api-token and try again.';
    $('token').focus();
    return;
  }
  if (!r.ok) {
    err.textContent = `Sign-in failed: ${await errorText(r)}`;
    return;
  }
  setToken(candidate);
  sessionStorage.setItem(TOKEN_KEY, candidate);
  setModels((await r.json()).data.map((m) => m.id));
  start();
}

function start() {
  session = new AbortController();
  sessionStorage.removeItem(OLD_CHAT_KEY);
  $('token').value = '';
  $('login').hidden = true;
  $('app').hidden = false;
  $('logout').hidden = false;
  showConversations();
  loadStrategies(session.signal);
  swarmLoop(session.signal);
  perfLoop(session.signal, refused);
  watchSize($('topology'), redraw);
  $('prompt').focus();
}

/** Back to the sign-in prompt; every piece of swarm data is removed from the page. The
 *  conversations stay saved in this browser but leave the page too. */
function logout(message) {
  setToken(null);
  sessionStorage.removeItem(TOKEN_KEY);
  if (session) session.abort();
  session = null;
  clearChat();
  clearSwarm();
  clearPerf();
  $('conn').textContent = '';
  $('app').hidden = true;
  $('logout').hidden = true;
  $('login').hidden = false;
  $('login-error').textContent = message || '';
  $('token').focus();
}

/** Any 401 after sign-in means the token was revoked or the gateway restarted with another. */
function refused() {
  logout(REFUSED + '. Sign in again.');
}

// ---------------------------------------------------------------- strategies

/** The strategy list from the gateway, so it names exactly what this gateway runs. A gateway
 *  too old to list them gets its default only: `auto`, which every version understands. */
async function loadStrategies(signal) {
  try {
    const r = await api('/v1/strategies', { signal });
    if (!r.ok) throw new Error(await errorText(r));
    const v = await r.json();
    const list = (Array.isArray(v.data) ? v.data : [])
      .filter((s) => s && typeof s.id === 'string')
      .slice(0, 32)
      .map((s) => ({ id: s.id, description: typeof s.description === 'string' ? s.description : '' }));
    setStrategies(list.length ? list : [{ id: 'auto', description: '' }], v.default);
  } catch (e) {
    if (signal.aborted) return;
    if (e instanceof Refused) return refused();
    setStrategies([{ id: 'auto', description: 'the gateway decides' }], 'auto');
  }
}

// ---------------------------------------------------------------- the live view

/** Reads the live feed; reconnects with backoff when it drops. */
async function swarmLoop(signal) {
  let backoff = 500;
  while (!signal.aborted) {
    try {
      const r = await api('/v1/swarm/events', { signal });
      if (!r.ok) throw new Error(await errorText(r));
      $('conn').textContent = 'Live';
      backoff = 500;
      for await (const ev of sse(r)) {
        if (ev.event !== 'swarm') continue;
        const view = JSON.parse(ev.data);
        renderSwarm(view);
        setModels(view.models || []);
      }
    } catch (e) {
      if (signal.aborted) return;
      if (e instanceof Refused) return refused();
      $('conn').textContent = `Live view lost (${e.message}); reconnecting…`;
    }
    await sleep(backoff);
    backoff = Math.min(backoff * 2, 8000);
  }
}

// ---------------------------------------------------------------- wiring

initChat({ refused, signedIn: () => getToken() !== null });
$('login-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const t = $('token').value.trim();
  if (!t) {
    $('login-error').textContent = 'Enter the token first.';
    return;
  }
  login(t);
});
$('logout').addEventListener('click', () => logout('Logged out.'));

const saved = sessionStorage.getItem(TOKEN_KEY);
if (saved) login(saved);
else $('token').focus();
