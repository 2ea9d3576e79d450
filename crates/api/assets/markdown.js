// A small Markdown renderer for answers. Model output is untrusted: it is never parsed as HTML.
// Every node is made with createElement and every piece of text goes in with textContent, so
// `<script>`, `<img onerror>` and the like show as the characters the model wrote. Links keep
// only http:, https: and mailto: targets (as the browser's own URL parser reads them); anything
// else stays plain text.
//
// Supported: ATX and setext headings, paragraphs (a single newline is a line break, as chat
// answers are written), emphasis, strong, strikethrough, inline code, fenced code blocks with
// a Copy button, bullet and ordered lists (nested), blockquotes, pipe tables, rules, links,
// <autolinks> and bare http(s) URLs. Images become links: the page loads nothing remote.
//
// The work is bounded: input beyond MAX_MARKDOWN_CHARS is shown as plain text, nesting is
// capped, and every search for a closing delimiter either consumes what it scanned or is
// remembered as failed, so hostile input renders in time linear in its length.

import { el } from './dom.js';

/** Longest answer rendered as Markdown; the rest is appended as plain text. */
export const MAX_MARKDOWN_CHARS = 400_000;
const MAX_BLOCK_DEPTH = 6;
const MAX_INLINE_DEPTH = 8;
const MAX_URL = 2048;
const MAX_TITLE = 200;
const MAX_TABLE_COLS = 32;
const MAX_LANG = 32;
const SAFE_SCHEMES = new Set(['http:', 'https:', 'mailto:']);

/** The href a link may have, or null. Absolute URLs only: a relative one would point into
 *  the gateway's own API. */
export function safeHref(raw) {
  if (!raw || raw.length > MAX_URL) return null;
  let u;
  try {
    u = new URL(raw);
  } catch {
    return null;
  }
  return SAFE_SCHEMES.has(u.protocol) ? u.href : null;
}

/** `text` rendered as Markdown into a new DocumentFragment. */
export function renderMarkdown(text) {
  const frag = document.createDocumentFragment();
  let src = String(text);
  let rest = '';
  if (src.length > MAX_MARKDOWN_CHARS) {
    rest = src.slice(MAX_MARKDOWN_CHARS);
    src = src.slice(0, MAX_MARKDOWN_CHARS);
  }
  const lines = src.replace(/\r\n?/g, '\n').split('\n').map(expandTabs);
  blocks(lines, 0, frag);
  if (rest) {
    frag.append(
      el('p', { class: 'md-note', text: `The answer's last ${rest.length} characters are shown as plain text.` }),
      el('div', { class: 'md-rest', text: rest }));
  }
  return frag;
}

// ---------------------------------------------------------------- blocks

