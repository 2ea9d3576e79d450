// Requests/s and tokens/s over the last five minutes, from the gateway's Prometheus counters.

import { $, api, sleep, svgEl, Refused } from './dom.js';

const PERF_EVERY_MS = 2000;
const PERF_WINDOW_MS = 5 * 60 * 1000;

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
  const max = Math.max(...values, 0);
  $(now).textContent = values.length ? `${values[values.length - 1].toFixed(digits)} (peak ${max.toFixed(digits)})` : '–';
  const n = Math.max(1, PERF_WINDOW_MS / PERF_EVERY_MS - 1);
  const pts = values.map((v, i) => {
    const x = 300 - ((values.length - 1 - i) * 300) / n;
    const y = 58 - (max > 0 ? (v / max) * 54 : 0);
    return `${x.toFixed(1)},${y.toFixed(1)}`;
  });
  $(id).replaceChildren(svgEl('polyline', { points: pts.join(' ') }));
}

/** Scrapes /metrics every two seconds until `signal` aborts; `refused` on a 401. */
export async function perfLoop(signal, refused) {
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
    await sleep(PERF_EVERY_MS);
  }
}

export function clearPerf() {
  samples.length = 0;
  $('rps').replaceChildren();
  $('tps').replaceChildren();
  $('rps-now').textContent = '–';
  $('tps-now').textContent = '–';
}
