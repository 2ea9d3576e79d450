// The chat: the conversation list (kept in this browser), the messages of the open one with
// answers rendered as Markdown while they stream, and sending a question with its history.

import { $, el, api, errorText, sse, Refused } from './dom.js';
import { renderMarkdown } from './markdown.js';
import * as store from './conversations.js';
import { renderTrace, renderSources, participants } from './trace.js';
import { setAnswered } from './swarm.js';

/** The answer being streamed: {ctl, conv, answer}. One at a time. */
let running = null;
let hooks = { refused: () => {}, signedIn: () => false };
let undoTimer = null;

const utf8 = new TextEncoder();

// ---------------------------------------------------------------- notices

/** Says something about the conversations (storage trouble, a deletion) in the list's status line. */
function notice(msg, ...extra) {
  if (!msg) return;
  clearTimeout(undoTimer);
  $('conv-notice').replaceChildren(msg, ...extra);
}

const saved = () => notice(store.save());

// ---------------------------------------------------------------- the list

function renderList() {
  const cur = store.current();
  const items = store.all().map((c) => {
    const open = el('button', { type: 'button', class: 'conv-open', title: c.title, 'aria-current': c === cur ? 'true' : null, text: c.title });
    open.addEventListener('click', () => openConversation(c.id));
    const rename = el('button', { type: 'button', class: 'conv-rename icon quiet', title: 'Rename', 'aria-label': `Rename “${c.title}”`, text: '✎' });
    rename.addEventListener('click', () => startRename(c.id));
    const del = el('button', { type: 'button', class: 'conv-delete icon quiet', title: 'Delete', 'aria-label': `Delete “${c.title}”`, text: '×' });
    del.addEventListener('click', () => deleteConversation(c.id));
    return el('li', { class: 'conv', 'data-id': c.id, 'data-current': c === cur ? 'yes' : null }, open, rename, del);
  });
  $('conv-list').replaceChildren(...items);
  $('conv-empty').hidden = items.length > 0;
  const n = items.length;
  $('conv-toggle').textContent = `${n} conversation${n === 1 ? '' : 's'}`;
  $('chat-title').textContent = cur ? cur.title : store.UNTITLED;
}

const itemOf = (id) => [...$('conv-list').children].find((li) => li.dataset.id === id);

function startRename(id) {
  const c = store.byId(id);
  const li = itemOf(id);
  if (!c || !li) return;
  const input = el('input', { type: 'text', class: 'conv-name', maxlength: String(store.MAX_TITLE), 'aria-label': `New name for “${c.title}”`, spellcheck: 'false' });
  input.value = c.title;
  const cancel = el('button', { type: 'button', class: 'quiet', text: 'Cancel' });
  const form = el('form', { class: 'conv-rename-form' }, input, el('button', { type: 'submit', text: 'Save' }), cancel);
  const done = () => {
    renderList();
    const again = itemOf(id);
    if (again) again.querySelector('.conv-open').focus();
  };
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    if (store.rename(id, input.value)) saved();
    done();
  });
  cancel.addEventListener('click', done);
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Escape') {
      e.preventDefault();
      e.stopPropagation();
      done();
    }
  });
  li.replaceChildren(form);
  input.focus();
  input.select();
}

function deleteConversation(id) {
  if (running && running.conv.id === id) running.ctl.abort();
  const removed = store.remove(id);
  if (!removed) return;
  const trouble = store.save();
  renderList();
  showCurrent();
  const undo = el('button', { type: 'button', class: 'quiet undo', text: 'Undo' });
  undo.addEventListener('click', () => {
    store.restore(removed);
    $('conv-notice').textContent = '';
    saved();
    renderList();
    showCurrent();
  });
  notice(`Deleted “${removed.conversation.title}”. ${trouble || ''}`, undo);
  undoTimer = setTimeout(() => {
    if (undo.isConnected) $('conv-notice').textContent = '';
  }, 15000);
}

function openConversation(id) {
  store.select(id);
  saved();
  renderList();
  showCurrent();
  $('convs').dataset.open = 'no';
  $('conv-toggle').setAttribute('aria-expanded', 'false');
  $('prompt').focus();
}

function newConversation() {
  const cur = store.current();
  // An empty conversation is already a new one: no pile of blank entries.
  if (!cur || cur.messages.length) {
    const { forgotten } = store.create();
    if (forgotten.length) notice(`Only ${store.MAX_CONVERSATIONS} conversations are kept: forgot “${forgotten.join('”, “')}”.`);
    saved();
  }
  renderList();
  showCurrent();
  $('prompt').focus();
}

