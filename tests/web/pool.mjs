// The dashboard's view of a pooled model, against a real gateway whose pool is ready (driven by
// crates/cli/tests/it/pool.rs): who holds which layers, drawn to scale. Prints "ok - ..." lines;
// exits 1 on the first failed check.
import { mkdirSync } from 'node:fs';
import { chromium } from 'playwright-core';

const url = process.env.NOVA_URL;
const token = process.env.NOVA_TOKEN;
const shots = process.env.NOVA_SHOTS || 'target/web-screenshots';
const executablePath = process.env.NOVA_CHROMIUM || '/usr/bin/chromium';
mkdirSync(shots, { recursive: true });

function check(ok, what) {
  if (!ok) {
    console.error(`FAILED: ${what}`);
    process.exit(1);
  }
  console.log(`ok - ${what}`);
}

const browser = await chromium.launch({ executablePath, headless: true, args: ['--no-sandbox'] });
try {
  const page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
  const errors = [];
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(url + '/');
  await page.fill('#token', token);
  await page.press('#token', 'Enter');
  await page.waitForSelector('.pool[data-state="ready"]', { timeout: 60_000 });
  // One synchronous read: the live feed re-renders the view on every update.
  const view = await page.evaluate(() => {
    const pool = document.querySelector('.pool');
    return {
      title: pool.querySelector('h3').textContent,
      holders: [...pool.querySelectorAll('.holders li')].map((li) => li.textContent),
      parts: [...pool.querySelectorAll('.pool-bar .part')].map((p) => ({ name: p.textContent, width: p.getBoundingClientRect().width })),
    };
  });
  check(view.title === 'Pooled model smollm2-135m: ready', `the pool's title: ${view.title}`);
  check(view.holders.length === 3 && view.holders[0].includes('(head): layers 0–'), `the head and two shards with their layers: ${view.holders}`);
  const layers = view.holders.map((h) => {
    const [a, b] = h.split('layers ')[1].split('–').map(Number);
    return b - a + 1;
  });
  check(layers.reduce((x, y) => x + y, 0) === 30, `every layer held once: ${layers}`);
  const total = view.parts.reduce((x, p) => x + p.width, 0);
  const shares = view.parts.map((p) => p.width / total);
  check(view.parts.length === 3 && shares.every((s, i) => Math.abs(s - layers[i] / 30) < 0.08),
    `the bar is drawn to scale: ${shares.map((s) => s.toFixed(2))} for ${layers}`);
  check(errors.length === 0, `no page errors (the CSP allows the bar's widths): ${errors}`);
  await page.locator('#pools').screenshot({ path: `${shots}/pool.png` });
} finally {
  await browser.close();
}
