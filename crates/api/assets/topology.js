// The swarm as a picture: the gateway in the middle, every node on a ring around it (more rings
// when one is crowded), a link from the gateway to each, colour for the node's state, and the
// nodes that took part in the last answer marked (the winner most). Built with
// createElementNS; colours and sizes come from classes in app.css (the CSP forbids inline
// styles). Redrawn at the element's own size, so a phone gets a layout of its own rather than
// a shrunken desktop one.

import { $, svgEl } from './dom.js';

/** Most nodes drawn; the rest are counted in a note (the cards list them all). */
export const MAX_DRAWN = 240;
/** Labels are drawn only while each node has at least this much room on its ring (px). */
const LABEL_ROOM = 26;
const CHAR_PX = 6.4;
/** Nodes nearer the vertical than this (|cos|) are labelled above or below, not beside. */
const MIDDLE = 0.35;
/** Distance between the staggered rows of labels above and below the ring. */
const ROW = 14;

/** Node radius for `n` nodes. */
const radius = (n) => (n <= 8 ? 11 : n <= 24 ? 8 : n <= 60 ? 6 : 4);

function ellipsePerimeter(a, b) {
  // Ramanujan's approximation: plenty for spacing dots.
  return Math.PI * (3 * (a + b) - Math.sqrt((3 * a + b) * (a + 3 * b)));
}

/**
 * Positions on concentric ellipses: the outer ring first, each ring holding as many as its
 * perimeter has room for. Returns [{x, y, cos, sin, ring, room}].
 */
function layout(n, w, h, r, labelled) {
  const cx = w / 2;
  const cy = h / 2;
  // Room for labels beside the ring (left and right) and for three staggered rows above and
  // below it.
  const padX = labelled ? Math.min(130, Math.max(60, w * 0.18)) : r + 6;
  const padY = labelled ? r + 8 + 9 + 2 * ROW + 3 : r + 6;
  const rx = Math.max(24, cx - padX);
  const ry = Math.max(24, cy - padY);
  const gap = 2 * r + 4;
  const rings = [];
  let left = n;
  for (let scale = 1; left > 0; scale -= 0.22) {
    const s = Math.max(scale, 0.3);
    const cap = Math.max(1, Math.floor(ellipsePerimeter(rx * s, ry * s) / gap));
    // The innermost ring takes whatever is left, however crowded.
    const take = s <= 0.3 ? left : Math.min(left, cap);
    rings.push({ s, take });
    left -= take;
  }
  const out = [];
  rings.forEach((ring, k) => {
    for (const a of evenly(rx * ring.s, ry * ring.s, ring.take)) {
      const cos = Math.cos(a.t);
      const sin = Math.sin(a.t);
      out.push({ x: cx + rx * ring.s * cos, y: cy + ry * ring.s * sin, cos, sin, ring: k, room: a.room, top: cy - ry * ring.s, bottom: cy + ry * ring.s });
    }
  });
  return out;
}

/**
 * `n` angles on an ellipse with equal arc length between neighbours (equal angles would crowd
 * the ends of a wide ellipse), starting half a step right of the top so no node sits straight
 * above the gateway; a lone node goes to the right, where its link has the most room.
 * Returns [{t, room}], `room` being the arc length to the next.
 */
function evenly(a, b, n) {
  const STEPS = 720;
  const at = (t) => [a * Math.cos(t), b * Math.sin(t)];
  const start = -Math.PI / 2;
  const length = [0];
  let [px, py] = at(start);
  for (let i = 1; i <= STEPS; i++) {
    const [x, y] = at(start + (2 * Math.PI * i) / STEPS);
    length.push(length[i - 1] + Math.hypot(x - px, y - py));
    [px, py] = [x, y];
  }
  const total = length[STEPS];
  const out = [];
  let i = 0;
  for (let j = 0; j < n; j++) {
    const want = ((j + (n === 1 ? 0.25 : 0.5)) * total) / n;
    while (i < STEPS && length[i + 1] < want) i++;
    const frac = (want - length[i]) / Math.max(1e-9, length[i + 1] - length[i]);
    out.push({ t: start + (2 * Math.PI * (i + frac)) / STEPS, room: total / n });
  }
  return out;
}

function shorten(name, chars) {
  return name.length <= chars ? name : `${name.slice(0, Math.max(1, chars - 1))}…`;
}

