// Browser test of the nova dashboard in headless Chromium, against a real gateway with real
// workers. Driven by crates/cli/tests/it/web.rs, which starts the swarm and passes:
//   NOVA_URL          the gateway's base URL (http://127.0.0.1:PORT)
//   NOVA_TOKEN        its bearer token
//   NOVA_WORKERS      the two workers' names, comma-separated; the second is the one killed
//   NOVA_SCREENSHOTS  directory for the screenshots
//   NOVA_CHROMIUM     the browser (default /usr/bin/chromium)
// Protocol with the driver (see lib.mjs): this script asks `KILL <name>` and waits for
// `KILLED`, then `DRAIN <name>` (the first worker's fake battery goes flat) and waits for
// `DRAINED`; it prints `OK` when every check passed and exits 0, otherwise it exits 1.

import { check, env, need, ask as request, run, send, watch, login, until } from './lib.mjs';

const { url, token, shots, executablePath } = env();
const [first, second] = need('NOVA_WORKERS').split(',');

/** The gateway's own view, to confirm what the page shows. */
async function gateway(path) {
  const r = await fetch(url + path, { headers: { Authorization: `Bearer ${token}` } });
  if (!r.ok) throw new Error(`${path}: ${r.status}`);
  return path === '/metrics' ? r.text() : r.json();
}

function cancelledCount(metrics) {
  let n = 0;
  for (const l of metrics.split('\n')) {
    if (l.startsWith('nova_requests_total{') && l.includes('outcome="cancelled"')) n += Number(l.split(' ').pop());
  }
  return n;
}

/** Asks in a new conversation (unless `followUp`), so each question goes without history. */
async function ask(page, prompt, { strategy = 'race', maxTokens = 48, ignoreEos = false, rag = false, followUp = false } = {}) {
  if (!followUp) await page.click('#conv-new');
  return send(page, prompt, { strategy, maxTokens, ignoreEos, rag });
}

/** The picture's node for a worker name. */
const drawn = (name) => `#topology .tnode[data-name="${name}"]`;

/** Records every distinct text the newest answer shows while it streams. */
async function recordPartials(page) {
  await page.evaluate(() => {
    window.novaSeen = [];
    const log = document.getElementById('log');
    new MutationObserver(() => {
      const all = log.querySelectorAll('.msg.assistant .text');
      const t = all.length ? all[all.length - 1].textContent : '';
      if (t && window.novaSeen[window.novaSeen.length - 1] !== t) window.novaSeen.push(t);
    }).observe(log, { subtree: true, childList: true, characterData: true });
  });
}

