// nova dashboard: chat, live swarm view and performance charts over the gateway's own API.
// Plain JS, no framework, no remote code. Every request carries the bearer token the user
// typed; the page itself holds no data.

const TOKEN_KEY = 'nova.token';
const CHAT_KEY = 'nova.chat';
const REFUSED = 'That token was refused by the gateway';
const PERF_EVERY_MS = 2000;
const PERF_WINDOW_MS = 5 * 60 * 1000;

const $ = (id) => document.getElementById(id);

/** The token in use, or null when logged out. */
let token = null;
/** Aborted on logout: stops the swarm feed, the metrics loop and any running chat. */
let session = null;
/** The conversation sent with every request: [{role, content}]. */
let messages = [];
/** The running chat request, if any. */
let running = null;
/** Worker id -> name, from the live view, to name workers in traces. */
const names = new Map();

class Refused extends Error {}

/** `el(tag, {attrs}, ...children)`: builds DOM without innerHTML, so answers stay text. */
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

async function api(path, opts = {}) {
  const headers = { ...(opts.headers || {}), Authorization: `Bearer ${token}` };
  const r = await fetch(path, { ...opts, headers, cache: 'no-store' });
  if (r.status === 401) throw new Refused(REFUSED);
  return r;
}

/** The `message` of an OpenAI-shaped error body, or the HTTP status. */
async function errorText(r) {
  try {
    const v = await r.json();
    if (v && v.error && v.error.message) return v.error.message;
  } catch { /* not JSON */ }
  return `the gateway answered ${r.status} ${r.statusText}`;
}

/**
 * Server-sent events from a fetch response: yields {event, data}. EventSource cannot send an
 * Authorization header, so the stream is parsed here.
 */
async function* sse(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += value.replace(/\r\n/g, '\n');
      let end;
      while ((end = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, end);
        buf = buf.slice(end + 2);
        let event = 'message';
        const data = [];
        for (const line of block.split('\n')) {
          if (line.startsWith(':')) continue;
          const i = line.indexOf(':');
          const field = i < 0 ? line : line.slice(0, i);
          let val = i < 0 ? '' : line.slice(i + 1);
          if (val.startsWith(' ')) val = val.slice(1);
          if (field === 'event') event = val;
          else if (field === 'data') data.push(val);
        }
        if (data.length) yield { event, data: data.join('\n') };
      }
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

// ---------------------------------------------------------------- login

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
  token = candidate;
  sessionStorage.setItem(TOKEN_KEY, token);
  setModels((await r.json()).data.map((m) => m.id));
  start();
}

function start() {
  session = new AbortController();
  $('token').value = '';
  $('login').hidden = true;
  $('app').hidden = false;
  $('logout').hidden = false;
  restoreChat();
  swarmLoop(session.signal);
  perfLoop(session.signal);
  $('prompt').focus();
}

/** Back to the login prompt; every piece of data is removed from the page. */
function logout(message) {
  token = null;
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(CHAT_KEY);
  if (session) session.abort();
  session = null;
  if (running) running.abort();
  messages = [];
  names.clear();
  samples.length = 0;
  for (const id of ['log', 'nodes', 'rps', 'tps']) $(id).replaceChildren();
  for (const id of ['swarm-summary', 'conn', 'chat-status']) $(id).textContent = '';
  $('rps-now').textContent = '–';
  $('tps-now').textContent = '–';
  setModels([]);
  $('app').hidden = true;
  $('logout').hidden = true;
  $('login').hidden = false;
  $('login-error').textContent = message || '';
  $('token').focus();
}

/** Any 401 after login means the token was revoked or the gateway restarted with another. */
function refused() {
  logout(REFUSED + '. Sign in again.');
}

// ---------------------------------------------------------------- chat

