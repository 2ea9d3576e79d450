// Answers rendered as Markdown, with hostile model output, in headless Chromium against a real
// gateway. "The model" is a stand-in OpenAI-compatible server started here; the driver
// (crates/cli/tests/it/web.rs) puts a real `nova worker --backend openai-http` in front of it
// when this script prints `UPSTREAM <url>`, so the text crosses the real worker, p2p link,
// gateway, SSE stream and the page's own rendering, cut into pieces that split tags apart.
//
// Environment: NOVA_URL, NOVA_TOKEN, NOVA_SCREENSHOTS, NOVA_CHROMIUM.

import { check, env, ask, run, watch, login, send, settled, upstream, lastUser, until } from './lib.mjs';

const { url, token, shots, executablePath } = env();

const HOSTILE = [
  "# Title <script>window.__pwned = 'h1'</script>",
  '',
  "<script>window.__pwned = 'script'; alert('script')</script>",
  `<img src=x onerror="window.__pwned='img'; alert('img')">`,
  `<svg onload="window.__pwned='svg'"></svg>`,
  `<iframe srcdoc="<script>parent.__pwned='iframe'</script>"></iframe>`,
  `<a href="javascript:window.__pwned='a'">raw anchor</a>`,
  '<style>body { display: none }</style>',
  '',
  "[click me](javascript:window.__pwned='md-link')",
  "[mixed case](JaVaScRiPt:window.__pwned='mixed')",
  "[tabbed](java\tscript:window.__pwned='tab')",
  "[spaced]( javascript:window.__pwned='space')",
  '[data](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)',
  '[vb](vbscript:msgbox(1))',
  '[file](file:///etc/passwd)',
  '[relative](/v1/swarm)',
  "[entity](&#106;avascript:window.__pwned='entity')",
  "![picture](javascript:window.__pwned='image')",
  "<javascript:window.__pwned='autolink'>",
  `**bold <b onmouseover="window.__pwned='b'">x</b>**`,
  '',
  'Safe: [example](https://example.com/ok) and <someone@example.com> and https://example.org/path.',
  '',
  '```html',
  "<script>window.__pwned = 'code'</script>",
  '```',
  '`<img src=x onerror=alert(1)>`',
].join('\n');

const FEATURES = [
  '# Heading one',
  '## Heading two',
  '',
  'Some *emphasis*, **strong**, ***both***, ~~struck~~, `inline code`, snake_case_word and 2 * 3 * 4.',
  '',
  '- bullet one',
  '- bullet **two**',
  '  - nested a',
  '  - nested b',
  '- bullet three',
  '',
  '1. first',
  '2. second',
  '3. third',
  '',
  '> quoted line',
  '> > nested quote',
  '',
  '| Name | Score |',
  '|:-----|------:|',
  '| a    | 1     |',
  '| b    | 22    |',
  '',
  '---',
  '',
  '```python',
  'def hello():',
  '    return "<b>not bold</b>"',
  '```',
].join('\n');
const PYTHON = 'def hello():\n    return "<b>not bold</b>"';

// 200 KB of code in one fenced block, with one very long line, streamed in 2,000-character events.
const HUGE_LINES = [];
for (let i = 0; HUGE_LINES.join('\n').length < 200_000; i++) HUGE_LINES.push(`line ${String(i).padStart(5, '0')}: let value_${i} = compute(${i}, "${'x'.repeat(40)}");`);
HUGE_LINES.splice(10, 0, `const long = "${'y'.repeat(5000)}";`);
const HUGE_CODE = HUGE_LINES.join('\n');
const HUGE = `Here is a big file:\n\n\`\`\`text\n${HUGE_CODE}\n\`\`\`\n\nDone.`;

const up = await upstream((messages) => {
  const q = lastUser(messages);
  if (q.includes('HOSTILE')) return { text: HOSTILE, piece: 7, delayMs: 2 };
  if (q.includes('FEATURES')) return { text: FEATURES, piece: 9, delayMs: 2 };
  if (q.includes('HUGE')) return { text: HUGE, piece: 2000, delayMs: 20 };
  return { text: `You said: ${q}` };
});
const worker = (await ask(`UPSTREAM ${up.url}`)).replace(/^STARTED /, '');

