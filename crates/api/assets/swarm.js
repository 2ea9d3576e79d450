// The live swarm: one compact card per node (two lines; the rest behind a disclosure), the
// pooled models, and the topology picture, all from the gateway's SwarmView
// (crates/proto/src/swarm.rs): {now_ms, stale_after_ms, forget_after_ms, models, workers:
// [{worker: {id, name, models, tokens_per_s, queue_depth, queue_capacity, paused,
// last_seen_ms}, state: ready|busy|paused|stale|gone, status: NodeStatus|null, left_at_ms}],
// pools}.

import { $, el } from './dom.js';
import { drawTopology } from './topology.js';

/** Worker id -> name, from the live view, to name workers in traces. */
const names = new Map();
/** Cards by worker id, kept across updates so an open card stays open and focus stays put. */
const cards = new Map();
/** The last view, to redraw the picture when the answer or the size changes. */
let lastView = null;
/** Who took part in the last answer: worker id -> outcome. */
let answered = new Map();
/** What the picture says when nobody is marked. */
let unmarked = '';

export const workerName = (id) => (id ? names.get(id) || `${id.slice(0, 10)}…` : '–');

const fmt = (v, unit, digits = 0) => (v === null || v === undefined ? 'unknown' : `${Number(v).toFixed(digits)}${unit}`);

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

/** The two lines a closed card shows: name and state, then the figures people scan for. */
function summaryLine(w) {
  const v = w.worker;
  const facts = [fmt(v.tokens_per_s, ' tok/s'), `q ${v.queue_depth ?? '–'}/${v.queue_capacity ?? '–'}`];
  const battery = reading(w, 'battery_pct');
  if (battery !== null && battery !== undefined) facts.push(`${Math.round(battery)} %${reading(w, 'charging') ? '+' : ''}`);
  const temp = reading(w, 'temperature_c');
  if (temp !== null && temp !== undefined) facts.push(`${Number(temp).toFixed(0)} °C`);
  facts.push((v.models || []).join(', ') || 'no model');
  return [
    el('span', { class: 'dot', 'aria-hidden': 'true' }),
    el('span', { class: 'name', text: v.name }),
    el('span', { class: 'badge', text: w.state }),
    el('span', { class: 'facts', text: facts.join(' · ') }),
  ];
}

function details(view, w) {
  const v = w.worker;
  const charging = reading(w, 'charging');
  const row = (k, val) => [el('dt', { text: k }), el('dd', { text: val })];
  return [
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
    ...row('Id', v.id),
  ];
}

function card(view, w) {
  const id = w.worker.id;
  let c = cards.get(id);
  if (!c) {
    const summary = el('summary');
    const dl = el('dl');
    const li = el('li', { class: 'node' }, el('details', {}, summary, dl));
    c = { li, summary, dl };
    cards.set(id, c);
  }
  c.li.dataset.id = id;
  c.li.dataset.name = w.worker.name;
  c.li.dataset.state = w.state;
  const outcome = answered.get(id);
  if (outcome) c.li.dataset.answered = outcome;
  else delete c.li.dataset.answered;
  c.summary.replaceChildren(...summaryLine(w));
  c.dl.replaceChildren(...details(view, w));
  return c.li;
}

/** Opens a node's card and brings it into view (a click on the picture). */
function reveal(id) {
  const c = cards.get(id);
  if (!c) return;
  c.li.querySelector('details').open = true;
  c.li.scrollIntoView({ block: 'nearest' });
  c.summary.focus({ preventScroll: true });
}

export function renderSwarm(view) {
  lastView = view;
  const workers = view.workers || [];
  names.clear();
  const counts = {};
  const live = new Set();
  const items = workers.map((w) => {
    names.set(w.worker.id, w.worker.name);
    live.add(w.worker.id);
    counts[w.state] = (counts[w.state] || 0) + 1;
    return card(view, w);
  });
  for (const id of [...cards.keys()]) if (!live.has(id)) cards.delete(id);
  $('nodes').replaceChildren(...items);
  $('pools').replaceChildren(...(view.pools || []).map(renderPool));
  const parts = Object.entries(counts).map(([s, n]) => `${n} ${s}`);
  $('swarm-summary').textContent = workers.length
    ? `${workers.length} node${workers.length === 1 ? '' : 's'}: ${parts.join(', ')}`
    : 'No workers have joined yet. Start one with `nova worker --join …`.';
  redraw();
}

/** Marks who took part in the last answer (from its trace), on the cards and the picture;
 *  `why` is said instead when nobody took part. */
export function setAnswered(map, why = '') {
  answered = map;
  unmarked = why;
  for (const [id, c] of cards) {
    const outcome = answered.get(id);
    if (outcome) c.li.dataset.answered = outcome;
    else delete c.li.dataset.answered;
  }
  redraw();
}

export function redraw() {
  if (lastView) drawTopology($('topology'), lastView, answered, { names: workerName, onPick: reveal, unmarked });
}

/** Forgets everything shown (sign-out). */
export function clearSwarm() {
  names.clear();
  cards.clear();
  lastView = null;
  answered = new Map();
  $('nodes').replaceChildren();
  $('pools').replaceChildren();
  $('topology').replaceChildren();
  $('topo-caption').textContent = '';
  $('swarm-summary').textContent = '';
}
