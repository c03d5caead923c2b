// Drives the inspector page in Debian's chromium (playwright-core, no browser download) the way a
// person would: log in, watch a request through each of two gateways appear, open one, replay it,
// edit and replay it. Prints one JSON line per step; the C# test asserts on them.
// Env: ADMIN (the page's gateway admin URL), TOKEN, INGRESS_A, INGRESS_B (two gateways' ingresses),
// PATH_A, PATH_B (request targets), SHOTS (folder for screenshots), PLAYWRIGHT (folder with node_modules).
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(path.join(process.env.PLAYWRIGHT, 'node_modules', 'x.js'));
const { chromium } = require('playwright-core');
const say = (step, data = {}) => console.log(JSON.stringify({ step, ...data }));

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  const page = await browser.newPage({ viewport: { width: 1600, height: 900 } });
  page.setDefaultTimeout(15000);
  const admin = process.env.ADMIN.replace(/\/$/, '');

  await page.goto(admin + '/inspect/');
  await page.waitForSelector('input[name=token]');
  await page.fill('input[name=token]', 'not-the-token');
  await page.click('button[type=submit]');
  await page.waitForSelector('.err');
  say('wrong-token-refused', { text: await page.textContent('.err') });
  await page.fill('input[name=token]', process.env.TOKEN);
  await page.click('button[type=submit]');
  await page.waitForSelector('#rows', { state: 'attached' });
  // The live list is connected once it names the gateways that answered.
  await page.waitForFunction(() => document.getElementById('gateways').textContent.includes('gateways:'));
  const cookies = await page.context().cookies();
  const session = cookies.find((c) => c.name === 'otun_inspect');
  say('logged-in', { httpOnly: session?.httpOnly ?? false, sameSite: session?.sameSite ?? '' });

  // One request through each gateway; both must show up in the list.
  const send = async (base, target, body) => {
    const res = await fetch(base.replace(/\/$/, '') + target, body === undefined ? {} : { method: 'POST', body });
    await res.arrayBuffer();
    return { id: res.headers.get('x-tunnel-request-id'), status: res.status };
  };
  const started = Date.now();
  const a = await send(process.env.INGRESS_A, process.env.PATH_A, process.env.BODY_A);
  const b = await send(process.env.INGRESS_B, process.env.PATH_B);
  await page.waitForSelector(`tr[data-id="${a.id}"]`);
  await page.waitForSelector(`tr[data-id="${b.id}"]`);
  say('both-listed', { a: a.id, b: b.id, ms: Date.now() - started });
  await page.screenshot({ path: path.join(process.env.SHOTS, 'inspector-list.png') });

  await page.click(`tr[data-id="${a.id}"]`);
  await page.waitForSelector('#detail h2');
  await page.waitForSelector('#replay');
  say('detail', { title: await page.textContent('#detail h2'), text: await page.textContent('#detail') });
  await page.screenshot({ path: path.join(process.env.SHOTS, 'inspector-detail.png') });

  await page.click('#replay');
  await page.waitForSelector('#note a');
  const replayed = await page.textContent('#note a');
  say('replayed', { id: replayed, note: await page.textContent('#note') });

  await page.click('#edit-toggle');
  await page.fill('#e-headers', 'X-Edited: yes');
  await page.click('#e-send');
  await page.waitForFunction((old) => { const x = document.querySelector('#note a'); return x && x.textContent !== old; }, replayed);
  say('edited', { id: await page.textContent('#note a') });

  // Pause keeps the list as it is while requests arrive.
  await page.click('#pause');
  const before = await page.locator('#rows tr').count();
  const c = await send(process.env.INGRESS_A, process.env.PATH_A, process.env.BODY_A);
  await page.waitForTimeout(1500);
  say('paused', { before, after: await page.locator('#rows tr').count(), listed: await page.locator(`tr[data-id="${c.id}"]`).count() });
} finally {
  await browser.close();
}
