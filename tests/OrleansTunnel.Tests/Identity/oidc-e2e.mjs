// Signs in through the tunnel in Debian's chromium (playwright-core) the way a person would: an
// unauthenticated visit is sent to the OpenID Provider, the person logs in and consents, comes back
// with the session cookie and the backend sees who they are; the same browser is then signed in on a
// second gateway, is refused (403) on a route that does not allow them, signs in on routes whose client
// secret is a ClientSecretRef, and signs out at the provider too (RP-initiated logout).
// The route hosts (*.test) resolve to loopback inside the browser only. Prints one JSON line per step.
// Env: GATEWAY_A, GATEWAY_B (ingress ports), HOST_OK, HOST_DENIED, HOST_FILE_REF, HOST_ENV_REF, LOGIN, ISSUER, PLAYWRIGHT, SHOTS.
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(path.join(process.env.PLAYWRIGHT, 'node_modules', 'x.js'));
const { chromium } = require('playwright-core');
const say = (step, data = {}) => console.log(JSON.stringify({ step, ...data }));
const { GATEWAY_A: a, GATEWAY_B: b, HOST_OK: ok, HOST_DENIED: denied, LOGIN: login, ISSUER: issuer } = process.env;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--host-resolver-rules=MAP *.test 127.0.0.1'],
});
try {
  const context = await browser.newContext();
  // Nothing leaves the machine (the provider's page imports a web font).
  await context.route('**/*', (route) => {
    const host = new URL(route.request().url()).hostname;
    return host === '127.0.0.1' || host.endsWith('.test') ? route.continue() : route.abort();
  });
  const page = await context.newPage();
  page.setDefaultTimeout(30000);
  const echo = async () => JSON.parse(await page.textContent('body'));
  const header = (e, name) => (e.headers.find(([k]) => k.toLowerCase() === name.toLowerCase()) || [])[1] ?? null;

  // 1. Unauthenticated: the gateway sends the browser to the provider.
  await page.goto(`http://${ok}:${a}/echo?first=1`);
  await page.waitForSelector('input[name=login]');
  say('redirected-to-provider', { url: page.url() });
  await page.fill('input[name=login]', login);
  await page.fill('input[name=password]', 'any');
  await page.click('button[type=submit]');
  // Consent (the development interactions ask once per client).
  await page.waitForSelector('button[type=submit]');
  await page.click('button[type=submit]');
  await page.waitForURL(`http://${ok}:${a}/echo?first=1`);
  const first = await echo();
  const cookies = await context.cookies(`http://${ok}:${a}/`);
  const session = cookies.find((c) => c.name.startsWith('otun_session_'));
  say('signed-in', {
    url: page.url(), user: header(first, 'X-Otun-User'), email: header(first, 'X-Otun-Email'), groups: header(first, 'X-Otun-Groups'),
    cookie: session ? `${session.name}=${session.value}` : null, httpOnly: session?.httpOnly ?? false, sameSite: session?.sameSite ?? '',
  });
  await page.screenshot({ path: path.join(process.env.SHOTS, 'oidc-signed-in.png') });

  // 2. The same browser on the second gateway (same host name, another port): no new sign-in.
  const requests = [];
  page.on('request', (r) => requests.push(r.url()));
  await page.goto(`http://${ok}:${b}/echo?second=1`);
  const second = await echo();
  say('second-gateway', { url: page.url(), email: header(second, 'X-Otun-Email'), visitedProvider: requests.some((u) => u.startsWith(issuer)) });

  // 3. A route that does not allow this person: 403 with a message, after the (silent) sign-in.
  const refused = await page.goto(`http://${denied}:${a}/echo`);
  say('denied', { status: refused.status(), url: page.url(), text: await page.textContent('body') });

  // 4. Routes whose client secret each gateway reads itself (ClientSecretRef file: and env:): the code is
  // redeemed with that secret (the provider session makes the sign-in silent; the token request is not).
  for (const [step, host] of [['file-ref', process.env.HOST_FILE_REF], ['env-ref', process.env.HOST_ENV_REF]]) {
    requests.length = 0;
    await page.goto(`http://${host}:${a}/echo?${step}=1`);
    await page.waitForURL(`http://${host}:${a}/echo?${step}=1`);
    const seen = await echo();
    say(step, { url: page.url(), email: header(seen, 'X-Otun-Email'), visitedProvider: requests.some((u) => u.startsWith(issuer)) });
  }

  // 5. Sign out: the gateway sends the browser to the provider's end_session_endpoint; the person confirms,
  // lands on the post-logout page, and the next visit meets the provider's login form again.
  requests.length = 0;
  await page.goto(`http://${ok}:${a}/.otun/oidc/logout`);
  const endSession = requests.find((u) => u.startsWith(issuer)) ?? null;
  await page.click('button[name=logout][value=yes]');
  // Back on the site (the signed-out path, with the handler's state in the query), or wherever the provider stopped.
  await page.waitForURL((u) => u.host === `${ok}:${a}`).catch(() => {});
  const outText = await page.textContent('body');
  const left = (await context.cookies(`http://${ok}:${a}/`)).some((c) => c.name.startsWith('otun_session_'));
  say('signed-out', { url: page.url(), endSession, text: outText, cookieLeft: left });
  requests.length = 0;
  await page.goto(`http://${ok}:${a}/echo?after=logout`);
  await page.waitForSelector('input[name=login]');
  say('after-sign-out', { url: page.url(), visitedProvider: requests.some((u) => u.startsWith(issuer)) });
  await page.screenshot({ path: path.join(process.env.SHOTS, 'oidc-after-sign-out.png') });
} finally {
  await browser.close();
}
