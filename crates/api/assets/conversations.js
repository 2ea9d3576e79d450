// Conversations kept in this browser (localStorage), never on the gateway. Everything is
// bounded: how many conversations, messages and characters are kept, and what a request sends
// back of a conversation (the gateway's limits). Storage that is full, missing or corrupted
// costs the user a notice, never the page.

const KEY = 'nova.conversations';
const VERSION = 1;

/** Most conversations kept; starting one more forgets the least recently used. */
export const MAX_CONVERSATIONS = 50;
/** Most messages kept per conversation; older ones are dropped first. */
export const MAX_KEPT_MESSAGES = 256;
/** Most characters of one message kept (a longer answer is cut, and says so). */
export const MAX_KEPT_CHARS = 256 * 1024;
/** Longest title. */
export const MAX_TITLE = 80;
/** A trace is kept with its answer only when its JSON is at most this long. */
const MAX_TRACE_JSON = 16 * 1024;
const CUT_NOTE = '\n\n[… cut: too long to keep in this browser]';

// The gateway's request limits (nova_proto::Limits::default(); a Rust test keeps these equal).
/** Most messages in one request. */
export const MAX_MESSAGES = 256;
/** Most bytes of prompt text in one request. */
export const MAX_PROMPT_BYTES = 64 * 1024;
/** What a request sends of a conversation, in bytes: room is left under MAX_PROMPT_BYTES
 *  because a stream taken over by another worker resends the partial answer with it. */
export const HISTORY_BYTES = 48 * 1024;

export const UNTITLED = 'New conversation';

/** { current: id|null, list: [conversation] }, most recently used first. A conversation is
 *  { id, title, titled (chosen by the user), created, updated, messages: [message] }; a
 *  message is { role: 'user'|'assistant', content, state?, note?, trace? }. */
let data = { current: null, list: [] };

const utf8 = new TextEncoder();
const bytes = (s) => utf8.encode(s).length;

function newId() {
  // crypto.randomUUID needs a secure context; a gateway on a LAN address is plain http.
  return `c${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
}

const str = (v, max) => (typeof v === 'string' ? v.slice(0, max) : null);
const num = (v) => (Number.isFinite(v) ? v : 0);

function cleanMessage(m) {
  if (!m || (m.role !== 'user' && m.role !== 'assistant') || typeof m.content !== 'string') return null;
  const out = { role: m.role, content: m.content.slice(0, MAX_KEPT_CHARS + CUT_NOTE.length) };
  if (m.state === 'stopped' || m.state === 'error' || m.state === 'done') out.state = m.state;
  const note = str(m.note, 500);
  if (note) out.note = note;
  if (m.trace && typeof m.trace === 'object' && JSON.stringify(m.trace).length <= MAX_TRACE_JSON) out.trace = m.trace;
  return out;
}

function cleanConversation(c) {
  if (!c || typeof c.id !== 'string' || c.id.length > 64 || !Array.isArray(c.messages)) return null;
  return {
    id: c.id,
    title: str(c.title, MAX_TITLE) || UNTITLED,
    titled: c.titled === true,
    created: num(c.created),
    updated: num(c.updated),
    messages: c.messages.map(cleanMessage).filter(Boolean).slice(-MAX_KEPT_MESSAGES),
  };
}

/** Reads what this browser kept. Returns a notice for the user when something was unusable. */
export function load() {
  let raw;
  try {
    raw = localStorage.getItem(KEY);
  } catch {
    data = { current: null, list: [] };
    return 'This browser does not allow saved conversations here; they last until the page closes.';
  }
  if (raw === null) {
    data = { current: null, list: [] };
    return null;
  }
  try {
    const v = JSON.parse(raw);
    if (!v || v.v !== VERSION || !Array.isArray(v.list)) throw new Error('unknown shape');
    const seen = new Set();
    const list = v.list.map(cleanConversation).filter((c) => c && !seen.has(c.id) && seen.add(c.id));
    list.sort((a, b) => b.updated - a.updated);
    data = { current: typeof v.current === 'string' && seen.has(v.current) ? v.current : null, list: list.slice(0, MAX_CONVERSATIONS) };
    return list.length < v.list.length ? 'Some saved conversations could not be read and were left out.' : null;
  } catch {
    data = { current: null, list: [] };
    return 'The saved conversations could not be read (the stored data is damaged); starting afresh.';
  }
}

const isQuota = (e) => e && (e.name === 'QuotaExceededError' || e.name === 'NS_ERROR_DOM_QUOTA_REACHED' || e.code === 22);

function write(value) {
  localStorage.setItem(KEY, JSON.stringify({ v: VERSION, ...value }));
}

/**
 * Writes everything back. When the browser's storage is full, the least recently used other
 * conversations are given up one at a time; if the current one alone is too big, only its
 * newest messages are kept on disk (all stay on screen). Returns a notice, or null.
 */
export function save() {
  try {
    write(data);
    return null;
  } catch (e) {
    if (!isQuota(e)) return `The conversations could not be saved: ${e.message}`;
  }
  const dropped = [];
  while (data.list.length > 1) {
    const victim = [...data.list].reverse().find((c) => c.id !== data.current);
    if (!victim) break;
    data.list = data.list.filter((c) => c !== victim);
    dropped.push(victim.title);
    try {
      write(data);
      return `The browser's storage is full: removed the oldest conversation${dropped.length > 1 ? 's' : ''} ${dropped.map((t) => `“${t}”`).join(', ')}.`;
    } catch (e) {
      if (!isQuota(e)) return `The conversations could not be saved: ${e.message}`;
    }
  }
  const cur = current();
  if (cur) {
    for (let keep = Math.floor(cur.messages.length / 2); keep >= 1; keep = Math.floor(keep / 2)) {
      try {
        write({ current: data.current, list: data.list.map((c) => (c === cur ? { ...c, messages: c.messages.slice(-keep) } : c)) });
        return `The browser's storage is full: only the last ${keep} messages of this conversation are kept for next time.`;
      } catch (e) {
        if (!isQuota(e)) break;
      }
    }
  }
  return "The browser's storage is full: this conversation is not saved and will be lost when the page closes.";
}