/** Everything in the conversation that must never appear when model text is only text. */
async function inert(page) {
  return page.evaluate(() => {
    const log = document.getElementById('log');
    const bad = [...log.querySelectorAll('script, img, iframe, svg, style, object, embed, form, input, link, meta, base, frame')].map((e) => e.tagName);
    const handlers = [...log.querySelectorAll('*')].flatMap((e) => [...e.attributes].filter((a) => /^on/i.test(a.name)).map((a) => `${e.tagName}[${a.name}]`));
    const links = [...log.querySelectorAll('a')].map((a) => ({ href: a.getAttribute('href'), rel: a.rel, target: a.target }));
    return { bad, handlers, links, pwned: window.__pwned, bodyShown: getComputedStyle(document.body).display !== 'none' };
  });
}

function checkInert(v, when) {
  check(v.pwned === undefined, `${when}: no injected script ran (window.__pwned is ${v.pwned})`);
  check(v.bad.length === 0, `${when}: no script, img, iframe, svg or style element came from the model (${v.bad})`);
  check(v.handlers.length === 0, `${when}: no element carries an event-handler attribute (${v.handlers})`);
  check(v.bodyShown, `${when}: a <style> in the answer did not restyle the page`);
  const hrefs = v.links.map((l) => l.href).sort();
  check(JSON.stringify(hrefs) === JSON.stringify(['https://example.com/ok', 'https://example.org/path', 'mailto:someone@example.com']),
    `${when}: only the http(s) and mailto links became links: ${hrefs}`);
  check(v.links.every((l) => l.rel.includes('noopener') && l.rel.includes('noreferrer') && l.target === '_blank'),
    `${when}: every link opens with rel="noopener noreferrer" in a new tab`);
}