const FENCE = /^( {0,3})(`{3,}|~{3,})(.*)$/;
const HEADING = /^ {0,3}(#{1,6})(?=[ \t]|$)/;
const RULE = /^ {0,3}([-*_])[ \t]*(?:\1[ \t]*){2,}$/;
const QUOTE = /^ {0,3}>/;
const ITEM = /^( {0,3})([-*+]|(\d{1,9})([.)]))([ \t]+|$)/;
const SETEXT = /^ {0,3}(=+|-+)[ \t]*$/;
const TABLE_DELIM = /^ {0,3}\|?[ \t]*:?-+:?[ \t]*(?:\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*$/;

const blank = (l) => l.trim() === '';
const indentOf = (l) => l.length - l.replace(/^ +/, '').length;

function expandTabs(line) {
  if (!line.startsWith('\t') && !line.startsWith(' \t')) return line;
  const lead = /^[ \t]*/.exec(line)[0];
  let n = 0;
  for (const c of lead) n = c === '\t' ? n + 4 - (n % 4) : n + 1;
  return ' '.repeat(n) + line.slice(lead.length);
}

function fenceOpen(line) {
  const m = FENCE.exec(line);
  if (!m || (m[2][0] === '`' && m[3].includes('`'))) return null;
  const lang = m[3].trim().split(/\s/)[0].slice(0, MAX_LANG).replace(/[^\w+#.-]/g, '');
  return { indent: m[1].length, char: m[2][0], len: m[2].length, lang };
}

function isTableStart(lines, i) {
  const head = lines[i];
  const delim = lines[i + 1];
  if (delim === undefined || head.length > 4096 || delim.length > 4096) return false;
  if (!head.includes('|') || !TABLE_DELIM.test(delim) || !(head.includes('|') && delim.includes('|'))) return false;
  return cells(head).length === cells(delim).length;
}

/** Whether `line` begins a block that ends a paragraph. As in CommonMark, a list interrupts
 *  one only with a first item that has text and, if numbered, is number 1 ("In 1990. we…"
 *  stays a sentence). */
function interrupts(lines, i) {
  const line = lines[i];
  if (fenceOpen(line) !== null || HEADING.test(line) || RULE.test(line) || QUOTE.test(line)) return true;
  const m = ITEM.exec(line);
  if (m && !blank(line.slice(m[0].length)) && (m[3] === undefined || Number(m[3]) === 1)) return true;
  return isTableStart(lines, i);
}

function blocks(lines, depth, parent) {
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (blank(line)) {
      i++;
      continue;
    }
    const fence = fenceOpen(line);
    if (fence) {
      i = codeFence(lines, i, fence, parent);
    } else if (HEADING.test(line)) {
      const level = HEADING.exec(line)[1].length;
      parent.append(heading(level, stripClosingHashes(line.replace(HEADING, '').trim())));
      i++;
    } else if (RULE.test(line)) {
      parent.append(el('hr'));
      i++;
    } else if (QUOTE.test(line)) {
      const inner = [];
      while (i < lines.length && QUOTE.test(lines[i])) inner.push(lines[i++].replace(/^ {0,3}> ?/, ''));
      const bq = el('blockquote');
      nest(inner, depth, bq);
      parent.append(bq);
    } else if (ITEM.test(line)) {
      i = list(lines, i, depth, parent);
    } else if (isTableStart(lines, i)) {
      i = table(lines, i, parent);
    } else {
      const para = [line.trim()];
      i++;
      let level = 0;
      while (i < lines.length && !blank(lines[i])) {
        const m = SETEXT.exec(lines[i]);
        if (m) {
          level = m[1][0] === '=' ? 1 : 2;
          i++;
          break;
        }
        if (interrupts(lines, i)) break;
        para.push(lines[i++].trim());
      }
      const text = para.join('\n');
      parent.append(level ? heading(level, text) : inlineInto(el('p'), text, 0));
    }
  }
}

/** Nested blocks, or plain text once nesting is deep enough to be an attack, not an answer. */
function nest(lines, depth, parent) {
  if (depth + 1 >= MAX_BLOCK_DEPTH) parent.append(el('p', { class: 'md-deep', text: lines.join('\n') }));
  else blocks(lines, depth + 1, parent);
}

function stripClosingHashes(text) {
  let end = text.length;
  while (end > 0 && text[end - 1] === '#') end--;
  if (end === text.length) return text;
  if (end === 0) return '';
  return text[end - 1] === ' ' || text[end - 1] === '\t' ? text.slice(0, end).trimEnd() : text;
}

/** Answers sit under the page's own h2, so their headings start at h3. */
function heading(level, text) {
  const h = el(`h${Math.min(6, level + 2)}`, { class: `md-h md-h${level}` });
  return inlineInto(h, text, 0);
}

function codeFence(lines, i, fence, parent) {
  const body = [];
  i++;
  for (; i < lines.length; i++) {
    const l = lines[i];
    const close = /^ {0,3}(`{3,}|~{3,})[ \t]*$/.exec(l);
    if (close && close[1][0] === fence.char && close[1].length >= fence.len) {
      i++;
      break;
    }
    // Content keeps its own indentation beyond the fence's.
    body.push(l.slice(Math.min(fence.indent, indentOf(l))));
  }
  // An unclosed fence runs to the end: mid-stream, the block is still arriving.
  parent.append(codeBlock(body.join('\n'), fence.lang));
  return i;
}