// ---------------------------------------------------------------- messages

function bubble(role) {
  const body = el('div', { class: role === 'user' ? 'text plain' : 'text md' });
  const state = el('p', { class: 'state' });
  const li = el('li', { class: `msg ${role}` },
    el('p', { class: 'who', text: role === 'user' ? 'You' : 'Swarm' }), body, state);
  return { li, body, state };
}

function messageView(m) {
  const b = bubble(m.role);
  if (m.role === 'user') b.body.textContent = m.content;
  else b.body.replaceChildren(renderMarkdown(m.content));
  b.li.dataset.state = m.state || 'done';
  b.state.textContent = m.note || '';
  if (m.trace && Array.isArray(m.trace.sources)) b.li.append(renderSources(m.trace.sources));
  if (m.trace) b.li.append(renderTrace(m.trace, false));
  return b.li;
}

/** Marks, on the swarm, who gave the last answer of `c` (or says why nobody is marked). */
function showWhoAnswered(c) {
  const last = c ? [...c.messages].reverse().find((m) => m.role === 'assistant') : null;
  const why = !last ? 'No answer yet in this conversation.' : 'The last answer has no trace: it was stopped or failed.';
  setAnswered(participants(last && last.trace), why);
}

/** Shows the open conversation; an answer still streaming into it is shown live. */
function showCurrent() {
  const c = store.current();
  const views = (c ? c.messages : []).map(messageView);
  if (running && running.conv === c) views.push(running.answer.li);
  $('log').replaceChildren(...views);
  showWhoAnswered(c);
  logAtEnd = true;
  followLog(true);
}

/**
 * Keeps the newest message in view where the conversation scrolls in its own box (wide
 * screens). A reader who scrolled up to reread is left there: `logAtEnd` is taken from scroll
 * events, before new text makes the box taller. On a phone the page itself scrolls and is left
 * alone, so the Stop button never moves under a finger.
 */
let logAtEnd = true;
function followLog(force = false) {
  const log = $('log');
  if (getComputedStyle(log).overflowY === 'visible') return;
  if (force || logAtEnd) log.scrollTop = log.scrollHeight;
}

/** Re-renders a streaming answer at most every 50 ms plus 1 ms per 1,000 characters, so a
 *  huge answer costs a bounded share of the page's time however fast it arrives. */
function painter(body) {
  let timer = null;
  let pending = null;
  let last = 0;
  const paint = () => {
    timer = null;
    if (pending === null) return;
    body.replaceChildren(renderMarkdown(pending));
    pending = null;
    last = performance.now();
    followLog();
  };
  return {
    update(text) {
      pending = text;
      if (timer === null) timer = setTimeout(paint, Math.max(0, last + 50 + text.length / 1000 - performance.now()));
    },
    flush(text) {
      clearTimeout(timer);
      pending = text;
      paint();
    },
  };
}

export function setModels(ids) {
  const sel = $('model');
  const keep = sel.value || 'nova';
  const all = ['nova', ...ids.filter((m) => m !== 'nova')];
  const now = [...sel.options].map((o) => o.value);
  if (now.join('\n') === all.join('\n')) return;
  sel.replaceChildren(...all.map((m) => el('option', { value: m, text: m === 'nova' ? 'any (nova)' : m })));
  sel.value = all.includes(keep) ? keep : 'nova';
}

/** The strategy list as the gateway gives it (`GET /v1/strategies`), its default selected. */
export function setStrategies(list, fallback) {
  const sel = $('strategy');
  const keep = sel.value;
  sel.replaceChildren(...list.map((s) => el('option', { value: s.id, text: s.description ? `${s.id}: ${s.description}` : s.id })));
  const ids = list.map((s) => s.id);
  sel.value = ids.includes(keep) ? keep : ids.includes(fallback) ? fallback : ids[0] || '';
}

