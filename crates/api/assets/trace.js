// What is shown under an answer: who was asked, who won and how fast (the `nova` trace of a
// chat completion), and the sources of a grounded answer.

import { el, fmtMs, fmtRate } from './dom.js';
import { workerName } from './swarm.js';

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
 *  auto's reason, and candidates' texts (ensembles with debug). Open under a fresh answer,
 *  closed under the answers of a conversation reopened. */
export function renderTrace(trace, open = true) {
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
  return el('details', { class: 'trace', open },
    el('summary', { text: 'Trace' }), sum, ...extra, ...body, ...cands);
}

/** The citations of a grounded answer: `[n] node: path`, the passage behind a disclosure. */
export function renderSources(sources) {
  return el('ol', { class: 'sources', 'aria-label': 'Sources' },
    ...sources.map((s) => el('li', { value: String(s.n) },
      el('details', {},
        el('summary', { text: `${s.node}: ${s.path} (part ${s.chunk + 1}, score ${s.score.toFixed(2)})` }),
        el('blockquote', { text: s.text })))));
}

/** Who took part in an answer: worker id -> outcome ('won', 'lost', ...), every stage included. */
export function participants(trace) {
  const out = new Map();
  if (!trace) return out;
  const add = (a) => {
    if (a && a.worker && (!out.has(a.worker) || a.outcome === 'won')) out.set(a.worker, a.outcome);
  };
  (trace.attempts || []).forEach(add);
  for (const s of trace.stages || []) (s.attempts || []).forEach(add);
  if (trace.winner) out.set(trace.winner, 'won');
  return out;
}