function setModels(ids) {
  const sel = $('model');
  const keep = sel.value || 'nova';
  const all = ['nova', ...ids.filter((m) => m !== 'nova')];
  const now = [...sel.options].map((o) => o.value);
  if (now.join('\n') === all.join('\n')) return;
  sel.replaceChildren(...all.map((m) => el('option', { value: m, text: m === 'nova' ? 'any (nova)' : m })));
  sel.value = all.includes(keep) ? keep : 'nova';
}

function saveChat() {
  sessionStorage.setItem(CHAT_KEY, JSON.stringify(messages));
}

function restoreChat() {
  $('log').replaceChildren();
  try {
    messages = JSON.parse(sessionStorage.getItem(CHAT_KEY) || '[]');
  } catch {
    messages = [];
  }
  for (const m of messages) {
    const bubble = addMessage(m.role);
    bubble.text.textContent = m.content;
    bubble.li.dataset.state = 'done';
  }
}

function addMessage(role) {
  const text = el('p', { class: 'text' });
  const state = el('p', { class: 'state' });
  const li = el('li', { class: `msg ${role}` },
    el('p', { class: 'who', text: role === 'user' ? 'You' : 'Swarm' }), text, state);
  $('log').append(li);
  followLog(true);
  return { li, text, state };
}

/**
 * Keeps the newest message in view by scrolling the conversation box only. scrollIntoView
 * also scrolled the window on every streamed chunk, so the Stop button moved under the
 * pointer while the user reached for it. A reader who scrolled up to reread is left there:
 * `logAtEnd` is taken from scroll events, before new text makes the box taller.
 */
let logAtEnd = true;
$('log').addEventListener('scroll', () => {
  const log = $('log');
  logAtEnd = log.scrollHeight - log.scrollTop - log.clientHeight < 48;
});
function followLog(force = false) {
  const log = $('log');
  if (force || logAtEnd) log.scrollTop = log.scrollHeight;
}

const fmtMs = (v) => (v === null || v === undefined ? '–' : `${Math.round(v)} ms`);
const fmtRate = (tokens, ms) => (ms > 0 && tokens > 0 ? `${(tokens / (ms / 1000)).toFixed(1)} tok/s` : '–');
const workerName = (id) => (id ? names.get(id) || `${id.slice(0, 10)}…` : '–');

/** A table of attempts; `roles` adds the council role column. */
function attemptsTable(attempts, caption) {
  const scored = attempts.some((a) => a.score !== undefined);
  const roles = attempts.some((a) => a.role !== undefined);
  const claims = attempts.some((a) => a.claim !== undefined);
  const head = el('tr', {},
    el('th', { scope: 'col', text: 'Worker' }), roles ? el('th', { scope: 'col', text: 'Role' }) : null,
    el('th', { scope: 'col', text: 'Outcome' }),
    el('th', { scope: 'col', class: 'num', text: 'Latency' }), el('th', { scope: 'col', class: 'num', text: 'TTFT' }),
    el('th', { scope: 'col', class: 'num', text: 'Tokens' }), el('th', { scope: 'col', class: 'num', text: 'Speed' }),
    scored ? el('th', { scope: 'col', class: 'num', text: 'Score' }) : null,
    claims ? el('th', { scope: 'col', text: 'Claim' }) : null);
  const rows = attempts.map((a) => el('tr', { 'data-worker': a.worker, 'data-outcome': a.outcome },
    el('th', { scope: 'row', text: workerName(a.worker) }), roles ? el('td', { class: 'role', text: a.role || '–' }) : null,
    el('td', { text: a.outcome }),
    el('td', { class: 'num', text: fmtMs(a.latency_ms) }), el('td', { class: 'num', text: fmtMs(a.ttft_ms) }),
    el('td', { class: 'num', text: String(a.tokens) }), el('td', { class: 'num', text: fmtRate(a.tokens, a.latency_ms) }),
    scored ? el('td', { class: 'num score', text: a.score === undefined ? '–' : a.score.toFixed(3) }) : null,
    claims ? el('td', { class: 'claim', text: a.claim || '–' }) : null));
  return el('div', { class: 'table-wrap' },
    el('table', {}, el('caption', { class: 'sr-only', text: caption }),
      el('thead', {}, head), el('tbody', {}, ...rows)));
}

