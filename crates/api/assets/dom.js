// Shared helpers: DOM building without markup strings, the authenticated fetch, and the
// server-sent-events reader. Nothing here holds data of its own except the token in use.

export const SVG_NS = 'http://www.w3.org/2000/svg';
export const REFUSED = 'That token was refused by the gateway';

export const $ = (id) => document.getElementById(id);

/** A 401 after sign-in: the token was revoked or the gateway restarted with another. */
export class Refused extends Error {}

/** `el(tag, {attrs}, ...children)`: builds DOM with createElement and textContent only, so no
 *  string from the gateway or a model is ever parsed as markup. */
export function el(tag, attrs = {}, ...children) {
  return fill(document.createElement(tag), attrs, children);
}

/** The same for SVG elements. */
export function svgEl(tag, attrs = {}, ...children) {
  return fill(document.createElementNS(SVG_NS, tag), attrs, children);
}

function fill(e, attrs, children) {
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.setAttribute('class', v);
    else if (k === 'text') e.textContent = v;
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) e.append(c);
  return e;
}

let token = null;

/** The token in use, or null when signed out. */
export const getToken = () => token;
export const setToken = (t) => { token = t; };

export async function api(path, opts = {}) {
  const headers = { ...(opts.headers || {}), Authorization: `Bearer ${token}` };
  const r = await fetch(path, { ...opts, headers, cache: 'no-store' });
  if (r.status === 401) throw new Refused(REFUSED);
  return r;
}

/** The `message` of an OpenAI-shaped error body, or the HTTP status. */
export async function errorText(r) {
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
export async function* sse(response) {
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

export const fmtMs = (v) => (v === null || v === undefined ? '–' : `${Math.round(v)} ms`);
export const fmtRate = (tokens, ms) => (ms > 0 && tokens > 0 ? `${(tokens / (ms / 1000)).toFixed(1)} tok/s` : '–');
export const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));