await run(executablePath, 240_000, async (browser) => {
  const problems = [];
  const desk = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  await desk.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: url });
  const page = await desk.newPage();
  watch(page, problems);
  page.setDefaultTimeout(60_000);
  await page.goto(url + '/');
  await login(page, token);
  await page.waitForSelector(`.node[data-name="${worker}"][data-state="ready"]`);

  // The renderer on its own, in this page: which hrefs survive, and hostile shapes rendered in
  // bounded time with their text intact.
  const unit = await page.evaluate(async () => {
    const md = await import('/assets/markdown.js');
    const hrefs = {};
    for (const h of ['javascript:alert(1)', 'JaVaScRiPt:alert(1)', 'java\tscript:alert(1)', ' javascript:alert(1)', 'java\nscript:alert(1)',
      'data:text/html,<script>alert(1)</script>', 'vbscript:msgbox(1)', 'file:///etc/passwd', '//evil.example/', '/v1/swarm', 'blob:https://x/1',
      'https://ok.example/a?b=1#c', 'http://ok.example', 'mailto:a@ok.example']) hrefs[h] = md.safeHref(h);
    const shapes = {
      stars: '*'.repeat(100_000) + 'x',
      'lone stars': 'a * '.repeat(50_000),
      underscores: '_a'.repeat(50_000),
      brackets: '['.repeat(100_000),
      'open links': '[a]('.repeat(25_000),
      backticks: 'x' + '`'.repeat(50_000) + 'a',
      'backtick ladder': Array.from({ length: 600 }, (_, i) => '`'.repeat(i + 1)).join('a'),
      angles: '<'.repeat(100_000),
      'angle runs': ('<' + 'a'.repeat(3000)).repeat(30),
      'emails': '<a@b.'.repeat(20_000),
      urls: 'http://'.repeat(20_000),
      'strikes (markup: time only)': '~~a'.repeat(30_000),
      'emphasis (markup: time only)': '**a *b* c** '.repeat(10_000),
      'links (markup: time only)': '[a](https://x.example/(b)) '.repeat(10_000),
      'table pipes (markup: time only)': '|'.repeat(3000) + '\n' + '|-'.repeat(1500) + '\n' + '|x'.repeat(1500),
    };
    const out = {};
    for (const [name, input] of Object.entries(shapes)) {
      const t0 = performance.now();
      const box = document.createElement('div');
      box.append(md.renderMarkdown(input));
      out[name] = { ms: Math.round(performance.now() - t0), chars: box.textContent.replace(/\s/g, '').length, want: input.replace(/\s/g, '').length };
    }
    const depth = (sel, input) => {
      const box = document.createElement('div');
      box.append(md.renderMarkdown(input));
      let d = 0;
      let e = box.querySelector(sel);
      while (e) {
        d++;
        e = e.querySelector(sel);
      }
      return d;
    };
    const lists = Array.from({ length: 400 }, (_, i) => `${'  '.repeat(i)}- item ${i}`).join('\n');
    const big = document.createElement('div');
    big.append(md.renderMarkdown('a'.repeat(md.MAX_MARKDOWN_CHARS + 1000)));
    return {
      hrefs,
      out,
      quotes: depth('blockquote', '>'.repeat(5000) + ' deep'),
      lists: depth('ul', lists),
      rest: big.querySelector('.md-rest') ? big.querySelector('.md-rest').textContent.length : 0,
    };
  });
  const allowed = Object.entries(unit.hrefs).filter(([, v]) => v !== null).map(([k]) => k);
  check(JSON.stringify(allowed) === JSON.stringify(['https://ok.example/a?b=1#c', 'http://ok.example', 'mailto:a@ok.example']),
    `only absolute http, https and mailto hrefs survive: ${JSON.stringify(unit.hrefs)}`);
  for (const [name, r] of Object.entries(unit.out)) {
    check(r.ms < 2000, `${name}: rendered in ${r.ms} ms`);
    if (!name.includes('markup')) check(r.chars === r.want, `${name}: not markup, so every character is still there as text (${r.chars} of ${r.want})`);
  }
  check(unit.quotes <= 6 && unit.lists <= 6, `nesting is capped: ${unit.quotes} blockquotes and ${unit.lists} lists deep`);
  check(unit.rest === 1000, `text beyond the Markdown limit is shown as plain text (${unit.rest} characters)`);

  // Hostile output through the real swarm.
  const hostile = await send(page, 'HOSTILE: show me everything');
  check(await settled(hostile) === 'done', 'the hostile answer completes');
  checkInert(await inert(page), 'streamed');
  const text = await hostile.locator('.text').textContent();
  check(text.includes("<script>window.__pwned = 'script'; alert('script')</script>"), 'a <script> in the answer shows as text');
  check(text.includes(`<img src=x onerror="window.__pwned='img'; alert('img')">`), 'an <img onerror> shows as text');
  check(text.includes("[click me](javascript:window.__pwned='md-link')"), 'a javascript: link shows as the text the model wrote');
  check(text.includes('[relative](/v1/swarm)') && text.includes('[data](data:text/html'), 'relative and data: links stay text');
  check(await hostile.locator('.md-code[data-lang="html"] code').textContent() === "<script>window.__pwned = 'code'</script>", 'HTML in a code block is code');
  check(await hostile.locator('h3').first().textContent() === "Title <script>window.__pwned = 'h1'</script>", 'markup in a heading is text');
  await page.screenshot({ path: `${shots}/markdown-hostile.png` });

  // Every feature renders as Markdown, and Copy puts the code on the clipboard.
  const feat = await send(page, 'FEATURES please');
  check(await settled(feat) === 'done', 'the features answer completes');
  const f = await feat.locator('.text').evaluate((t) => ({
    h3: t.querySelector('h3') && t.querySelector('h3').textContent,
    h4: t.querySelector('h4') && t.querySelector('h4').textContent,
    em: [...t.querySelectorAll('em')].map((e) => e.textContent),
    strong: [...t.querySelectorAll('strong')].map((e) => e.textContent),
    del: [...t.querySelectorAll('del')].map((e) => e.textContent),
    code: [...t.querySelectorAll('p code')].map((e) => e.textContent),
    para: t.querySelector('p').textContent,
    bullets: t.querySelector('ul') ? t.querySelector('ul').children.length : 0,
    nested: t.querySelector('ul ul') ? t.querySelector('ul ul').children.length : 0,
    numbered: t.querySelector('ol') ? t.querySelector('ol').children.length : 0,
    quotes: t.querySelectorAll('blockquote blockquote').length,
    rows: t.querySelectorAll('table tbody tr').length,
    right: [...t.querySelectorAll('table .md-right')].map((e) => e.textContent),
    rule: t.querySelectorAll('hr').length,
    lang: t.querySelector('.md-code') && t.querySelector('.md-code').dataset.lang,
  }));
  check(f.h3 === 'Heading one' && f.h4 === 'Heading two', `headings: ${f.h3}, ${f.h4}`);
  check(f.em.includes('emphasis') && f.strong.includes('strong') && f.del.includes('struck') && f.code.includes('inline code'),
    `emphasis, strong, strikethrough and inline code: ${JSON.stringify(f)}`);
  check(f.para.includes('snake_case_word') && f.para.includes('2 * 3 * 4'), `underscores inside words and spaced stars stay text: ${f.para}`);
  check(f.bullets === 3 && f.nested === 2 && f.numbered === 3, `lists: ${f.bullets} bullets (${f.nested} nested), ${f.numbered} numbered`);
  check(f.quotes === 1 && f.rows === 2 && f.right.join() === 'Score,1,22' && f.rule === 1, 'a nested quote, a table with a right-aligned column and a rule');
  check(f.lang === 'python', 'the code block knows its language');
  await feat.locator('.md-copy').click();
  await until('the Copy button to confirm', async () => (await feat.locator('.md-copy').textContent()) === 'Copied', 5000);
  const clip = await page.evaluate(() => navigator.clipboard.readText());
  check(clip === PYTHON, `Copy put exactly the code on the clipboard: ${JSON.stringify(clip)}`);

  // 200 KB of code: it streams, renders, scrolls inside its block, and the page stays responsive.
  await page.evaluate(() => {
    window.novaGaps = [];
    let last = performance.now();
    const tick = (t) => {
      window.novaGaps.push(t - last);
      last = t;
      if (!window.novaStop) requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  });
  const huge = await send(page, 'HUGE code please');
  const rtts = [];
  while ((await huge.getAttribute('data-state')) === 'streaming') {
    const t0 = Date.now();
    await page.evaluate(() => document.getElementById('prompt').value.length);
    rtts.push(Date.now() - t0);
    await page.waitForTimeout(100);
  }
  check(await settled(huge) === 'done', 'the 200 KB answer completes');
  const gaps = await page.evaluate(() => {
    window.novaStop = true;
    return window.novaGaps.slice(1);
  });
  const worstFrame = Math.round(Math.max(...gaps));
  const worstRtt = Math.max(0, ...rtts);
  console.log(`# while 200 KB streamed: ${rtts.length} probes, slowest ${worstRtt} ms; slowest frame ${worstFrame} ms`);
  check(worstRtt < 1500 && worstFrame < 1500, `the page stayed responsive while 200 KB streamed (slowest probe ${worstRtt} ms, slowest frame ${worstFrame} ms)`);
  const box = await huge.locator('.md-code pre').evaluate((pre) => {
    const before = pre.scrollTop;
    pre.scrollTop = 1e9;
    const log = document.getElementById('log').getBoundingClientRect();
    const msg = pre.closest('.msg').getBoundingClientRect();
    return {
      length: pre.textContent.length, client: pre.clientHeight, scroll: pre.scrollHeight, scrolled: pre.scrollTop > before,
      wide: pre.scrollWidth > pre.clientWidth, fits: msg.right <= log.right + 1 && msg.left >= log.left - 1,
      pageWide: document.documentElement.scrollWidth - innerWidth, pageTall: document.documentElement.scrollHeight - innerHeight, vh: innerHeight,
    };
  });
  check(box.length === HUGE_CODE.length, `the whole block is there (${box.length} characters)`);
  check(box.client <= box.vh * 0.6 + 2 && box.scroll > 20 * box.client && box.scrolled, `it scrolls inside itself (${box.client} px tall, ${box.scroll} px of code)`);
  check(box.wide && box.fits && box.pageWide <= 0 && box.pageTall <= 0, `its long line scrolls sideways within the block; the page neither widens nor grows (${box.pageWide}, ${box.pageTall})`);
  await page.screenshot({ path: `${shots}/markdown-huge.png` });

  // Reopened from this browser's storage, the same answers render the same way.
  await page.reload();
  await page.waitForSelector('.msg.assistant .md-code');
  checkInert(await inert(page), 'after a reload');
  check(await page.locator('.msg.assistant').count() === 3, 'the three answers are restored');

  // Without the clipboard API (plain http on a LAN address), Copy selects the code instead.
  const plain = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  await plain.addInitScript(() => Object.defineProperty(Navigator.prototype, 'clipboard', { get: () => undefined }));
  const mob = await plain.newPage();
  watch(mob, problems);
  mob.setDefaultTimeout(60_000);
  await mob.goto(url + '/');
  await login(mob, token);
  const again = await send(mob, 'FEATURES on a phone');
  check(await settled(again) === 'done', 'the phone gets its answer');
  await again.locator('.md-copy').click();
  const sel = await mob.evaluate(() => String(window.getSelection()));
  const said = await again.locator('.md-copy').textContent();
  check(sel === PYTHON && (said === 'Copied' || said.startsWith('Selected')), `without the clipboard API the code is selected for copying ("${said}")`);
  const phone = await mob.evaluate(() => ({ wide: document.documentElement.scrollWidth - innerWidth, logScrolls: getComputedStyle(document.getElementById('log')).overflowY }));
  check(phone.wide <= 0 && phone.logScrolls === 'visible', `the phone does not scroll sideways and has no inner chat box (${JSON.stringify(phone)})`);
  await mob.screenshot({ path: `${shots}/markdown-phone.png`, fullPage: true });

  check(problems.length === 0, `no script errors, CSP violations or dialogs${problems.length ? `: ${problems.join('; ')}` : ''}`);
  up.close();
});
