// The swarm's picture and its compact cards, in headless Chromium at 1280x800 and 390x844.
// First against the real gateway and its one real worker (in front of a stand-in model, see
// markdown.mjs): the worker is drawn and marked as the one that answered. Then with larger
// swarms fed to the page in place of the gateway's live feed (page.route): 20 devices must fit
// one desktop screen with readable, non-overlapping labels, and 100 or 300 must still draw.
//
// Environment: NOVA_URL, NOVA_TOKEN, NOVA_SCREENSHOTS, NOVA_CHROMIUM.

import { check, env, ask, run, watch, login, send, settled, upstream, overlappingLabels } from './lib.mjs';

const { url, token, shots, executablePath } = env();

const up = await upstream(() => ({ text: 'The capital of France is Paris.' }));
const worker = (await ask(`UPSTREAM ${up.url}`)).replace(/^STARTED /, '');

const HOSTS = ['pi-kitchen', 'pixel-5', 'thinkpad-x220', 'mac-mini', 'galaxy-s9', 'nuc-attic', 'rpi-garage', 'moto-g7', 'old-laptop', 'tab-a7'];
const id = (i) => `12D3KooWFake${String(i).padStart(4, '0')}`;
const name = (i) => `${HOSTS[i % HOSTS.length]}-${(0x3f2a + i * 97).toString(16)}`;

/** A SwarmView of `n` devices in every state, as the gateway would send it. */
function view(n) {
  const now = Date.now();
  const state = (i) => (i % 9 === 4 ? 'gone' : i % 11 === 6 ? 'stale' : i % 7 === 5 ? 'paused' : i % 8 === 2 ? 'busy' : 'ready');
  return {
    now_ms: now,
    stale_after_ms: 30000,
    forget_after_ms: 600000,
    models: ['smollm2-135m'],
    workers: Array.from({ length: n }, (_, i) => ({
      worker: {
        id: id(i), name: name(i), models: ['smollm2-135m'], tokens_per_s: 20 + ((i * 37) % 90),
        queue_depth: state(i) === 'busy' ? 2 : 0, queue_capacity: 2, paused: state(i) === 'paused', last_seen_ms: now - 400,
      },
      state: state(i),
      status: { battery_pct: 15 + ((i * 13) % 85), charging: i % 3 === 0, temperature_c: 28 + (i % 17), version: '0.1.0', slots: { running: 0, total: 2, kv_cache_mib: 12 } },
      left_at_ms: state(i) === 'gone' ? now - 3000 : null,
    })),
  };
}

/** The page's live feed answered with `v` (the page reconnects when a feed ends, so it stays). */
async function feed(page, v) {
  await page.unroute('**/v1/swarm/events');
  await page.route('**/v1/swarm/events', (route) => route.fulfill({
    status: 200, contentType: 'text/event-stream', body: `event: swarm\ndata: ${JSON.stringify(v)}\n\n`,
  }));
}

/** One answer whose trace names device 3 the winner and 7 and 11 as also asked. */
async function fakeAnswer(page) {
  const trace = {
    strategy: 'best_of_n', winner: id(3), latency_ms: 812, ttft_ms: 95,
    attempts: [
      { worker: id(3), outcome: 'won', latency_ms: 812, ttft_ms: 95, tokens: 9, score: 0.91 },
      { worker: id(7), outcome: 'lost', latency_ms: 640, ttft_ms: 80, tokens: 8, score: 0.42 },
      { worker: id(11), outcome: 'cancelled', latency_ms: 300, ttft_ms: null, tokens: 0 },
    ],
  };
  const events = [
    { choices: [{ index: 0, delta: { role: 'assistant', content: 'Paris.' }, finish_reason: null }] },
    { choices: [{ index: 0, delta: {}, finish_reason: 'stop' }], nova: trace },
  ];
  await page.route('**/v1/chat/completions', (route) => route.fulfill({
    status: 200, contentType: 'text/event-stream', body: events.map((e) => `data: ${JSON.stringify(e)}\n\n`).join('') + 'data: [DONE]\n\n',
  }));
}

