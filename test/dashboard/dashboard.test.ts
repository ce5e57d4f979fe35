// The dashboard in a real browser (Debian's Chromium through playwright-core) against a real
// mesh: a control plane, sidecars and a gateway as their own processes, real HTTP apps and
// traffic through the mesh. Login (refused with a wrong token), the topology with live
// numbers, a policy denied from the page refusing the caller's traffic, a killed sidecar's
// endpoint leaving the page. Keeps a screenshot.
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { BrowserContext, Page } from 'playwright-core';
import type { SidecarProcess } from '../support/mesh.js';
import { eventually, removeDirs, scrapeMetric } from '../support/mesh.js';
import { launchChromium } from './browser.js';
import type { DashboardMesh, TrafficLoop } from './mesh-fixture.js';
import { LIVE_TIMEOUT_MS, getOnce, sidecarIds, startDashboardMesh } from './mesh-fixture.js';

describe('dashboard in Chromium', { timeout: 300_000 }, () => {
  let mesh: DashboardMesh;
  let cp: DashboardMesh['cp'];
  let apiSidecars: SidecarProcess[];
  let web: SidecarProcess;
  let traffic: TrafficLoop;
  let context: BrowserContext;
  let page: Page;
  let browserDir: string;
  let adminToken: string;

  before(async () => {
    mesh = await startDashboardMesh();
    ({ cp, apiSidecars, web, traffic, adminToken } = mesh);
    browserDir = await mkdtemp(join(tmpdir(), 'trellis-browser-'));
    ({ context, page } = await launchChromium(browserDir));
  });

  after(async () => {
    await context?.close();
    await mesh?.stop();
    await removeDirs(join(browserDir ?? '', 'profile'));
  });

  it('refuses a wrong admin token and logs in with the right one (an HttpOnly, Secure, SameSite=Strict session)', async () => {
    await page.goto(`${cp.url}/ui`);
    await page.locator('#login-form').waitFor();
    await page.fill('#token', 'trellis-admin-v1.not-the-token');
    const refused = page.waitForResponse((r) => r.url().endsWith('/ui/login'));
    await page.click('#login-submit');
    const refusal = await refused;
    assert.equal(refusal.status(), 401);
    assert.equal(((await refusal.json()) as { error: { code: string } }).error.code, 'TRELLIS_ERR_UNAUTHORIZED');
    await page.locator('#login-error').waitFor();
    assert.equal(await page.locator('#dashboard').isHidden(), true);
    assert.deepEqual(await context.cookies(), []);

    await page.fill('#token', adminToken);
    await page.click('#login-submit');
    await page.locator('#dashboard').waitFor();
    const [cookie, ...others] = await context.cookies();
    assert.equal(others.length, 0);
    assert.equal(cookie?.name, 'trellis_ui');
    assert.equal(cookie?.httpOnly, true);
    assert.equal(cookie?.secure, true);
    assert.equal(cookie?.sameSite, 'Strict');
    assert.ok((cookie?.expires ?? -1) > Date.now() / 1000, 'the session cookie expires');
    assert.equal(page.url().includes(adminToken), false);
  });

  it('refuses a change without the CSRF token, and the mesh view without a session', async () => {
    const answers = await page.evaluate(async () => {
      const put = await fetch('/ui/api/v1/policies/rules', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ from: 'web', to: 'api', action: 'deny' }) });
      const anonymous = await fetch('/ui/api/mesh', { credentials: 'omit' });
      return [
        { status: put.status, body: (await put.json()) as { error: { code: string } } },
        { status: anonymous.status, body: (await anonymous.json()) as { error: { code: string } } },
      ];
    });
    assert.equal(answers[0]?.status, 403);
    assert.equal(answers[0]?.body.error.code, 'TRELLIS_ERR_CSRF');
    assert.equal(answers[1]?.status, 401);
    assert.equal(answers[1]?.body.error.code, 'TRELLIS_ERR_UNAUTHORIZED');
  });

  it('shows the topology with live numbers', async () => {
    const ids = await sidecarIds([...apiSidecars, web]);
    for (const id of ids) await page.locator(`tr[data-sidecar="${id}"]`).waitFor({ timeout: LIVE_TIMEOUT_MS });
    await page.locator('tr[data-gateway="default/edge"]').waitFor({ timeout: LIVE_TIMEOUT_MS });
    // Live: a rate above zero, which needs two reports from web, and a version in each sidecar row.
    await eventually(async () => Number(await page.locator('tr[data-service="api"] [data-signal="connectionsPerSecond"]').textContent()) > 0, 'a connection rate for api', LIVE_TIMEOUT_MS);
    const opened = Number(await page.locator('tr[data-service="api"] [data-signal="opened"]').textContent());
    await eventually(async () => Number(await page.locator('tr[data-service="api"] [data-signal="opened"]').textContent()) > opened, 'the opened count of api to grow', LIVE_TIMEOUT_MS);
    assert.ok(traffic.ok > 0);
    for (const id of ids) assert.equal(await page.locator(`tr[data-sidecar="${id}"] td`).nth(2).textContent(), '0.1.0');
    for (const id of ids) {
      const config = /^v(\d+) \(acked v(\d+)\)$/.exec((await page.locator(`tr[data-sidecar="${id}"] [data-field="config"]`).textContent()) ?? '');
      assert.ok(config !== null && Number(config[1]) > 0 && Number(config[2]) > 0, 'the applied and the acked config version');
    }
    // Gateways report too.
    await page.locator('tr[data-gateway="default/edge"] td', { hasText: '0.1.0' }).waitFor({ timeout: LIVE_TIMEOUT_MS });
    assert.notEqual(await page.locator('tr[data-service="api"] [data-signal="connectMs"]').textContent(), '– / –');
    // The graph: a canvas drawn by cytoscape, and its account in text.
    assert.ok((await page.locator('#graph canvas').count()) > 0);
    const summary = page.locator('#graph-summary');
    assert.ok(Number(await summary.getAttribute('data-nodes')) >= 1 + 2 + 3 + 1, 'zone, two services, three sidecars, a gateway');
    await summary.locator('li', { hasText: /^traffic web → api: / }).waitFor({ state: 'attached' });
    const shot = join(browserDir, 'dashboard.png');
    await page.screenshot({ path: shot, fullPage: true });
    process.stdout.write(`# dashboard screenshot: ${shot}\n`);
  });

  it("denies web → api from the page, and web's traffic is refused", async () => {
    const denialsBefore = await Promise.all(apiSidecars.map((s) => scrapeMetric(s, 'trellis_sidecar_policy_denials_total', { source: 'web' })));
    await page.selectOption('select[data-from="web"][data-to="api"]', 'deny');
    await page.locator('select[data-from="web"][data-to="api"].deny').waitFor();
    await eventually(async () => !(await getOnce(web.upstreams.get('api')?.port ?? 0)), 'a call from web to api to be refused');
    const denialsAfter = await Promise.all(apiSidecars.map((s) => scrapeMetric(s, 'trellis_sidecar_policy_denials_total', { source: 'web' })));
    assert.ok(denialsAfter.reduce((a, b) => a + b) > denialsBefore.reduce((a, b) => a + b), 'the api sidecars count POLICY_DENIED for web');
    await page.locator('tr[data-service="api"] [data-code="POLICY_DENIED"]').waitFor({ timeout: LIVE_TIMEOUT_MS });

    await page.selectOption('select[data-from="web"][data-to="api"]', 'default');
    await page.locator('select[data-from="web"][data-to="api"].default').waitFor();
    await eventually(() => getOnce(web.upstreams.get('api')?.port ?? 0), 'web to reach api again');
  });

  it("drops a killed sidecar's endpoint", async () => {
    const victim = apiSidecars[1];
    assert.ok(victim !== undefined);
    const { sidecarId } = (await (await fetch(`${victim.adminUrl}/status`)).json()) as { sidecarId: string };
    await page.locator(`tr[data-sidecar="${sidecarId}"]`).waitFor();
    await victim.proc.stop('SIGKILL');
    await page.locator(`tr[data-sidecar="${sidecarId}"]`).waitFor({ state: 'detached', timeout: LIVE_TIMEOUT_MS });
    await page.locator('tr[data-service="api"] [data-signal="endpoints"]', { hasText: '1/1' }).waitFor({ timeout: LIVE_TIMEOUT_MS });
    assert.equal(await page.locator(`#graph-summary li`, { hasText: sidecarId }).count(), 0);
  });
});
