// The dashboard in a real browser (Debian's Chromium through playwright-core) against a real
// mesh: a control plane, sidecars and a gateway as their own processes, real HTTP apps and
// traffic through the mesh. Login (refused with a wrong token), the topology with live
// numbers, a policy denied from the page refusing the caller's traffic, a killed sidecar's
// endpoint leaving the page. Keeps a screenshot.
import assert from 'node:assert/strict';
import { mkdtemp, readFile } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { BrowserContext, Page } from 'playwright-core';
import type { HttpTestApp } from '../support/http-app.js';
import { startHttpApp } from '../support/http-app.js';
import type { ControlPlaneProcess, SidecarProcess } from '../support/mesh.js';
import { createToken, eventually, removeDirs, scrapeMetric, sidecarStatus, startControlPlane, startSidecar } from '../support/mesh.js';
import type { TrellisProcess } from '../support/processes.js';
import { runTrellis, spawnTrellis } from '../support/processes.js';
import { launchChromium } from './browser.js';

/** Sidecars report every 5 s: a few reports' worth on a loaded machine. */
const LIVE_TIMEOUT_MS = 60_000;

/** GETs through the caller's upstream port, one new connection each, bounded in count and time. */
class TrafficLoop {
  ok = 0;
  refused = 0;
  #running = true;
  readonly #done: Promise<void>;

  constructor(port: number, maxRequests = 5000, maxMs = 240_000) {
    const deadline = Date.now() + maxMs;
    this.#done = (async () => {
      for (let i = 0; i < maxRequests && this.#running && Date.now() < deadline; i++) {
        if (await getOnce(port)) this.ok += 1;
        else this.refused += 1;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    })();
  }

  async stop(): Promise<void> {
    this.#running = false;
    await this.#done;
  }
}

/** Whether a GET through the mesh got the app's answer (a refused stream closes the connection unanswered). */
function getOnce(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const request = http.get({ host: '127.0.0.1', port, path: '/', agent: false, timeout: 5000 }, (response) => {
      let body = '';
      response.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve(response.statusCode === 200 && body.startsWith('api ')));
      response.on('error', () => resolve(false));
    });
    request.on('timeout', () => request.destroy());
    request.on('error', () => resolve(false));
  });
}

describe('dashboard in Chromium', { timeout: 300_000 }, () => {
  let cp: ControlPlaneProcess;
  const apps: HttpTestApp[] = [];
  const apiSidecars: SidecarProcess[] = [];
  let web: SidecarProcess;
  let gateway: TrellisProcess;
  let traffic: TrafficLoop;
  let context: BrowserContext;
  let page: Page;
  let browserDir: string;
  let adminToken: string;

  before(async () => {
    cp = await startControlPlane({ leaseTtl: '2s' });
    adminToken = (await readFile(cp.adminTokenFile, 'utf8')).trim();
    const apiToken = await createToken(cp, 'api');
    for (let i = 0; i < 2; i++) {
      const app = await startHttpApp('api');
      apps.push(app);
      apiSidecars.push(await startSidecar({ service: 'api', token: apiToken, cp, app: app.address }));
    }
    web = await startSidecar({ service: 'web', token: await createToken(cp, 'web'), cp, upstreams: ['api'] });
    const gatewayToken = await runTrellis(['token', 'create', '--gateway', 'edge', '--zone', 'default', '--control-plane', cp.url, '--admin-token-file', cp.adminTokenFile]);
    assert.equal(gatewayToken.code, 0, gatewayToken.stderr);
    gateway = spawnTrellis(['gateway', '--zone', 'default', '--name', 'edge', '--token', gatewayToken.stdout.trim(), '--control-plane', cp.url, '--listen', 'tls://127.0.0.1:0']);
    await gateway.waitForOutput(/gateway default\/edge ready/);
    await eventually(async () => (await sidecarStatus(web)).upstreams.every((u) => u.endpoints.length === 2), 'web to see both endpoints of api');
    traffic = new TrafficLoop(web.upstreams.get('api')?.port ?? 0);

    browserDir = await mkdtemp(join(tmpdir(), 'trellis-browser-'));
    ({ context, page } = await launchChromium(browserDir));
  });

  after(async () => {
    await traffic?.stop();
    await context?.close();
    await Promise.all([web?.proc.stop(), gateway?.stop(), ...apiSidecars.map((s) => s.proc.stop()), cp?.proc.stop()]);
    await Promise.all(apps.map((app) => app.close()));
    await removeDirs(cp?.dataDir ?? '', join(browserDir ?? '', 'profile'));
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
    const ids = await Promise.all([...apiSidecars, web].map(async (s) => ((await (await fetch(`${s.adminUrl}/status`)).json()) as { sidecarId: string }).sidecarId));
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