/** Geometry of the picture: nodes, labels, whether all is inside, and the closest two dots. */
function geometry(page) {
  return page.evaluate(() => {
    const svg = document.getElementById('topology');
    const box = svg.getBoundingClientRect();
    const inside = (r) => r.left >= box.left - 1 && r.right <= box.right + 1 && r.top >= box.top - 1 && r.bottom <= box.bottom + 1;
    const dots = [...svg.querySelectorAll('.tnode .dot')].map((c) => c.getBoundingClientRect());
    let closest = Infinity;
    for (let i = 0; i < dots.length; i++) {
      for (let j = i + 1; j < dots.length; j++) {
        const dx = (dots[i].left + dots[i].right - dots[j].left - dots[j].right) / 2;
        const dy = (dots[i].top + dots[i].bottom - dots[j].top - dots[j].bottom) / 2;
        closest = Math.min(closest, Math.hypot(dx, dy));
      }
    }
    return {
      nodes: svg.querySelectorAll('.tnode').length, drawn: Number(svg.dataset.nodes), labelled: svg.dataset.labelled,
      labels: svg.querySelectorAll('.tlabel').length, links: svg.querySelectorAll('.tlink').length,
      allInside: dots.every(inside) && [...svg.querySelectorAll('.tlabel')].every((t) => inside(t.getBoundingClientRect())),
      closest, diameter: dots.length ? dots[0].width : 0,
      more: (svg.querySelector('.tmore') || {}).textContent || '',
    };
  });
}

/** Where the cards are relative to the screen. */
function cards(page) {
  return page.evaluate(() => {
    const all = [...document.querySelectorAll('#nodes .node')];
    return {
      count: all.length,
      offscreen: all.filter((c) => { const r = c.getBoundingClientRect(); return r.bottom > innerHeight || r.right > innerWidth || r.top < 0; }).length,
      tallest: Math.max(0, ...all.map((c) => c.getBoundingClientRect().height)),
      pageTall: document.documentElement.scrollHeight - innerHeight,
      pageWide: document.documentElement.scrollWidth - innerWidth,
    };
  });
}