function codeBlock(code, lang) {
  const pre = el('pre', { tabindex: '0' }, el('code', { text: code }));
  const copy = el('button', { type: 'button', class: 'md-copy', text: 'Copy', 'aria-label': lang ? `Copy the ${lang} code` : 'Copy the code' });
  copy.addEventListener('click', () => copyCode(code, pre, copy));
  return el('div', { class: 'md-code', 'data-lang': lang || null },
    el('div', { class: 'md-code-bar' }, el('span', { class: 'md-lang', text: lang || 'code' }), copy),
    pre);
}

/** The clipboard API where the browser offers it (secure contexts: https, localhost); else the
 *  block's text is selected and the old copy command tried, so Ctrl+C works either way. */
async function copyCode(code, pre, button) {
  let ok = false;
  if (navigator.clipboard && window.isSecureContext) {
    try {
      await navigator.clipboard.writeText(code);
      ok = true;
    } catch { /* refused: fall back */ }
  }
  if (!ok) {
    const range = document.createRange();
    range.selectNodeContents(pre);
    const sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
    try {
      ok = document.execCommand('copy');
    } catch {
      ok = false;
    }
  }
  button.textContent = ok ? 'Copied' : 'Selected: press Ctrl+C';
  button.dataset.copied = ok ? 'yes' : 'selected';
  setTimeout(() => {
    button.textContent = 'Copy';
    delete button.dataset.copied;
  }, 2500);
}

function list(lines, i, depth, parent) {
  const first = ITEM.exec(lines[i]);
  const ordered = first[3] !== undefined;
  const kind = ordered ? first[4] : first[2];
  const root = ordered ? el('ol') : el('ul');
  if (ordered && Number(first[3]) !== 1) root.setAttribute('start', String(Number(first[3])));
  const same = (m) => m && (ordered ? m[4] === kind : m[3] === undefined && m[2] === kind);
  while (i < lines.length) {
    if (blank(lines[i])) {
      let j = i;
      while (j < lines.length && blank(lines[j])) j++;
      if (j < lines.length && same(ITEM.exec(lines[j]))) i = j;
      else break;
    }
    const m = ITEM.exec(lines[i]);
    if (!same(m)) break;
    const markerIndent = m[1].length;
    const gap = m[5].length;
    const content = markerIndent + m[2].length + (gap >= 1 && gap <= 4 ? gap : 1);
    const item = [lines[i].slice(m[0].length)];
    i++;
    while (i < lines.length) {
      const l = lines[i];
      if (blank(l)) {
        let j = i;
        while (j < lines.length && blank(lines[j])) j++;
        if (j < lines.length && indentOf(lines[j]) >= content) {
          while (i < j) item.push(lines[i++].slice(content));
          continue;
        }
        break;
      }
      const lead = indentOf(l);
      if (lead >= content) {
        item.push(l.slice(content));
      } else if (lead > markerIndent && ITEM.test(l)) {
        // A sub-list indented less than the text above it, as models often write it.
        item.push(l.slice(lead));
      } else if (!ITEM.test(l) && !interrupts(lines, i)) {
        item.push(l.trim());
      } else {
        break;
      }
      i++;
    }
    const li = el('li');
    nest(item, depth, li);
    root.append(li);
  }
  parent.append(root);
  return i;
}

/** The cells of a table row: split on unescaped pipes, outer pipes dropped. */
function cells(row) {
  let s = row.trim();
  if (s.startsWith('|')) s = s.slice(1);
  if (s.endsWith('|') && !s.endsWith('\\|')) s = s.slice(0, -1);
  const out = [];
  let cur = '';
  for (let k = 0; k < s.length; k++) {
    if (s[k] === '\\' && s[k + 1] === '|') {
      cur += '|';
      k++;
    } else if (s[k] === '|') {
      out.push(cur.trim());
      cur = '';
    } else {
      cur += s[k];
    }
  }
  out.push(cur.trim());
  return out.slice(0, MAX_TABLE_COLS);
}

