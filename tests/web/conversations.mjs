// Conversations kept in the browser, in headless Chromium against a real gateway with one
// worker in front of a stand-in model (see markdown.mjs) that echoes the question and records
// every request, so the history each question carries can be checked.
//
// Environment: NOVA_URL, NOVA_TOKEN, NOVA_SCREENSHOTS, NOVA_CHROMIUM.

import { check, env, ask, run, watch, login, send, settled, upstream, lastUser, until } from './lib.mjs';

const { url, token, shots, executablePath } = env();

const up = await upstream((messages) => {
  const text = `You said: ${lastUser(messages)} (I saw ${messages.length} messages)`;
  // At most ~50 events however long the echo, so a 60 KB one takes no longer than a short one.
  return { text, piece: Math.max(8, Math.ceil(text.length / 50)) };
});
const worker = (await ask(`UPSTREAM ${up.url}`)).replace(/^STARTED /, '');
const KEY = 'nova.conversations';

const titles = (page) => page.locator('#conv-list .conv-open').allTextContents();
const current = (page) => page.locator('#conv-list .conv[data-current="yes"] .conv-open').textContent();
const convItem = (page, title) => page.locator('#conv-list .conv').filter({ has: page.locator(`.conv-open:text-is("${title}")`) });

async function signedIn(page) {
  await page.waitForSelector('#app', { state: 'visible' });
  await page.waitForSelector(`.node[data-name="${worker}"][data-state="ready"]`);
}

/** Reloads; the token is kept for the tab, so the page signs itself in again. */
async function reload(page) {
  await page.reload();
  await signedIn(page);
}

async function asked(page, prompt) {
  const n = up.received.length;
  const answer = await send(page, prompt);
  check(await settled(answer) === 'done', `"${prompt}" is answered`);
  await until('the stand-in model to see the request', async () => up.received.length > n, 5000);
  return up.received[up.received.length - 1];
}