export const all = () => data.list;
export const current = () => data.list.find((c) => c.id === data.current) || null;
export const byId = (id) => data.list.find((c) => c.id === id) || null;

/** Starts a conversation and makes it current; returns it and the titles of any forgotten. */
export function create() {
  const now = Date.now();
  const c = { id: newId(), title: UNTITLED, titled: false, created: now, updated: now, messages: [] };
  data.list.unshift(c);
  data.current = c.id;
  const forgotten = data.list.splice(MAX_CONVERSATIONS).map((x) => x.title);
  return { conversation: c, forgotten };
}

export function select(id) {
  if (byId(id)) data.current = id;
}

export function rename(id, title) {
  const c = byId(id);
  const t = String(title).replace(/\s+/g, ' ').trim().slice(0, MAX_TITLE);
  if (!c || !t) return false;
  c.title = t;
  c.titled = true;
  return true;
}

/** Removes a conversation; returns what `restore` needs to undo it. */
export function remove(id) {
  const at = data.list.findIndex((c) => c.id === id);
  if (at < 0) return null;
  const [c] = data.list.splice(at, 1);
  const wasCurrent = data.current === id;
  if (wasCurrent) data.current = data.list.length ? data.list[0].id : null;
  return { conversation: c, at, wasCurrent };
}

export function restore(removed) {
  if (!removed || byId(removed.conversation.id)) return;
  data.list.splice(Math.min(removed.at, data.list.length), 0, removed.conversation);
  if (removed.wasCurrent) data.current = removed.conversation.id;
  data.list.splice(MAX_CONVERSATIONS);
}

/** Appends a message to `c` within the bounds; the first question names an untitled one. */
export function push(c, message) {
  let content = message.content;
  if (content.length > MAX_KEPT_CHARS) content = content.slice(0, MAX_KEPT_CHARS) + CUT_NOTE;
  const m = cleanMessage({ ...message, content });
  if (!m) return;
  c.messages.push(m);
  if (c.messages.length > MAX_KEPT_MESSAGES) c.messages.splice(0, c.messages.length - MAX_KEPT_MESSAGES);
  if (!c.titled && c.title === UNTITLED && m.role === 'user') {
    const line = m.content.replace(/\s+/g, ' ').trim();
    c.title = line.length > 48 ? `${line.slice(0, 47)}…` : line || UNTITLED;
  }
  touch(c);
}

/** Drops the last message (a question that got no answer). */
export function pop(c) {
  c.messages.pop();
  touch(c);
}

function touch(c) {
  c.updated = Date.now();
  const at = data.list.indexOf(c);
  if (at > 0) {
    data.list.splice(at, 1);
    data.list.unshift(c);
  }
}

/**
 * What a request sends of `c`: its questions and answers, newest last, the oldest dropped until
 * the gateway's limits hold (count and bytes); it never starts with an answer.
 */
export function history(c) {
  const msgs = c.messages.filter((m) => m.content).map((m) => ({ role: m.role, content: m.content }));
  let size = msgs.reduce((n, m) => n + bytes(m.content), 0);
  let start = 0;
  while (msgs.length - start > 1 && (msgs.length - start > MAX_MESSAGES || size > HISTORY_BYTES)) {
    size -= bytes(msgs[start].content);
    start++;
  }
  while (msgs.length - start > 1 && msgs[start].role !== 'user') start++;
  return msgs.slice(start);
}

/** Calls `fn` when another tab of this browser changed the conversations. */
export function onOtherTab(fn) {
  window.addEventListener('storage', (e) => {
    if (e.key === KEY || e.key === null) fn();
  });
}