async function send(prompt) {
  const size = utf8.encode(prompt).length;
  if (size > store.MAX_PROMPT_BYTES) {
    $('chat-status').textContent = '';
    notice(`That message is ${Math.ceil(size / 1024)} KiB; the gateway takes at most ${store.MAX_PROMPT_BYTES / 1024} KiB.`);
    $('prompt').value = prompt;
    return;
  }
  const fanout = Math.min(16, Math.max(1, parseInt($('fanout').value, 10) || 2));
  const maxTokens = Math.min(4096, Math.max(1, parseInt($('max-tokens').value, 10) || 256));
  const tags = $('tags').value.split(',').map((t) => t.trim()).filter(Boolean);
  let conv = store.current();
  if (!conv) conv = store.create().conversation;
  store.push(conv, { role: 'user', content: prompt });
  saved();
  renderList();
  const messages = store.history(conv);
  const user = bubble('user');
  user.body.textContent = prompt;
  user.li.dataset.state = 'done';
  const answer = bubble('assistant');
  answer.li.dataset.state = 'streaming';
  answer.li.setAttribute('aria-busy', 'true');
  answer.state.textContent = 'Waiting for the swarm…';
  $('log').append(user.li, answer.li);
  logAtEnd = true;
  followLog(true);

  const ctl = new AbortController();
  running = { ctl, conv, answer };
  $('send').disabled = true;
  $('stop').disabled = false;
  const strategy = $('strategy').value;
  const body = {
    model: $('model').value,
    messages,
    stream: true,
    max_tokens: maxTokens,
    ignore_eos: $('ignore-eos').checked || undefined,
    // debug: ensemble traces then carry every candidate's text next to its score. `auto`
    // sends neither strategy nor fanout: the gateway decides.
    nova: strategy === 'auto' || !strategy
      ? { tags, debug: true, rag: $('rag').checked }
      : { strategy, fanout, tags, debug: true, rag: $('rag').checked },
  };
  const paint = painter(answer.body);
  let text = '';
  let trace = null;
  let finish = null;
  let failure = null;
  let chunks = 0;
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
          chunks += 1;
          paint.update(text);
          answer.state.textContent = `Streaming… ${chunks} chunks`;
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
      hooks.refused();
      return;
    }
    if (e.name !== 'AbortError') failure = `the connection failed: ${e.message}`;
  }
  paint.flush(text);
  running = null;
  $('send').disabled = false;
  $('stop').disabled = true;
  answer.li.removeAttribute('aria-busy');
  // Signed out meanwhile: nothing is kept or shown.
  if (!hooks.signedIn()) return;
  let state = 'done';
  let note = '';
  if (ctl.signal.aborted) {
    state = 'stopped';
    note = `Stopped by you after ${chunks} chunks.`;
  } else if (failure) {
    state = 'error';
    note = `Error: ${failure}`;
  } else if (finish === 'length') {
    note = 'Stopped at the token limit.';
  }
  answer.li.dataset.state = state;
  answer.state.textContent = note;
  if (trace && trace.sources) answer.li.append(renderSources(trace.sources));
  if (trace) answer.li.append(renderTrace(trace, true));
  $('chat-status').textContent = state === 'done' ? 'Answer complete.' : note;
  // A stopped or failed answer stays on screen but only what was received joins the history;
  // a question with no answer at all leaves it.
  // Another tab may have reloaded the list meanwhile: keep to the conversation's live copy.
  conv = store.byId(conv.id) || conv;
  if (text) store.push(conv, { role: 'assistant', content: text, state, note, trace });
  else store.pop(conv);
  saved();
  renderList();
  if (conv === store.current()) showWhoAnswered(conv);
}

// ---------------------------------------------------------------- wiring

/** Shows this browser's conversations (after sign-in). */
export function showConversations() {
  const trouble = store.load();
  $('conv-notice').textContent = '';
  notice(trouble);
  renderList();
  showCurrent();
}

/** Stops any answer and empties the chat from the page (sign-out); what is saved stays saved. */
export function clearChat() {
  if (running) running.ctl.abort();
  running = null;
  for (const id of ['log', 'conv-list']) $(id).replaceChildren();
  for (const id of ['chat-status', 'conv-notice', 'chat-title']) $(id).textContent = '';
  setModels([]);
}

export function initChat(h) {
  hooks = h;
  $('log').addEventListener('scroll', () => {
    const log = $('log');
    logAtEnd = log.scrollHeight - log.scrollTop - log.clientHeight < 48;
  });
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
    if (running) running.ctl.abort();
    $('prompt').focus();
  });
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && running) {
      e.preventDefault();
      running.ctl.abort();
    }
  });
  $('conv-new').addEventListener('click', newConversation);
  $('conv-toggle').addEventListener('click', () => {
    const open = $('convs').dataset.open !== 'yes';
    $('convs').dataset.open = open ? 'yes' : 'no';
    $('conv-toggle').setAttribute('aria-expanded', String(open));
  });
  store.onOtherTab(() => {
    if (!hooks.signedIn()) return;
    store.load();
    renderList();
    if (!running) showCurrent();
  });
}