/** The trace under an answer: summary line, every attempt (by stage for a council), the vote,
 *  auto's reason, and candidates' texts (ensembles with debug). */
function renderTrace(trace) {
  const attempts = trace.attempts || [];
  const won = attempts.find((a) => a.worker === trace.winner && a.outcome === 'won');
  const sum = el('p', { class: 'sum' },
    `${trace.strategy} · winner ${workerName(trace.winner)} · latency ${fmtMs(trace.latency_ms)}` +
    ` · TTFT ${fmtMs(trace.ttft_ms)} · ${won ? fmtRate(won.tokens, won.latency_ms) : '–'}`);
  const extra = [];
  if (trace.auto) extra.push(el('p', { class: 'auto', text: `auto: ${trace.auto}` }));
  if (trace.retrieval) {
    const r = trace.retrieval;
    const skipped = (r.skipped || []).length ? ` · skipped ${r.skipped.join('; ')}` : '';
    extra.push(el('p', { class: 'retrieval',
      text: `retrieval: ${r.hits} passages from ${r.answered} of ${r.asked} nodes in ${fmtMs(r.latency_ms)}${skipped}` }));
  }
  if (trace.vote) {
    extra.push(el('p', { class: 'vote',
      text: `vote: ${Math.round(trace.vote.agreement * 100)} % of ${trace.vote.answers} answers agree on “${trace.vote.claim}” (${trace.vote.distinct} distinct)` }));
  }
  const stages = trace.stages || [];
  const body = stages.length
    ? stages.map((s) => el('details', { class: 'stage', open: true, 'data-stage': s.name },
      el('summary', { text: `Stage ${s.name} · ${fmtMs(s.latency_ms)} · ${s.note}` }),
      (s.attempts || []).length ? attemptsTable(s.attempts, `Workers in the ${s.name} stage`) : null))
    : [attemptsTable(attempts, 'Workers asked for this answer')];
  const cands = attempts.filter((a) => a.text !== undefined).map((a) =>
    el('details', { class: 'cand' }, el('summary', { text: `Candidate from ${workerName(a.worker)}${a.role ? ` (${a.role})` : ''} (${a.outcome}, score ${a.score === undefined ? '–' : a.score.toFixed(3)})` }),
      el('p', { text: a.text })));
  return el('details', { class: 'trace', open: true },
    el('summary', { text: 'Trace' }), sum, ...extra, ...body, ...cands);
}

/** The citations of a grounded answer: `[n] node: path`, the passage behind a disclosure. */
function renderSources(sources) {
  return el('ol', { class: 'sources', 'aria-label': 'Sources' },
    ...sources.map((s) => el('li', { value: String(s.n) },
      el('details', {},
        el('summary', { text: `${s.node}: ${s.path} (part ${s.chunk + 1}, score ${s.score.toFixed(2)})` }),
        el('blockquote', { text: s.text })))));
}

