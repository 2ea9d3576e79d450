// Shared pieces of the dashboard's browser tests (driven from crates/cli/tests/it/web.rs).
//
// The driver protocol: a script prints lines on stdout; `ok - ...` lines are checks that
// passed, `OK` means every check passed. A script that needs the driver to do something prints
// a request (`UPSTREAM <url>`, `KILL <name>`, `DRAIN <name>`) and waits for its answer line on
// stdin. Any failure exits 1.

import http from 'node:http';
import { mkdirSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

export function need(name) {
  const v = process.env[name];
  if (!v) fail(`${name} is not set`);
  return v;
}

export function fail(msg) {
  console.error(`browser test failed: ${msg}`);
  process.exit(1);
}

export function check(ok, msg) {
  if (!ok) throw new Error(msg);
  console.log(`ok - ${msg}`);
}

export const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

export async function until(what, fn, timeoutMs) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

const stdin = createInterface({ input: process.stdin });
const lines = stdin[Symbol.asyncIterator]();

/** Prints a request for the driver and returns its one-line answer. */
export async function ask(request) {
  console.log(request);
  const { value, done } = await lines.next();
  if (done) throw new Error('the driver closed stdin');
  return value.trim();
}

/** The environment every script gets. */
export function env() {
  const shots = need('NOVA_SCREENSHOTS');
  mkdirSync(shots, { recursive: true });
  return {
    url: need('NOVA_URL'),
    token: need('NOVA_TOKEN'),
    shots,
    executablePath: process.env.NOVA_CHROMIUM || '/usr/bin/chromium',
  };
}

/**
 * Runs `body(browser)` in headless Chromium with an overall deadline, then prints OK and exits
 * 0; any thrown error exits 1 with its stack.
 */
export async function run(executablePath, limitMs, body) {
  // Chromium refuses to start its sandbox as root (CI containers); the page is our own.
  const browser = await chromium.launch({ executablePath, headless: true, args: ['--no-sandbox'] });
  const timer = setTimeout(() => fail(`no result within ${limitMs / 1000} s`), limitMs);
  try {
    await body(browser);
    console.log('OK');
    clearTimeout(timer);
    await browser.close();
    stdin.close();
    process.exit(0);
  } catch (e) {
    console.error(`browser test failed: ${e.stack || e}`);
    await browser.close().catch(() => {});
    process.exit(1);
  }
}

/** Collects what the page itself reports: script errors, CSP violations and any dialog (an
 *  `alert` from injected script would be one). */
export function watch(page, problems) {
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy|Refused to/i.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  page.on('dialog', (d) => {
    problems.push(`dialog: ${d.type()} ${d.message()}`);
    d.dismiss().catch(() => {});
  });
}

export async function login(page, t) {
  await page.fill('#token', t);
  await page.press('#token', 'Enter');
}

/** Sends `prompt` from the chat form; returns the locator of its answer. */
export async function send(page, prompt, { strategy = null, maxTokens = null, ignoreEos = false, rag = false } = {}) {
  if (strategy !== null || maxTokens !== null || ignoreEos) {
    if (!(await page.isVisible('#strategy'))) await page.click('.opts summary');
    if (strategy !== null) await page.selectOption('#strategy', strategy);
    if (maxTokens !== null) await page.fill('#max-tokens', String(maxTokens));
    await page.setChecked('#ignore-eos', ignoreEos);
  }
  await page.setChecked('#rag', rag);
  await page.fill('#prompt', prompt);
  const before = await page.locator('.msg.assistant').count();
  await page.press('#prompt', 'Enter');
  return page.locator('.msg.assistant').nth(before);
}

/** Waits for an answer to finish (done, stopped or error) and returns its state. */
export async function settled(answer, timeout = 120_000) {
  await answer.and(answer.page().locator('[data-state="done"], [data-state="stopped"], [data-state="error"]')).waitFor({ timeout });
  return answer.getAttribute('data-state');
}

/**
 * A stand-in for an OpenAI-compatible server (what `nova worker --backend openai-http` fronts):
 * a worker on it streams exactly the text `answer(messages)` returns, so a test decides what
 * "the model" says. `answer` returns {text, piece (chars per event), delayMs}. Every chat
 * request's messages are kept in `received`.
 */
export async function upstream(answer) {
  const received = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c) => { body += c; });
    req.on('end', async () => {
      let v = {};
      try { v = JSON.parse(body); } catch { /* the probe always sends JSON */ }
      const chat = req.url.endsWith('/chat/completions');
      let reply = { text: 'one, two, three, four, five, six, seven, eight, nine, ten', piece: 6, delayMs: 0 };
      if (chat) {
        received.push(v.messages || []);
        reply = { piece: 8, delayMs: 5, ...answer(v.messages || []) };
      }
      res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
      const event = (o) => res.write(`data: ${JSON.stringify(o)}\n\n`);
      const { text } = reply;
      let n = 0;
      for (let i = 0; i < text.length; i += reply.piece) {
        const part = text.slice(i, i + reply.piece);
        event({ choices: [chat ? { index: 0, delta: { content: part }, finish_reason: null } : { index: 0, text: part, finish_reason: null }] });
        n++;
        if (reply.delayMs) await sleep(reply.delayMs);
      }
      event({ choices: [chat ? { index: 0, delta: {}, finish_reason: 'stop' } : { index: 0, text: '', finish_reason: 'stop' }], usage: { prompt_tokens: 5, completion_tokens: n } });
      res.end('data: [DONE]\n\n');
    });
  });
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  return { url: `http://127.0.0.1:${server.address().port}`, received, close: () => server.close() };
}

/** The last user message of a chat request. */
export const lastUser = (messages) => {
  for (let k = messages.length - 1; k >= 0; k--) if (messages[k].role === 'user') return String(messages[k].content);
  return '';
};

/** Pairs of label boxes that overlap in an SVG: [[a, b], ...]. */
export async function overlappingLabels(page, selector = '#topology .tlabel') {
  return page.evaluate((sel) => {
    const boxes = [...document.querySelectorAll(sel)].map((t) => ({ t: t.textContent, r: t.getBoundingClientRect() }));
    const out = [];
    for (let i = 0; i < boxes.length; i++) {
      for (let j = i + 1; j < boxes.length; j++) {
        const a = boxes[i].r;
        const b = boxes[j].r;
        if (a.left < b.right - 1 && b.left < a.right - 1 && a.top < b.bottom - 1 && b.top < a.bottom - 1) out.push([boxes[i].t, boxes[j].t]);
      }
    }
    return out;
  }, selector);
}