/**
 * A label outside its node, anchored away from the centre so it grows outwards: beside the
 * node on the left and right, above or below it at the top and bottom, where neighbours sit in
 * three rows (`row` 0 to 2) so each gets three times the width. `room` is the width it may take.
 */
function label(p, r, w, text, row) {
  const d = r + 8; // clear of the winner's halo (r + 5) and its stroke
  let anchor = 'middle';
  if (p.cos > MIDDLE) anchor = 'start';
  else if (p.cos < -MIDDLE) anchor = 'end';
  const x = p.x + d * p.cos;
  let y = p.y + d * p.sin + 4;
  let room = anchor === 'start' ? w - x - 4 : x - 4;
  let rows = null;
  if (anchor === 'middle') {
    // Rows are level bands above and below the ring (not offsets from each node, which would
    // make neighbours' rows overlap). Its own row first, then the other two if it is taken.
    rows = [0, 1, 2].map((k) => ((row + k) % 3) * ROW).map((out) => (p.sin < 0 ? p.top - d - out : p.bottom + d + 9 + out));
    y = rows[0];
    room = Math.min(w - 8, 3 * p.room - 8);
  }
  const t = svgEl('text', { class: 'tlabel', x: x.toFixed(1), y: y.toFixed(1), 'text-anchor': anchor, text: shorten(text, Math.max(3, Math.floor(room / CHAR_PX))) });
  return { t, room, text, rows };
}

/** The winner's label in a picture too crowded for labels: centred on the dot, kept inside. */
function lone(p, r, w, h, text) {
  const room = Math.min(w - 8, 120);
  const x = Math.min(Math.max(p.x, room / 2 + 4), w - room / 2 - 4);
  const y = Math.min(Math.max(p.sin < 0 ? p.y - r - 6 : p.y + r + 14, 14), h - 4);
  const t = svgEl('text', { class: 'tlabel lone', x: x.toFixed(1), y: y.toFixed(1), 'text-anchor': 'middle', text: shorten(text, Math.floor(room / CHAR_PX)) });
  return { t, room, text, rows: null };
}

/**
 * Shortens each label until it fits its room and clears every label placed before it; one
 * that cannot is removed (its node keeps its tooltip, and its card has the name). Needs layout.
 */
function fit(labels) {
  const placed = [];
  const clash = (b) => placed.some((p) => b.x < p.x + p.width + 2 && p.x < b.x + b.width + 2 && b.y < p.y + p.height && p.y < b.y + b.height);
  for (const { t, room, text, rows } of labels) {
    let chars = t.textContent.length;
    while (chars > 3 && t.getComputedTextLength() > room) t.textContent = shorten(text, --chars);
    let box = t.getBBox();
    for (const y of rows || []) {
      if (!clash(box)) break;
      t.setAttribute('y', y.toFixed(1));
      box = t.getBBox();
    }
    if (rows && clash(box)) {
      t.setAttribute('y', rows[0].toFixed(1));
      box = t.getBBox();
    }
    while (chars > 3 && clash(box)) {
      t.textContent = shorten(text, --chars);
      box = t.getBBox();
    }
    if (clash(box)) t.remove();
    else placed.push(box);
  }
}

/**
 * Draws `view` into `svg`. `answered`: worker id -> outcome in the last answer. `opts.onPick(id)`
 * is called when a node is clicked.
 */