async function send(prompt) {
  const fanout = Math.min(16, Math.max(1, parseInt($('fanout').value, 10) || 2));
  const maxTokens = Math.min(4096, Math.max(1, parseInt($('max-tokens').value, 10) || 256));
  const tags = $('tags').value.split(',').map((t) => t.trim()).filter(Boolean);
  messages.push({ role: 'user', content: prompt });
  saveChat();
  addMessage('user').text.textContent = prompt;
  const answer = addMessage('assistant');
  answer.li.dataset.state = 'streaming';
  answer.li.setAttribute('aria-busy', 'true');
  answer.state.textContent = 'Waiting for the swarm…';

  const ctl = new AbortController();
  running = ctl;
  $('send').disabled = true;
  $('stop').disabled = false;
  const body = {
    model: $('model').value,
    messages,
    stream: true,
    max_tokens: maxTokens,
    ignore_eos: $('ignore-eos').checked || undefined,
    // debug: ensemble traces then carry every candidate's text next to its score. `auto`
    // sends neither strategy nor fanout: the gateway decides.
    nova: $('strategy').value === 'auto'
      ? { tags, debug: true, rag: $('rag').checked }
      : { strategy: $('strategy').value, fanout, tags, debug: true, rag: $('rag').checked },
  };
  let text = '';
  let trace = null;
  let finish = null;
  let failure = null;
  let tokens = 0;
  try {
    const r = await api('/v1/chat/completions', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
      signal: ctl.signal,
    });
    if (!r.ok) {
      failure = await errorText(r);
    } else {
      for await (const ev of sse(r)) {
        if (ev.data === '[DONE]') break;
        const v = JSON.parse(ev.data);
        if (v.error) {
          failure = v.error.message;
          break;
        }
        const c = v.choices && v.choices[0];
        if (c && c.delta && c.delta.content) {
          text += c.delta.content;
          tokens += 1;
          answer.text.textContent = text;
          answer.state.textContent = `Streaming… ${tokens} chunks`;
          followLog();
        }
        if (c && c.finish_reason) finish = c.finish_reason;
        if (v.nova && v.nova.stage_started) {
          answer.state.textContent = `Council: ${v.nova.stage_started} stage…`;
        } else if (v.nova && v.nova.stage) {
          // A council's stage ended: say so while the answer is still on its way.
          answer.state.textContent = `Council: ${v.nova.stage.name} stage done (${v.nova.stage.note})`;
        } else if (v.nova) {
          trace = v.nova;
        }
      }
    }
  } catch (e) {
    if (e instanceof Refused) {
      running = null;
      refused();
      return;
    }
    if (e.name !== 'AbortError') failure = `the connection failed: ${e.message}`;
  }
  running = null;
  $('send').disabled = false;
  $('stop').disabled = true;
  answer.li.removeAttribute('aria-busy');
  // Logged out or the conversation cleared meanwhile: nothing left to update.
  if (!session || !answer.li.isConnected) return;
  if (ctl.signal.aborted) {
    answer.li.dataset.state = 'stopped';
    answer.state.textContent = `Stopped by you after ${tokens} chunks.`;
  } else if (failure) {
    answer.li.dataset.state = 'error';
    answer.state.textContent = `Error: ${failure}`;
  } else {
    answer.li.dataset.state = 'done';
    answer.state.textContent = finish === 'length' ? 'Stopped at the token limit.' : '';
  }
  if (trace && trace.sources) answer.li.append(renderSources(trace.sources));
  if (trace) answer.li.append(renderTrace(trace));
  $('chat-status').textContent = answer.li.dataset.state === 'done' ? 'Answer complete.' : answer.state.textContent;
  // A stopped or failed answer stays on screen but only what was received joins the history.
  if (text) messages.push({ role: 'assistant', content: text });
  else messages.pop();
  saveChat();
}

// ---------------------------------------------------------------- swarm

const fmt = (v, unit, digits = 0) => (v === null || v === undefined ? 'unknown' : `${Number(v).toFixed(digits)}${unit}`);

/**
 * The gateway's SwarmView (crates/proto/src/swarm.rs): {now_ms, stale_after_ms, forget_after_ms,
 * models, workers: [{worker: {id, name, models, tokens_per_s, queue_depth, queue_capacity,
 * paused, last_seen_ms}, state: ready|busy|paused|stale|gone, status: NodeStatus|null,
 * left_at_ms: number|null}]}.
 */

/** A device reading from the worker's status report (null when it reports none). */
const reading = (w, key) => (w.status ? w.status[key] : null);