function table(lines, i, parent) {
  const head = cells(lines[i]);
  const align = cells(lines[i + 1]).map((c) => (c.endsWith(':') ? (c.startsWith(':') ? 'center' : 'right') : ''));
  const cell = (tag, text, k) => inlineInto(el(tag, { class: align[k] ? `md-${align[k]}` : null }), text, 0);
  const thead = el('thead', {}, el('tr', {}, ...head.map((c, k) => cell('th', c, k))));
  const tbody = el('tbody');
  i += 2;
  const row = (l) => !blank(l) && l.includes('|') && !fenceOpen(l) && !HEADING.test(l) && !QUOTE.test(l);
  while (i < lines.length && row(lines[i])) {
    const got = cells(lines[i++]);
    tbody.append(el('tr', {}, ...head.map((_, k) => cell('td', got[k] || '', k))));
  }
  parent.append(el('div', { class: 'md-table' }, el('table', {}, thead, tbody)));
  return i;
}

// ---------------------------------------------------------------- inline

const PUNCT = /[!-/:-@[-`{-~]/;
const SPACE = /\s/;
const ALNUM = /[\p{L}\p{N}]/u;
const BARE_URL = /https?:\/\/[^\s<>"'`]+/iy;

function inlineInto(parent, text, depth, inLink = false) {
  new Inline(text, depth, inLink).into(parent);
  return parent;
}

class Inline {
  constructor(s, depth, inLink) {
    this.s = s;
    this.depth = depth;
    this.inLink = inLink;
    /** Delimiter key -> the earliest position a search for its closer started and failed:
     *  no later search can succeed either. */
    this.failed = new Map();
    /** The last `]` found and where that search began: valid for any start in between. */
    this.bracket = { from: -1, at: -1 };
    /** Characters link destinations may still look at. Each attempt looks ahead a bounded
     *  distance, but `[a](` repeated would make every one of them look the whole way: once
     *  this is spent, the rest of the text has no more `[text](url)` links. */
    this.lookahead = 4 * s.length + 4 * MAX_URL;
  }

  into(parent) {
    const s = this.s;
    let buf = '';
    const flush = () => {
      if (buf) text(parent, buf);
      buf = '';
    };
    let i = 0;
    while (i < s.length) {
      const c = s[i];
      let r = null;
      if (c === '\\' && i + 1 < s.length && PUNCT.test(s[i + 1])) {
        buf += s[i + 1];
        i += 2;
        continue;
      }
      if (c === '`') r = this.code(i);
      else if (c === '*' || c === '_' || c === '~') r = this.emphasis(i);
      else if (!this.inLink && (c === '[' || (c === '!' && s[i + 1] === '['))) r = this.link(i);
      else if (!this.inLink && c === '<') r = this.autolink(i);
      else if (!this.inLink && (c === 'h' || c === 'H') && (i === 0 || !ALNUM.test(s[i - 1]))) r = this.bareUrl(i);
      if (r) {
        flush();
        parent.append(r.node);
        i = r.end;
        continue;
      }
      // Not markup: the whole run of this character is text (a run is one delimiter).
      const run = c === '`' || c === '*' || c === '_' || c === '~' ? runLength(s, i) : 1;
      buf += s.slice(i, i + run);
      i += run;
    }
    flush();
  }

  /** Searches from `from` for a closing run of `len` times `ch` accepted by `ok`; remembers
   *  failure per (ch, len). */
  closer(ch, len, from, ok) {
    const key = ch + len;
    const failedAt = this.failed.get(key);
    if (failedAt !== undefined && failedAt <= from) return -1;
    const s = this.s;
    let j = from;
    for (;;) {
      const k = s.indexOf(ch, j);
      if (k < 0) {
        this.failed.set(key, from);
        return -1;
      }
      const m = runLength(s, k);
      if (m === len && ok(k)) return k;
      j = k + m;
    }
  }

  code(i) {
    const s = this.s;
    const n = runLength(s, i);
    const k = this.backtickRun(n, i + n);
    if (k < 0) return null;
    let body = s.slice(i + n, k).replace(/\n/g, ' ');
    if (body.length > 2 && body.startsWith(' ') && body.endsWith(' ') && body.trim()) body = body.slice(1, -1);
    return { node: el('code', { text: body }), end: k + n };
  }

  /** The first run of exactly `n` backticks at or after `from`, or -1. Runs of many different
   *  lengths would make one search per length scan the whole text, so the runs are indexed
   *  by length once, on the first backtick. */
  backtickRun(n, from) {
    if (!this.ticks) {
      this.ticks = new Map();
      const s = this.s;
      for (let k = s.indexOf('`'); k >= 0; k = s.indexOf('`', k)) {
        const m = runLength(s, k);
        if (!this.ticks.has(m)) this.ticks.set(m, []);
        this.ticks.get(m).push(k);
        k += m;
      }
    }
    const at = this.ticks.get(n);
    if (!at) return -1;
    let lo = 0;
    let hi = at.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (at[mid] < from) lo = mid + 1;
      else hi = mid;
    }
    return lo < at.length ? at[lo] : -1;
  }

  emphasis(i) {
    const s = this.s;
    const c = s[i];
    const n = runLength(s, i);
    if (n > 3 || (c === '~' && n !== 2)) return null;
    const next = s[i + n];
    if (next === undefined || SPACE.test(next)) return null;
    if (c === '_' && i > 0 && ALNUM.test(s[i - 1])) return null;
    const k = this.closer(c, n, i + n, (k) => !SPACE.test(s[k - 1]) && k > i + n
      && (c !== '_' || !ALNUM.test(s[k + n] || '')));
    if (k < 0) return null;
    const inner = s.slice(i + n, k);
    let node;
    if (c === '~') node = el('del');
    else if (n === 1) node = el('em');
    else if (n === 2) node = el('strong');
    else node = el('em');
    const target = n === 3 ? node.appendChild(el('strong')) : node;
    this.nested(target, inner);
    return { node, end: k + n };
  }

  nested(target, inner) {
    if (this.depth + 1 >= MAX_INLINE_DEPTH) target.textContent = inner;
    else inlineInto(target, inner, this.depth + 1, this.inLink);
  }

  link(i) {
    const s = this.s;
    const image = s[i] === '!';
    const open = image ? i + 1 : i;
    let close;
    if (this.bracket.from <= open + 1 && open + 1 <= this.bracket.at) {
      close = this.bracket.at;
    } else {
      if (this.failed.has(']') && this.failed.get(']') <= open + 1) return null;
      close = s.indexOf(']', open + 1);
      if (close < 0) {
        this.failed.set(']', open + 1);
        return null;
      }
      this.bracket = { from: open + 1, at: close };
    }
    if (s[close + 1] !== '(' || this.lookahead <= 0) return null;
    const dest = destination(s, close + 2);
    this.lookahead -= dest.scanned;
    if (dest.failed) return null;
    const label = s.slice(open + 1, close);
    const href = safeHref(dest.url);
    if (!href) {
      // What the model wrote, as text: a refused link is not a link.
      return { node: document.createTextNode(s.slice(i, dest.end)), end: dest.end };
    }
    const a = el('a', { href, rel: 'noopener noreferrer nofollow', target: '_blank', title: dest.title || null });
    if (image) {
      a.className = 'md-image';
      a.textContent = `image: ${label || href}`;
    } else if (label.trim()) {
      if (this.depth + 1 >= MAX_INLINE_DEPTH) a.textContent = label;
      else inlineInto(a, label, this.depth + 1, true);
    } else {
      a.textContent = href;
    }
    return { node: a, end: dest.end };
  }

  autolink(i) {
    const s = this.s;
    const limit = Math.min(s.length, i + MAX_URL + 2);
    let k = i + 1;
    for (; k < limit; k++) {
      const ch = s[k];
      if (ch === '>') break;
      if (ch === '<' || SPACE.test(ch)) return null;
    }
    if (s[k] !== '>' || k === i + 1) return null;
    const inner = s.slice(i + 1, k);
    let href = null;
    if (/^[a-z][a-z0-9+.-]{1,31}:/i.test(inner)) href = safeHref(inner);
    else if (isEmail(inner)) href = safeHref(`mailto:${inner}`);
    if (!href) return null;
    return { node: link(href, inner), end: k + 1 };
  }

  bareUrl(i) {
    const s = this.s;
    BARE_URL.lastIndex = i;
    const m = BARE_URL.exec(s);
    if (!m) return null;
    // Too long to be a link: the whole run is text, skipped at once (looking at every
    // "http" inside it again would take time quadratic in its length).
    if (m[0].length > MAX_URL) return { node: document.createTextNode(m[0]), end: i + m[0].length };
    let url = m[0].replace(/[.,:;!?*_~]+$/, '');
    // A closing parenthesis belongs to the URL only if it opened one.
    while (url.endsWith(')') && count(url, '(') < count(url, ')')) url = url.slice(0, -1);
    const href = safeHref(url);
    if (!href || url.length <= 'https://'.length) return null;
    return { node: link(href, url), end: i + url.length };
  }
}