await run(executablePath, 240_000, async (browser) => {
  const problems = [];
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await ctx.newPage();
  watch(page, problems);
  page.setDefaultTimeout(30_000);
  await page.goto(url + '/');
  await login(page, token);
  await signedIn(page);
  check(await page.isVisible('#conv-empty'), 'with nothing saved the list says so');
  const strategies = await page.locator('#strategy option').evaluateAll((os) => os.map((o) => o.value));
  check(strategies.join() === 'auto,race,best_of_n,vote,council' && await page.inputValue('#strategy') === 'auto',
    `the strategy list comes from the gateway, its default selected: ${strategies}`);

  // Two turns in one conversation: the second question carries the first exchange.
  let seen = await asked(page, 'alpha one');
  check(seen.length === 1, 'the first question goes alone');
  seen = await asked(page, 'alpha two');
  check(JSON.stringify(seen.map((m) => m.role)) === '["user","assistant","user"]' && seen[0].content === 'alpha one'
    && seen[1].content.startsWith('You said: alpha one'), `the second question carries the history: ${JSON.stringify(seen)}`);
  check(await current(page) === 'alpha one', 'the conversation is named after its first question');

  // A new conversation starts empty and sends no history.
  await page.click('#conv-new');
  check(await page.locator('#log .msg').count() === 0, 'New empties the chat');
  seen = await asked(page, 'beta one');
  check(seen.length === 1, 'a new conversation sends only its own question');
  check(JSON.stringify(await titles(page)) === '["beta one","alpha one"]', `both are listed, newest first: ${await titles(page)}`);

  // Kept across a reload, and switching restores each one's messages.
  await reload(page);
  check(JSON.stringify(await titles(page)) === '["beta one","alpha one"]', 'both are still listed after a reload');
  check(await current(page) === 'beta one' && await page.locator('#log .msg').count() === 2, 'the open conversation comes back with its messages');
  await convItem(page, 'alpha one').locator('.conv-open').click();
  const texts = await page.locator('#log .msg .text').allTextContents();
  check(texts.length === 4 && texts[0] === 'alpha one' && texts[3].startsWith('You said: alpha two (I saw 3 messages)'), `switching shows alpha's four messages: ${texts}`);
  seen = await asked(page, 'alpha three');
  check(seen.length === 5, `continuing a reopened conversation sends its history (${seen.length} messages)`);

  // Rename: markup in a title is text; the name survives a reload.
  await convItem(page, 'alpha one').locator('.conv-rename').click();
  await page.fill('#conv-list .conv-name', 'Renamed <b>α</b>');
  await page.press('#conv-list .conv-name', 'Enter');
  check(JSON.stringify(await titles(page)) === '["Renamed <b>α</b>","beta one"]', `renamed: ${await titles(page)}`);
  check(await page.textContent('#chat-title') === 'Renamed <b>α</b>', 'the chat heading shows the new name as text');
  await convItem(page, 'beta one').locator('.conv-rename').click();
  await page.fill('#conv-list .conv-name', 'never saved');
  await page.press('#conv-list .conv-name', 'Escape');
  check((await titles(page)).includes('beta one'), 'Escape cancels a rename');
  await reload(page);
  check(JSON.stringify(await titles(page)) === '["Renamed <b>α</b>","beta one"]', 'the new name is kept across a reload');

  // Delete, undo, delete again: gone after a reload.
  await convItem(page, 'beta one').locator('.conv-delete').click();
  check(JSON.stringify(await titles(page)) === '["Renamed <b>α</b>"]', 'Delete removes it from the list');
  await page.click('#conv-notice .undo');
  check((await titles(page)).includes('beta one'), 'Undo brings it back');
  await convItem(page, 'beta one').locator('.conv-delete').click();
  await reload(page);
  check(JSON.stringify(await titles(page)) === '["Renamed <b>α</b>"]', 'a deleted conversation stays deleted after a reload');
  await page.screenshot({ path: `${shots}/conversations-desktop.png` });

  // The phone: the list folds away, the page scrolls instead of a box inside it, and the
  // message box is reachable at the end of the conversation.
  await page.setViewportSize({ width: 390, height: 844 });
  check(await page.isHidden('#conv-list'), 'on a phone the list is folded');
  await page.click('#conv-toggle');
  check(await page.isVisible('#conv-list .conv-open'), 'the toggle unfolds it');
  await convItem(page, 'Renamed <b>α</b>').locator('.conv-open').click();
  for (let i = 0; i < 3; i++) await asked(page, `phone question ${i} ${'with some words to wrap '.repeat(6)}`);
  const phone = await page.evaluate(() => {
    const log = document.getElementById('log');
    return {
      logOverflow: getComputedStyle(log).overflowY, logClips: log.scrollHeight - log.clientHeight,
      pageTall: document.documentElement.scrollHeight > innerHeight, wide: document.documentElement.scrollWidth - innerWidth,
    };
  });
  check(phone.logOverflow === 'visible' && phone.logClips <= 1 && phone.pageTall && phone.wide <= 0,
    `the conversation is part of the page, which scrolls; nothing sideways (${JSON.stringify(phone)})`);
  await page.locator('#prompt').scrollIntoViewIfNeeded();
  const box = await page.locator('#prompt').boundingBox();
  check(box && box.y >= 0 && box.y + box.height <= 844, 'the message box scrolls into view');
  seen = await asked(page, 'from the phone');
  check(seen.length === 13, `the phone continues the same conversation (${seen.length} messages sent)`);
  await page.screenshot({ path: `${shots}/conversations-phone.png`, fullPage: true });
  await page.setViewportSize({ width: 1280, height: 800 });

  // At most 50 conversations: a 51st forgets the least recently used.
  await page.evaluate((key) => {
    const now = Date.now();
    const list = Array.from({ length: 50 }, (_, i) => ({ id: `old${i}`, title: `old ${i}`, created: now - 1e6 - i, updated: now - 1e6 - i, messages: [{ role: 'user', content: `q${i}` }, { role: 'assistant', content: `a${i}` }] }));
    localStorage.setItem(key, JSON.stringify({ v: 1, current: 'old0', list }));
  }, KEY);
  await reload(page);
  check((await titles(page)).length === 50, 'fifty conversations are listed');
  await page.click('#conv-new');
  await asked(page, 'number fifty-one');
  const after = await titles(page);
  check(after.length === 50 && after[0] === 'number fifty-one' && !after.includes('old 49'), 'a new one makes the oldest go; fifty are kept');
  check((await page.textContent('#conv-notice')).includes('old 49'), 'and the page says which one went');

  // History is trimmed to the gateway's limits: at most 256 messages, 48 KiB, starting with a question.
  await page.evaluate((key) => {
    const messages = Array.from({ length: 300 }, (_, i) => ({ role: i % 2 ? 'assistant' : 'user', content: `${i}: ${'z'.repeat(1000)}` }));
    localStorage.setItem(key, JSON.stringify({ v: 1, current: 'long', list: [{ id: 'long', title: 'long', created: 1, updated: 1, messages }] }));
  }, KEY);
  await reload(page);
  seen = await asked(page, 'after a long talk');
  const bytes = seen.reduce((n, m) => n + Buffer.byteLength(m.content), 0);
  check(seen.length <= 256 && bytes <= 48 * 1024 && seen[0].role === 'user' && lastUser(seen) === 'after a long talk',
    `a long conversation sends its newest part only (${seen.length} messages, ${bytes} bytes)`);

  // Damaged storage: a notice, an empty list, and a page that still works.
  await page.evaluate((key) => localStorage.setItem(key, '{"v":1,"list":[{"id":'), KEY);
  await reload(page);
  check((await page.textContent('#conv-notice')).includes('could not be read') && (await titles(page)).length === 0,
    `damaged storage is reported and set aside: "${await page.textContent('#conv-notice')}"`);
  await asked(page, 'after the damage');
  check(JSON.stringify(await titles(page)) === '["after the damage"]', 'and the page keeps working');

  // Storage full: the answer still shows and the page says what was not kept.
  const filled = await page.evaluate(() => {
    let n = 0;
    for (let size = 256 * 1024; size >= 64; size /= 4) {
      try {
        for (; n < 400; n++) localStorage.setItem(`filler${n}`, 'f'.repeat(size));
      } catch { /* full at this size: go on with smaller pieces */ }
    }
    return n;
  });
  const full = await send(page, `too much to keep ${'w'.repeat(60_000)}`);
  check(await settled(full) === 'done', `with storage full (${filled} fillers) the question is still answered`);
  const said = await page.textContent('#conv-notice');
  check(/storage is full/.test(said), `the page says the storage is full: "${said}"`);
  await page.evaluate(() => {
    for (let n = 0; n < 400; n++) localStorage.removeItem(`filler${n}`);
  });

  check(problems.length === 0, `no script errors, CSP violations or dialogs${problems.length ? `: ${problems.join('; ')}` : ''}`);
  up.close();
});