await run(executablePath, 300_000, async (browser) => {
  const problems = [];
  const desk = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await desk.newPage();
  watch(page, problems);
  page.setDefaultTimeout(60_000);

  // The shell: a login prompt and no data.
  await page.goto(url + '/');
  check(await page.isVisible('#login-form'), 'the login prompt shows');
  check(await page.isHidden('#app'), 'nothing but the login prompt before sign-in');

  // A wrong token: the clear message and still no data.
  await login(page, 'not-the-token');
  await page.waitForFunction(() => document.getElementById('login-error').textContent.length > 0);
  const msg = await page.textContent('#login-error');
  check(msg.includes('That token was refused by the gateway'), `a wrong token is refused clearly: "${msg}"`);
  check(await page.isHidden('#app'), 'the app stays hidden after a wrong token');
  const body = await page.textContent('body');
  check(!body.includes(first) && !body.includes(second) && !body.includes('smollm2'), 'no swarm data after a wrong token');
  check((await page.locator('#nodes li, #log li').count()) === 0, 'no nodes or messages rendered');
  await page.screenshot({ path: `${shots}/desktop-refused.png` });

  // The right token: the app, and both workers live.
  await login(page, token);
  await page.waitForSelector('#app', { state: 'visible' });
  check(await page.isHidden('#login'), 'the login prompt goes away');
  await page.waitForSelector(`.node[data-name="${first}"][data-state="ready"]`);
  await page.waitForSelector(`.node[data-name="${second}"][data-state="ready"]`);
  const card = await page.textContent(`.node[data-name="${first}"]`);
  check(card.includes('smollm2-135m') && /tok\/s/.test(card) && card.includes('Queue') && card.includes('Version'),
    `a node shows its model, speed, queue and version: ${card.replace(/\s+/g, ' ').slice(0, 160)}`);
  const dd = async (name, key) => (await page.locator(`.node[data-name="${name}"] dt:text-is("${key}") + dd`).textContent()).trim();
  check(await dd(first, 'Battery') === '80 %' && await dd(first, 'Charging') === 'yes' && await dd(first, 'Temperature') === '36.0 °C',
    `${first} shows its battery, charging and temperature`);
  check(/^\d+\.\d+\.\d+/.test(await dd(first, 'Version')), `${first} shows its version`);
  check(await page.evaluate(() => [...document.querySelectorAll('#model option')].some((o) => o.value === 'smollm2-135m')),
    'the model list comes from /v1/models');

  // A streamed answer: partial texts first, then the final answer with its trace.
  await recordPartials(page);
  const answer = await ask(page, 'Write a short poem about the sea.', { maxTokens: 48 });
  await answer.and(page.locator('[data-state="done"]')).waitFor({ timeout: 120_000 });
  const final = await answer.locator('.text').textContent();
  const seen = await page.evaluate(() => window.novaSeen);
  const partials = seen.filter((t) => t !== final && final.startsWith(t));
  check(final.trim().length > 0, `a final answer: ${JSON.stringify(final.slice(0, 60))}`);
  check(new Set(partials).size >= 2, `tokens streamed: ${new Set(partials).size} partial texts before the final`);
  const trace = (await answer.locator('.trace').textContent()).replace(/\s+/g, ' ');
  check(/winner (\S+)/.test(trace) && (trace.includes(first) || trace.includes(second)), `the trace names the winner: ${trace.slice(0, 140)}`);
  check(/latency \d+ ms/.test(trace) && /TTFT \d+ ms/.test(trace) && /tok\/s/.test(trace), 'the trace has latency, TTFT and tokens/s');
  // The picture: both workers linked to the gateway, the one that answered marked.
  const winner = /winner (\S+)/.exec(trace)[1];
  check(await page.locator('#topology .tnode').count() === 2 && await page.locator('#topology .tlink').count() === 2
    && await page.isVisible(drawn(first)) && await page.isVisible(drawn(second)), 'the picture shows both workers, each linked to the gateway');
  await page.waitForSelector(`${drawn(winner)}[data-answered="won"]`);
  check((await page.textContent('#topo-caption')).startsWith(`Last answer: ${winner} won`), `the picture marks ${winner}, who answered`);
  check(await page.evaluate(() => document.documentElement.scrollHeight <= innerHeight), 'the desktop page itself does not scroll');

  // best_of_n: every candidate with its score.
  const bon = await ask(page, 'What is the capital of France?', { strategy: 'best_of_n', maxTokens: 32 });
  await bon.and(page.locator('[data-state="done"]')).waitFor({ timeout: 120_000 });
  const scores = await bon.locator('.trace td.score').allTextContents();
  check(scores.length === 2 && scores.every((s) => /^\d/.test(s)), `best_of_n shows both candidates' scores: ${scores}`);
  check((await bon.locator('.trace details.cand').count()) === 2, "best_of_n shows both candidates' texts");
  check((await bon.locator('.text').textContent()).trim().length > 0, 'best_of_n shows the chosen answer');

  // A follow-up in the same conversation: the real model gets the history and answers.
  const follow = await ask(page, 'And what is that city famous for?', { maxTokens: 32, followUp: true });
  await follow.and(page.locator('[data-state="done"]')).waitFor({ timeout: 120_000 });
  check((await follow.locator('.text').textContent()).trim().length > 0 && await page.locator('#log .msg').count() === 4,
    'a follow-up is answered within its conversation (four messages on screen)');

  // council: its three stages, each with its workers and their roles, in the trace.
  const council = await ask(page, 'What is the capital of France?', { strategy: 'council', maxTokens: 24 });
  await council.and(page.locator('[data-state="done"]')).waitFor({ timeout: 120_000 });
  const stages = await council.locator('.trace details.stage').evaluateAll((ds) => ds.map((d) => d.dataset.stage));
  check(stages.join(',') === 'answer,rank,synthesize', `the council's trace shows its stages: ${stages}`);
  const roles = await council.locator('.trace td.role').allTextContents();
  check(roles.includes('chairman') && roles.includes('A'), `the council's trace names members and the chairman: ${roles}`);

  // Answer from shared documents: the second worker's file is cited under the answer, and
  // its card says it shares documents.
  const grounded = await ask(page, 'Who is the maintainer of the ZX-4471 controller? Answer with just the name.', { rag: true, maxTokens: 24 });
  await grounded.and(page.locator('[data-state="done"]')).waitFor({ timeout: 120_000 });
  const cites = await grounded.locator('.sources summary').allTextContents();
  check(cites.length >= 1 && cites[0].includes('zx-4471.md'), `the grounded answer cites the shared file: ${cites}`);
  check(/retrieval: \d+ passages from 1 of 1 nodes/.test(await grounded.locator('.trace .retrieval').textContent()), 'the trace shows the retrieval');
  const sharer = await page.locator(`.node[data-name="${second}"]`).textContent();
  check(/shares \d+ files/.test(sharer), `the sharing worker's card says so: ${sharer.replace(/\s+/g, ' ').slice(0, 200)}`);
  check(/\d+ of \d+ generating, KV \d+ MiB/.test(sharer), `a card shows the engine's sequences and KV cache: ${sharer.replace(/\s+/g, ' ').slice(0, 300)}`);

  // Stop mid-stream: the page says so and the gateway cancels the work on the workers.
  const cancelledBefore = cancelledCount(await gateway('/metrics'));
  const long = await ask(page, 'Write a long story about a dragon.', { maxTokens: 2000, ignoreEos: true });
  await page.waitForFunction((n) => {
    const all = document.querySelectorAll('.msg.assistant .text');
    return all[n] && all[n].textContent.length > 40;
  }, (await page.locator('.msg.assistant').count()) - 1);
  check(await page.isEnabled('#stop'), 'Stop is enabled while an answer streams');
  await page.click('#stop');
  await long.and(page.locator('[data-state="stopped"]')).waitFor({ timeout: 10_000 }).catch(async (e) => {
    const state = await long.getAttribute('data-state');
    const says = await long.locator('.state').textContent();
    throw new Error(`the answer did not stop: data-state=${state}, it says "${says}", Stop enabled=${await page.isEnabled('#stop')}: ${e.message}`);
  });
  const stoppedText = (await long.locator('.text').textContent()).length;
  check(stoppedText > 40 && stoppedText < 6000, `the answer stopped mid-stream at ${stoppedText} characters`);
  check(await page.isEnabled('#send'), 'Send is enabled again after Stop');
  await until('the gateway to count the request as cancelled', async () => cancelledCount(await gateway('/metrics')) > cancelledBefore, 10_000);
  console.log('ok - the gateway cancelled the request');
  await until('every worker queue to drain', async () => (await gateway('/v1/swarm')).workers.every((w) => w.worker.queue_depth === 0), 10_000);
  console.log('ok - the workers freed their slots');
  await page.waitForTimeout(2500); // let the performance charts take a sample or two
  check(await page.locator('#tps polyline').count() === 1, 'the performance panel draws its charts');
  await page.screenshot({ path: `${shots}/desktop.png`, fullPage: true });

  // A phone, signed in with the keyboard only.
  const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
  const mob = await phone.newPage();
  watch(mob, problems);
  mob.setDefaultTimeout(60_000);
  await mob.goto(url + '/');
  await mob.evaluate(() => document.activeElement && document.activeElement.blur());
  for (let i = 0; i < 4 && (await mob.evaluate(() => document.activeElement.id)) !== 'token'; i++) {
    await mob.keyboard.press('Tab');
  }
  check(await mob.evaluate(() => document.activeElement.id) === 'token', 'the token field is reachable with Tab');
  await mob.keyboard.type(token);
  await mob.keyboard.press('Enter');
  await mob.waitForSelector(`.node[data-name="${second}"]`);
  const overflow = await mob.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 0, `no sideways scrolling on a phone (overflow ${overflow}px)`);
  const small = await ask(mob, 'Say hello in one short sentence.', { maxTokens: 24 });
  await small.and(mob.locator('[data-state="done"]')).waitFor({ timeout: 120_000 });
  check((await small.locator('.trace').count()) === 1, 'the phone shows an answer with its trace');
  const overflow2 = await mob.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow2 <= 0, `still no sideways scrolling with a trace on screen (overflow ${overflow2}px)`);
  const clipped = await mob.evaluate(() => {
    const box = document.getElementById('log').getBoundingClientRect();
    return [...document.querySelectorAll('#log .msg')].filter((m) => m.getBoundingClientRect().right > box.right + 1).length;
  });
  check(clipped === 0, `every message fits the phone's width (${clipped} wider)`);
  await mob.screenshot({ path: `${shots}/phone.png`, fullPage: true });

  // Kill a worker: its connection closes and it shows as gone in the live view without a reload.
  check((await request(`KILL ${second}`)) === 'KILLED', 'the driver killed the worker');
  const killedAt = Date.now();
  await page.waitForSelector(`.node[data-name="${second}"][data-state="gone"]`, { timeout: 15_000 });
  check((await dd(second, 'Last seen')).startsWith('left '), `${second} says when it left`);
  await page.waitForSelector(`${drawn(second)}[data-state="gone"]`, { timeout: 5_000 });
  console.log(`ok - the picture shows ${second} gone`);
  check(await page.isVisible(`.node[data-name="${first}"][data-state="ready"]`), `${first} stays ready`);
  console.log(`ok - ${second} shown gone ${Date.now() - killedAt} ms after the kill`);
  await mob.waitForSelector(`.node[data-name="${second}"][data-state="gone"]`, { timeout: 15_000 });

  // Unplug the first worker at 22 %: its guard pauses it, and the view shows that live too.
  check((await request(`DRAIN ${first}`)) === 'DRAINED', "the driver drained the worker's battery");
  await page.waitForSelector(`.node[data-name="${first}"][data-state="paused"]`, { timeout: 15_000 });
  await page.waitForSelector(`${drawn(first)}[data-state="paused"]`, { timeout: 5_000 });
  console.log(`ok - the picture shows ${first} paused`);
  check(await dd(first, 'Battery') === '22 %' && await dd(first, 'Charging') === 'no' && (await dd(first, 'Paused')).startsWith('yes'),
    `${first} shown paused on a low battery`);
  await mob.waitForSelector(`.node[data-name="${first}"][data-state="paused"]`, { timeout: 15_000 });
  await page.screenshot({ path: `${shots}/desktop-stale.png`, fullPage: true });
  await mob.screenshot({ path: `${shots}/phone-stale.png`, fullPage: true });

  check(problems.length === 0, `no script errors, CSP violations or dialogs${problems.length ? `: ${problems.join('; ')}` : ''}`);
});