/** "1.5 s ago" for a time on the gateway's clock; null when unknown. */
const ago = (view, at) => (at ? `${(Math.max(0, view.now_ms - at) / 1000).toFixed(1)} s ago` : null);

function lastSeen(view, w) {
  if (w.state === 'gone') {
    const left = ago(view, w.left_at_ms);
    return left ? `left ${left}` : 'disconnected';
  }
  return ago(view, w.worker.last_seen_ms) || '–';
}

/** Its engine's sequences (requests generated at once) and their KV cache, from its status. */
const slots = (s) => (s ? `${s.running} of ${s.total} generating${s.kv_cache_mib ? `, KV ${s.kv_cache_mib} MiB` : ''}` : 'one at a time');

/** What a node shares for grounded answers, from its status report. */
const docs = (k) => (k ? `shares ${k.files} files (${k.chunks} passages)` : 'none shared');

/** A model split across devices: who holds which layers, drawn to scale. */
function renderPool(p) {
  const total = Math.max(1, p.layers);
  const range = (h) => `layers ${h.first_layer}–${h.first_layer + h.layers - 1}`;
  return el('section', { class: 'pool', 'data-model': p.model, 'data-state': p.state },
    el('h3', { text: `Pooled model ${p.model}: ${p.state}` }),
    el('div', { class: 'pool-bar', role: 'img', 'aria-label': `${p.model} layers by device` },
      ...p.holders.map((h) => {
        const part = el('span', { class: h.head ? 'part head' : 'part', title: `${h.name}: ${range(h)}`, text: h.name });
        // Through the CSSOM: the page's CSP refuses style attributes.
        part.style.flexGrow = String(h.layers / total);
        return part;
      })),
    el('ul', { class: 'holders' },
      ...p.holders.map((h) => el('li', { text: `${h.name}${h.head ? ' (head)' : ''}: ${range(h)}` }))),
    p.detail ? el('p', { class: 'hint', text: p.detail }) : null);
}

function renderSwarm(view) {
  const workers = view.workers || [];
  names.clear();
  const counts = {};
  const items = workers.map((w) => {
    const v = w.worker;
    names.set(v.id, v.name);
    const state = w.state;
    counts[state] = (counts[state] || 0) + 1;
    const charging = reading(w, 'charging');
    const row = (k, val) => [el('dt', { text: k }), el('dd', { text: val })];
    return el('li', { class: 'node', 'data-id': v.id, 'data-name': v.name, 'data-state': state },
      el('h3', {}, el('span', { text: v.name }), el('span', { class: 'badge', text: state })),
      el('dl', {},
        ...row('Model', (v.models || []).join(', ') || 'none'),
        ...row('Speed', fmt(v.tokens_per_s, ' tok/s')),
        ...row('Queue', `${v.queue_depth ?? '–'} / ${v.queue_capacity ?? '–'}`),
        ...row('Slots', slots(reading(w, 'slots'))),
        ...row('Battery', fmt(reading(w, 'battery_pct'), ' %')),
        ...row('Charging', charging === null || charging === undefined ? 'unknown' : charging ? 'yes' : 'no'),
        ...row('Temperature', fmt(reading(w, 'temperature_c'), ' °C', 1)),
        ...row('Paused', v.paused ? 'yes (guard)' : 'no'),
        ...row('Documents', docs(reading(w, 'knowledge'))),
        ...row('Version', reading(w, 'version') || 'unknown'),
        ...row('Last seen', lastSeen(view, w)),
        ...row('Id', v.id)));
  });
  $('nodes').replaceChildren(...items);
  $('pools').replaceChildren(...(view.pools || []).map(renderPool));
  const parts = Object.entries(counts).map(([s, n]) => `${n} ${s}`);
  $('swarm-summary').textContent = workers.length
    ? `${workers.length} node${workers.length === 1 ? '' : 's'}: ${parts.join(', ')}`
    : 'No workers have joined yet. Start one with `nova worker --join …`.';
  setModels(view.models || []);
}

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
        if (ev.event === 'swarm') renderSwarm(JSON.parse(ev.data));
      }
    } catch (e) {
      if (signal.aborted) return;
      if (e instanceof Refused) return refused();
      $('conn').textContent = `Live view lost (${e.message}); reconnecting…`;
    }
    await new Promise((ok) => setTimeout(ok, backoff));
    backoff = Math.min(backoff * 2, 8000);
  }
}