export function drawTopology(svg, view, answered, opts = {}) {
  const w = Math.max(200, Math.round(svg.clientWidth || 480));
  const h = Math.max(160, Math.round(svg.clientHeight || 240));
  svg.setAttribute('viewBox', `0 0 ${w} ${h}`);
  const workers = (view.workers || []).slice(0, MAX_DRAWN);
  const hidden = (view.workers || []).length - workers.length;
  const n = workers.length;
  const r = radius(n);
  // First a layout as if labelled; labels go only if each node then has room for one.
  let pos = layout(n, w, h, r, true);
  const labelled = n > 0 && pos.every((p) => p.room >= LABEL_ROOM && p.ring === 0);
  if (!labelled) pos = layout(n, w, h, r, false);
  const cx = w / 2;
  const cy = h / 2;

  const links = svgEl('g', { class: 'tlinks' });
  const nodes = svgEl('g', { class: 'tnodes' });
  const labels = svgEl('g', { class: 'tlabels' });
  const sized = [];
  // Above and below the ring, neighbours from left to right take rows 0, 1, 2, 0, ...
  const rowOf = new Map();
  for (const above of [true, false]) {
    pos.map((p, k) => ({ p, k }))
      .filter(({ p }) => Math.abs(p.cos) <= MIDDLE && p.sin < 0 === above)
      .sort((a, b) => a.p.x - b.p.x)
      .forEach(({ k }, i) => rowOf.set(k, i % 3));
  }
  workers.forEach((wk, k) => {
    const p = pos[k];
    const id = wk.worker.id;
    const outcome = answered.get(id);
    const busy = (wk.worker.queue_depth || 0) > 0 && wk.state !== 'gone';
    const cls = ['st-' + wk.state, outcome === 'won' ? 'won' : outcome ? 'asked' : '', busy ? 'active' : ''].filter(Boolean).join(' ');
    links.append(svgEl('line', { class: `tlink ${cls}`, x1: cx.toFixed(1), y1: cy.toFixed(1), x2: p.x.toFixed(1), y2: p.y.toFixed(1), 'data-id': id }));
    const g = svgEl('g', { class: `tnode ${cls}`, 'data-id': id, 'data-name': wk.worker.name, 'data-state': wk.state, 'data-answered': outcome || null },
      svgEl('title', { text: `${wk.worker.name}: ${wk.state}${outcome ? `, ${outcome} the last answer` : ''}` }),
      outcome === 'won' ? svgEl('circle', { class: 'halo', cx: p.x.toFixed(1), cy: p.y.toFixed(1), r: r + 5 }) : null,
      svgEl('circle', { class: 'dot', cx: p.x.toFixed(1), cy: p.y.toFixed(1), r }));
    if (opts.onPick) g.addEventListener('click', () => opts.onPick(id));
    nodes.append(g);
    if (labelled || outcome === 'won') {
      const l = labelled ? label(p, r, w, wk.worker.name, rowOf.get(k) || 0) : lone(p, r, w, h, wk.worker.name);
      sized.push(l);
      labels.append(l.t);
    }
  });
  const hub = svgEl('g', { class: 'thub' },
    svgEl('circle', { cx: cx.toFixed(1), cy: cy.toFixed(1), r: 16 }),
    svgEl('text', { class: 'thub-label', x: cx.toFixed(1), y: (cy + 4).toFixed(1), 'text-anchor': 'middle', text: 'GW' }),
    svgEl('title', { text: 'the gateway' }));
  const extra = hidden > 0
    ? svgEl('text', { class: 'tmore', x: (w - 6).toFixed(1), y: (h - 6).toFixed(1), 'text-anchor': 'end', text: `+${hidden} more (see the list)` })
    : null;
  svg.replaceChildren(links, hub, nodes, labels, ...(extra ? [extra] : []));
  fit(sized);
  svg.dataset.nodes = String(n);
  // A few nodes need a shorter picture than many (app.css sizes it by this).
  svg.dataset.size = n <= 4 ? 'few' : n <= 12 ? 'some' : 'many';
  svg.dataset.labelled = labelled ? 'yes' : 'no';

  const counts = {};
  for (const wk of view.workers || []) counts[wk.state] = (counts[wk.state] || 0) + 1;
  const states = Object.entries(counts).map(([s, c]) => `${c} ${s}`).join(', ');
  const names = opts.names || ((id) => id);
  const winner = [...answered].find(([, o]) => o === 'won');
  const others = [...answered].filter(([, o]) => o !== 'won').map(([id, o]) => `${names(id)} (${o})`);
  const last = answered.size
    ? `Last answer: ${winner ? `${names(winner[0])} won` : 'no winner'}${others.length ? `; also asked ${others.join(', ')}` : ''}.`
    : opts.unmarked || 'No answer yet.';
  svg.setAttribute('aria-label', `The gateway and ${n + hidden} node${n + hidden === 1 ? '' : 's'}${states ? ` (${states})` : ''}. ${last}`);
  $('topo-caption').textContent = last;
}

let observer = null;

/** Redraws with `redraw` whenever the picture's box changes size (rotation, window resize). */
export function watchSize(svg, redraw) {
  if (observer || typeof ResizeObserver === 'undefined') return;
  let last = '';
  observer = new ResizeObserver(() => {
    const size = `${svg.clientWidth}x${svg.clientHeight}`;
    if (size !== last) {
      last = size;
      redraw();
    }
  });
  observer.observe(svg);
}
