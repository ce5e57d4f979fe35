// The dashboard in Firefox (Debian's Firefox ESR through puppeteer-core over WebDriver BiDi)
// against the same real mesh as the Chromium test: login (refused with a wrong token), the
// topology with live numbers, a policy denied from the page refusing the caller's traffic and
// put back. Keeps a screenshot next to the Chromium test's.
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'puppeteer-core';
import { eventually, removeDirs } from '../support/mesh.js';
import type { FirefoxSession } from './browser.js';
import { launchFirefox } from './browser.js';
import type { DashboardMesh } from './mesh-fixture.js';
import { LIVE_TIMEOUT_MS, getOnce, sidecarIds, startDashboardMesh } from './mesh-fixture.js';

/**
 * The parts of a DOM element the callbacks below read in the page. The tests compile without
 * the DOM library (they run in Node), so puppeteer's element types do not resolve here.
 */
interface PageElement {
  textContent: string | null;
  hasAttribute(name: string): boolean;
  getAttribute(name: string): string | null;
}

/** The text of the first element matching `selector`. */
function textOf(page: Page, selector: string): Promise<string> {
  return page.$eval(selector, (element: PageElement) => element.textContent ?? '');
}

/** The number in the api row's cell for `signal`. */
async function apiSignal(page: Page, signal: string): Promise<number> {
  return Number(await textOf(page, `tr[data-service="api"] [data-signal="${signal}"]`));
}

describe('dashboard in Firefox', { timeout: 180_000 }, () => {
  let mesh: DashboardMesh;
  let firefox: FirefoxSession | undefined;
  let browser: Browser;
  let page: Page;
  let browserDir: string;
  let screenshotTaken = false;

  before(async () => {
    // The browser starts while the mesh does: two slow starts at once, on separate processes.
    browserDir = await mkdtemp(join(tmpdir(), 'trellis-browser-'));
    const [meshStarted, firefoxStarted] = await Promise.allSettled([startDashboardMesh(), launchFirefox(browserDir)]);
    if (meshStarted.status === 'fulfilled') mesh = meshStarted.value;
    if (firefoxStarted.status === 'fulfilled') ({ browser, page } = firefox = firefoxStarted.value);
    for (const started of [meshStarted, firefoxStarted]) if (started.status === 'rejected') throw started.reason;
  });

  after(async () => {
    await firefox?.close();
    await mesh?.stop();
    // The screenshot outlives the test; a directory without one goes with the profile.
    if (!screenshotTaken) await removeDirs(browserDir ?? '');
  });

  it('refuses a wrong admin token and logs in with the right one (an HttpOnly, Secure, SameSite=Strict session)', async () => {
    await page.goto(`${mesh.cp.url}/ui`);
    await page.waitForSelector('#login-form', { visible: true });
    await page.locator('#token').fill('trellis-admin-v1.not-the-token');
    const refused = page.waitForResponse((r) => r.url().endsWith('/ui/login'));
    await page.click('#login-submit');
    const refusal = await refused;
    assert.equal(refusal.status(), 401);
    assert.equal(((await refusal.json()) as { error: { code: string } }).error.code, 'TRELLIS_ERR_UNAUTHORIZED');
    await page.waitForSelector('#login-error', { visible: true });
    assert.equal(await page.$eval('#dashboard', (element: PageElement) => element.hasAttribute('hidden')), true);
    assert.deepEqual(await browser.cookies(), []);

    await page.locator('#token').fill(mesh.adminToken);
    await page.click('#login-submit');
    await page.waitForSelector('#dashboard', { visible: true });
    const [cookie, ...others] = await browser.cookies();
    assert.equal(others.length, 0);
    assert.equal(cookie?.name, 'trellis_ui');
    assert.equal(cookie?.httpOnly, true);
    assert.equal(cookie?.secure, true);
    assert.equal(cookie?.sameSite, 'Strict');
    assert.ok((cookie?.expires ?? -1) > Date.now() / 1000, 'the session cookie expires');
    assert.equal(page.url().includes(mesh.adminToken), false);
  });

  it('shows the topology with live numbers', async () => {
    const ids = await sidecarIds([...mesh.apiSidecars, mesh.web]);
    for (const id of [...ids.map((i) => `tr[data-sidecar="${i}"]`), 'tr[data-gateway="default/edge"]']) await page.waitForSelector(id, { timeout: LIVE_TIMEOUT_MS });
    // Live: a rate above zero, which needs two reports from web, and a count that grows.
    await eventually(async () => (await apiSignal(page, 'connectionsPerSecond')) > 0, 'a connection rate for api', LIVE_TIMEOUT_MS);
    const opened = await apiSignal(page, 'opened');
    await eventually(async () => (await apiSignal(page, 'opened')) > opened, 'the opened count of api to grow', LIVE_TIMEOUT_MS);
    assert.ok(mesh.traffic.ok > 0);
    for (const id of ids) assert.match(await textOf(page, `tr[data-sidecar="${id}"] [data-field="config"]`), /^v[1-9]\d* \(acked v[1-9]\d*\)$/);
    // The graph: a canvas drawn by cytoscape, and its account in text.
    assert.ok((await page.$$('#graph canvas')).length > 0);
    assert.ok(Number(await page.$eval('#graph-summary', (element: PageElement) => element.getAttribute('data-nodes'))) >= 1 + 2 + 3 + 1, 'zone, two services, three sidecars, a gateway');
    await eventually(async () => (await page.$$eval('#graph-summary li', (items: PageElement[]) => items.map((item) => item.textContent ?? ''))).some((text) => text.startsWith('traffic web → api: ')), 'the traffic from web to api in the graph summary', LIVE_TIMEOUT_MS);
    const shot = join(browserDir, 'dashboard-firefox.png');
    await page.screenshot({ path: shot, fullPage: true });
    screenshotTaken = true;
    process.stdout.write(`# dashboard screenshot (Firefox): ${shot}\n`);
  });

  it("denies web → api from the page, and web's traffic is refused until the rule is removed", async () => {
    const select = 'select[data-from="web"][data-to="api"]';
    await page.select(select, 'deny');
    await page.waitForSelector(`${select}.deny`);
    await page.waitForSelector('#policy-note.saved');
    await eventually(async () => !(await getOnce(mesh.webToApiPort)), 'a call from web to api to be refused');
    await page.waitForSelector('tr[data-service="api"] [data-code="POLICY_DENIED"]', { timeout: LIVE_TIMEOUT_MS });

    await page.select(select, 'default');
    await page.waitForSelector(`${select}.default`);
    await eventually(() => getOnce(mesh.webToApiPort), 'web to reach api again');
  });
});