/** local@domain.tld, checked in two parts so no pattern can backtrack over the other. */
function isEmail(s) {
  const at = s.indexOf('@');
  if (at <= 0 || at !== s.lastIndexOf('@')) return false;
  return /^[^\s<>()[\]\\,;:"]+$/.test(s.slice(0, at)) && /^[a-z0-9-]+(?:\.[a-z0-9-]+)+$/i.test(s.slice(at + 1));
}

const link = (href, text) => el('a', { href, rel: 'noopener noreferrer nofollow', target: '_blank', text });
const count = (s, ch) => s.split(ch).length - 1;

function runLength(s, i) {
  let k = i;
  while (s[k] === s[i]) k++;
  return k - i;
}

/** `(url "title")` from just after the `(`: the URL, the title and the end, or `failed`;
 *  with how far it looked (`scanned`), which is bounded. */
function destination(s, from) {
  const limit = Math.min(s.length, from + MAX_URL + MAX_TITLE + 8);
  const failed = (k) => ({ failed: true, scanned: Math.max(1, k - from) });
  let k = from;
  while (k < limit && (s[k] === ' ' || s[k] === '\t')) k++;
  let url = '';
  if (s[k] === '<') {
    let end = k + 1;
    while (end < limit && s[end] !== '>' && s[end] !== '\n') end++;
    if (s[end] !== '>') return failed(end);
    url = s.slice(k + 1, end);
    k = end + 1;
  } else {
    let depth = 0;
    const start = k;
    for (; k < limit; k++) {
      const ch = s[k];
      if (ch === '\\' && PUNCT.test(s[k + 1] || '')) {
        k++;
        continue;
      }
      if (SPACE.test(ch)) break;
      if (ch === '(') depth++;
      if (ch === ')') {
        if (depth === 0) break;
        depth--;
      }
    }
    url = s.slice(start, k).replace(/\\([!-/:-@[-`{-~])/g, '$1');
  }
  while (k < limit && (s[k] === ' ' || s[k] === '\t' || s[k] === '\n')) k++;
  let title = '';
  const q = s[k];
  if (q === '"' || q === "'" || q === '(') {
    const endCh = q === '(' ? ')' : q;
    let end = k + 1;
    while (end < limit && s[end] !== endCh) end++;
    if (s[end] !== endCh) return failed(end);
    title = s.slice(k + 1, end).slice(0, MAX_TITLE);
    k = end + 1;
    while (k < limit && (s[k] === ' ' || s[k] === '\t')) k++;
  }
  if (s[k] !== ')') return failed(k);
  return { url, title, end: k + 1, scanned: k + 1 - from };
}

/** Text with each newline as a line break; trailing spaces before a break are dropped. */
function text(parent, s) {
  const parts = s.split('\n');
  parts.forEach((p, k) => {
    if (k > 0) parent.append(el('br'));
    const t = k < parts.length - 1 ? p.replace(/ +$/, '') : p;
    if (t) parent.append(document.createTextNode(t));
  });
}