await run(executablePath, 180_000, async (browser) => {
  const problems = [];
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await ctx.newPage();
  watch(page, problems);
  page.setDefaultTimeout(30_000);
  await page.goto(url + '/');
  await login(page, token);

  // The real swarm: one worker, linked to the gateway, marked once it has answered.
  await page.waitForSelector(`#topology .tnode[data-name="${worker}"][data-state="ready"]`);
  let g = await geometry(page);
  check(g.nodes === 1 && g.links === 1 && g.labelled === 'yes' && g.allInside, `the real worker is drawn, linked and labelled: ${JSON.stringify(g)}`);
  const answer = await send(page, 'What is the capital of France?');
  check(await settled(answer) === 'done', 'the real worker answers');
  await page.waitForSelector(`#topology .tnode[data-name="${worker}"][data-answered="won"]`);
  check(await page.locator('#topology .tlink.won').count() === 1 && (await page.textContent('#topo-caption')).includes(`${worker} won`),
    `the picture marks ${worker} as the one that answered`);
  check(await page.getAttribute(`.node[data-name="${worker}"]`, 'data-answered') === 'won', 'and so does its card');
  await page.screenshot({ path: `${shots}/topology-1-desktop.png` });

  // Twenty devices, on a desktop screen.
  const v20 = view(20);
  await feed(page, v20);
  await fakeAnswer(page);
  await page.reload();
  await page.waitForSelector('#topology[data-nodes="20"]');
  const asked = await send(page, 'Which device answers?');
  check(await settled(asked) === 'done', 'an answer with a trace of three devices');
  await page.waitForSelector(`#topology .tnode[data-id="${id(3)}"][data-answered="won"]`);
  g = await geometry(page);
  check(g.nodes === 20 && g.links === 20 && g.labelled === 'yes' && g.labels === 20, `20 devices drawn, linked and labelled: ${JSON.stringify(g)}`);
  await page.screenshot({ path: `${shots}/topology-20-desktop.png` });
  check(g.allInside, 'every dot and label is inside the picture');
  const clash = await overlappingLabels(page);
  check(clash.length === 0, `no two labels overlap (${JSON.stringify(clash)})`);
  const marks = await page.evaluate(() => [...document.querySelectorAll('#topology .tnode[data-answered]')].map((n) => `${n.dataset.id}:${n.dataset.answered}`).sort());
  check(JSON.stringify(marks) === JSON.stringify([`${id(11)}:cancelled`, `${id(3)}:won`, `${id(7)}:lost`].sort()), `who took part is marked: ${marks}`);
  check((await page.textContent('#topo-caption')) === `Last answer: ${name(3)} won; also asked ${name(7)} (lost), ${name(11)} (cancelled).`,
    `the caption says who answered: ${await page.textContent('#topo-caption')}`);
  const fills = await page.evaluate(() => Object.fromEntries(['ready', 'busy', 'paused', 'stale', 'gone'].map((s) => {
    const dot = document.querySelector(`#topology .tnode.st-${s} .dot`);
    return [s, dot ? getComputedStyle(dot).fill : null];
  })));
  check(fills.ready && fills.paused && fills.gone && new Set([fills.ready, fills.paused, fills.gone]).size === 3
    && fills.busy === fills.paused && fills.stale === fills.gone,
    `state is colour: ${JSON.stringify(fills)}`);
  let c = await cards(page);
  check(c.count === 20 && c.offscreen === 0 && c.pageTall <= 0 && c.pageWide <= 0,
    `all 20 cards fit one 1280x800 screen without scrolling the page (${JSON.stringify(c)})`);
  check(c.tallest < 60, `cards are compact (${c.tallest}px tall)`);
  await page.screenshot({ path: `${shots}/topology-20-desktop.png` });

  // A click on a device in the picture opens its card.
  await page.click(`#topology .tnode[data-id="${id(5)}"]`);
  check(await page.locator(`.node[data-id="${id(5)}"] details`).evaluate((d) => d.open), "clicking a device opens its card's details");
  await page.locator(`.node[data-id="${id(5)}"] summary`).click();

  // The same twenty on a phone: a picture of its own, nothing sideways, no inner chat box.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.waitForFunction(() => document.getElementById('topology').getAttribute('viewBox').startsWith('0 0 3'));
  g = await geometry(page);
  check(g.nodes === 20 && g.allInside, `on a phone all 20 are drawn inside the picture: ${JSON.stringify(g)}`);
  const phoneClash = await overlappingLabels(page);
  check(phoneClash.length === 0, `labels, where there is room for them, do not overlap on a phone (${g.labels} labels)`);
  c = await cards(page);
  const log = await page.evaluate(() => getComputedStyle(document.getElementById('log')).overflowY);
  check(c.pageWide <= 0 && log === 'visible', `the phone page scrolls as one (no sideways scroll, chat overflow ${log})`);
  await page.locator('#swarm').scrollIntoViewIfNeeded();
  await page.screenshot({ path: `${shots}/topology-20-phone.png`, fullPage: true });

  // A hundred: dots only (labels would collide), none overlapping; the winner keeps its label.
  await page.setViewportSize({ width: 1280, height: 800 });
  await feed(page, view(100));
  await page.waitForSelector('#topology[data-nodes="100"]');
  g = await geometry(page);
  check(g.nodes === 100 && g.labelled === 'no' && g.labels === 1 && g.allInside, `100 devices drawn as dots, the winner named: ${JSON.stringify(g)}`);
  check(g.closest >= g.diameter, `no two dots overlap (closest centres ${g.closest.toFixed(1)}px for ${g.diameter.toFixed(1)}px dots)`);
  c = await cards(page);
  check(c.count === 100 && c.pageTall <= 0 && c.pageWide <= 0, 'the page still does not scroll: the side column does');
  await page.screenshot({ path: `${shots}/topology-100-desktop.png` });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.waitForFunction(() => document.getElementById('topology').getAttribute('viewBox').startsWith('0 0 3'));
  g = await geometry(page);
  check(g.nodes === 100 && g.allInside && g.closest >= g.diameter, `100 on a phone: inside and apart (${g.closest.toFixed(1)}px)`);
  await page.locator('#swarm').scrollIntoViewIfNeeded();
  await page.screenshot({ path: `${shots}/topology-100-phone.png` });

  // Three hundred: a bounded picture that says what it left out; the list has them all.
  await page.setViewportSize({ width: 1280, height: 800 });
  await feed(page, view(300));
  await page.waitForSelector('#topology[data-nodes="240"]');
  g = await geometry(page);
  c = await cards(page);
  check(g.nodes === 240 && g.more.startsWith('+60 more') && c.count === 300, `300 devices: 240 drawn, "${g.more}", 300 cards`);

  check(problems.length === 0, `no script errors, CSP violations or dialogs${problems.length ? `: ${problems.join('; ')}` : ''}`);
  up.close();
});