// ---------------------------------------------------------------- performance

/** Successive scrapes: {t, requests, tokens}. */
const samples = [];

/** Sums a counter over its label sets in Prometheus text; null when absent. */
function counter(text, name) {
  let total = null;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== ' ' && rest[0] !== '{') continue;
    const value = Number(rest.slice(rest.lastIndexOf(' ') + 1));
    if (Number.isFinite(value)) total = (total || 0) + value;
  }
  return total;
}

function rates(key) {
  const out = [];
  for (let i = 1; i < samples.length; i++) {
    const dt = (samples[i].t - samples[i - 1].t) / 1000;
    const dv = samples[i][key] - samples[i - 1][key];
    // A negative step is a gateway restart: its counters began again at zero.
    out.push(dt > 0 ? Math.max(0, dv) / dt : 0);
  }
  return out;
}

function drawChart(id, values, now, digits) {
  const svg = $(id);
  const max = Math.max(...values, 0);
  $(now).textContent = values.length ? `${values[values.length - 1].toFixed(digits)} (peak ${max.toFixed(digits)})` : '–';
  const n = Math.max(1, PERF_WINDOW_MS / PERF_EVERY_MS - 1);
  const pts = values.map((v, i) => {
    const x = 300 - ((values.length - 1 - i) * 300) / n;
    const y = 58 - (max > 0 ? (v / max) * 54 : 0);
    return `${x.toFixed(1)},${y.toFixed(1)}`;
  });
  const line = document.createElementNS('http://www.w3.org/2000/svg', 'polyline');
  line.setAttribute('points', pts.join(' '));
  svg.replaceChildren(line);
}

async function perfLoop(signal) {
  while (!signal.aborted) {
    try {
      const r = await api('/metrics', { signal });
      if (r.ok) {
        const text = await r.text();
        samples.push({ t: Date.now(), requests: counter(text, 'nova_requests_total') || 0, tokens: counter(text, 'nova_tokens_generated_total') || 0 });
        while (samples.length && samples[0].t < Date.now() - PERF_WINDOW_MS) samples.shift();
        drawChart('rps', rates('requests'), 'rps-now', 2);
        drawChart('tps', rates('tokens'), 'tps-now', 1);
      }
    } catch (e) {
      if (signal.aborted) return;
      if (e instanceof Refused) return refused();
    }
    await new Promise((ok) => setTimeout(ok, PERF_EVERY_MS));
  }
}

// ---------------------------------------------------------------- wiring

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
$('ask').addEventListener('submit', (e) => {
  e.preventDefault();
  const p = $('prompt').value.trim();
  if (!p || running) return;
  $('prompt').value = '';
  send(p);
});
$('prompt').addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    $('ask').requestSubmit();
  }
});
$('stop').addEventListener('click', () => {
  // Aborting closes the HTTP connection; the gateway sees the client go and cancels the job
  // on every worker.
  if (running) running.abort();
  $('prompt').focus();
});
document.addEventListener('keydown', (e) => {
  if (e.key === 'Escape' && running) {
    e.preventDefault();
    running.abort();
  }
});
$('clear').addEventListener('click', () => {
  if (running) running.abort();
  messages = [];
  saveChat();
  $('log').replaceChildren();
  $('prompt').focus();
});

const saved = sessionStorage.getItem(TOKEN_KEY);
if (saved) login(saved);
else $('token').focus();
