// The dashboard's routes on a real control plane: the bundled page and its headers, sessions
// (expiry, logout, CSRF), the admin API under /ui/api, and the warning strip's sources.
import assert from 'node:assert/strict';
import { request as httpsRequest } from 'node:https';
import { describe, it } from 'node:test';
import { DashboardSessions, MAX_SESSIONS } from '../../control-plane/dashboard/sessions.js';
import type { MeshView } from '../../control-plane/dashboard/view-types.js';
import type { ControlPlane } from '../../control-plane/index.js';
import { Reporter } from '../../sidecar/control/reporter.js';
import { PrometheusSidecarMetrics } from '../../sidecar/metrics/index.js';
import { adminTokenOf, call, caPemOf, ChannelClient, controlPlaneIdentityCheck, isSnapshot, joinAs, silentLogger, withTestControlPlane } from '../control-plane/helpers.js';
import { eventually } from '../support/mesh.js';
import { uiCall, uiLogin } from './helpers.js';

function errorCode(json: unknown): string | undefined {
  return (json as { error?: { code?: string } } | undefined)?.error?.code;
}

/** GETs a page as text with its headers. */
function getPage(cp: ControlPlane, caPem: string, path: string): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const url = new URL(path, cp.url);
    const req = httpsRequest({ host: url.hostname, port: url.port, path: url.pathname, ca: caPem, checkServerIdentity: controlPlaneIdentityCheck(cp.trustDomain) }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('dashboard routes', () => {
  it('serve the bundled page with a strict content security policy, and no CDN', async () => {
    await withTestControlPlane({}, async (cp, dir) => {
      const caPem = await caPemOf(dir.path);
      const page = await getPage(cp, caPem, '/ui');
      assert.equal(page.status, 200);
      assert.equal(page.headers['content-type'], 'text/html; charset=utf-8');
      assert.match(String(page.headers['content-security-policy']), /script-src 'self';/);
      assert.equal(page.headers['x-content-type-options'], 'nosniff');
      const scripts = [...page.body.matchAll(/src="([^"]+)"/g)].map((m) => m[1]);
      assert.deepEqual(scripts, ['/ui/app.js']);
      const script = await getPage(cp, caPem, '/ui/app.js');
      assert.equal(script.status, 200);
      assert.equal(script.headers['content-type'], 'text/javascript; charset=utf-8');
      assert.ok(script.body.length > 100_000, 'cytoscape is bundled in');
      assert.equal(/https?:\/\/(cdn|unpkg|jsdelivr)/.test(script.body + page.body), false);
      assert.equal((await getPage(cp, caPem, '/ui/style.css')).status, 200);
      assert.equal(errorCode(JSON.parse((await getPage(cp, caPem, '/ui/nothing-here')).body)), 'TRELLIS_ERR_NOT_FOUND');
    });
  });

  it('log in only with the admin token, refuse the wrong method, and end sessions at logout', async () => {
    await withTestControlPlane({}, async (cp, dir) => {
      const caPem = await caPemOf(dir.path);
      const wrong = await uiCall(cp, caPem, 'POST', '/ui/login', { body: { token: 'trellis-admin-v1.e30' } });
      assert.equal(wrong.status, 401);
      assert.equal(errorCode(wrong.json), 'TRELLIS_ERR_UNAUTHORIZED');
      assert.deepEqual(wrong.setCookie, []);
      const malformed = await uiCall(cp, caPem, 'POST', '/ui/login', { body: { token: 42 } });
      assert.equal(malformed.status, 400);
      assert.equal(errorCode(malformed.json), 'TRELLIS_ERR_INVALID');
      const get = await uiCall(cp, caPem, 'GET', '/ui/login');
      assert.equal(get.status, 405);
      assert.equal(errorCode(get.json), 'TRELLIS_ERR_METHOD_NOT_ALLOWED');

      const session = await uiLogin(cp, caPem, await adminTokenOf(cp));
      assert.equal((await uiCall(cp, caPem, 'GET', '/ui/api/session', { cookie: session.cookie })).status, 200);
      const badCsrf = await uiCall(cp, caPem, 'POST', '/ui/logout', { cookie: session.cookie, csrf: 'not-it' });
      assert.equal(badCsrf.status, 403);
      assert.equal(errorCode(badCsrf.json), 'TRELLIS_ERR_CSRF');
      const logout = await uiCall(cp, caPem, 'POST', '/ui/logout', { cookie: session.cookie, csrf: session.csrf });
      assert.equal(logout.status, 200);
      assert.match(logout.setCookie[0] ?? '', /^trellis_ui=; .*Max-Age=0/);
      const after = await uiCall(cp, caPem, 'GET', '/ui/api/mesh', { cookie: session.cookie });
      assert.equal(after.status, 401);
      assert.equal(errorCode(after.json), 'TRELLIS_ERR_UNAUTHORIZED');
    });
  });

  it('change policies through the admin API with the session and its CSRF token', async () => {
    await withTestControlPlane({}, async (cp, dir) => {
      const caPem = await caPemOf(dir.path);
      const session = await uiLogin(cp, caPem, await adminTokenOf(cp));
      const put = await uiCall(cp, caPem, 'PUT', '/ui/api/v1/policies/rules', { cookie: session.cookie, csrf: session.csrf, body: { from: 'web', to: 'api', action: 'deny' } });
      assert.equal(put.status, 200);
      assert.deepEqual((put.json as { rules: unknown[] }).rules, [{ from: 'web', to: 'api', action: 'deny' }]);
      const noCsrf = await uiCall(cp, caPem, 'DELETE', '/ui/api/v1/policies/rules', { cookie: session.cookie, body: { from: 'web', to: 'api' } });
      assert.equal(errorCode(noCsrf.json), 'TRELLIS_ERR_CSRF');
      const listed = await uiCall(cp, caPem, 'GET', '/ui/api/v1/policies', { cookie: session.cookie });
      assert.equal((listed.json as { rules: unknown[] }).rules.length, 1);
      const removed = await uiCall(cp, caPem, 'DELETE', '/ui/api/v1/policies/rules', { cookie: session.cookie, csrf: session.csrf, body: { from: 'web', to: 'api' } });
      assert.deepEqual((removed.json as { rules: unknown[] }).rules, []);
      // Only admin routes are reachable this way; the public ones stay where they are.
      assert.equal(errorCode((await uiCall(cp, caPem, 'GET', '/ui/api/v1/trust-bundle', { cookie: session.cookie })).json), 'TRELLIS_ERR_NOT_FOUND');
      assert.equal(errorCode((await uiCall(cp, caPem, 'POST', '/ui/api/v1/policies', { cookie: session.cookie, csrf: session.csrf })).json), 'TRELLIS_ERR_METHOD_NOT_ALLOWED');
    });
  });

  it('expire sessions, and keep at most MAX_SESSIONS', () => {
    let nowMs = 1_000_000;
    const sessions = new DashboardSessions({ ttlMs: 60_000, now: () => nowMs });
    const first = sessions.open();
    const cookie = first.cookie.split(';')[0];
    assert.match(first.cookie, /; HttpOnly; Secure; SameSite=Strict; Max-Age=60$/);
    assert.deepEqual(sessions.verify(cookie, { header: first.csrfToken }), { csrfToken: first.csrfToken });
    nowMs += 60_000;
    assert.throws(() => sessions.verify(cookie), { code: 'TRELLIS_ERR_UNAUTHORIZED' });
    const opened = Array.from({ length: MAX_SESSIONS + 1 }, () => sessions.open());
    assert.throws(() => sessions.verify(opened[0]?.cookie.split(';')[0]), { code: 'TRELLIS_ERR_UNAUTHORIZED' });
    assert.doesNotThrow(() => sessions.verify(opened[MAX_SESSIONS]?.cookie.split(';')[0]));
  });

  it('warn of unhealthy and disconnected endpoints, ejections, certificates near expiry and config not applied', async () => {
    await withTestControlPlane({ reportIntervalMs: 1000 }, async (cp, dir) => {
      const caPem = await caPemOf(dir.path);
      const web = await joinAs(cp, dir.path, 'web');
      const client = new ChannelClient(cp, caPem, web);
      await client.opened;
      client.send({ type: 'register', address: '127.0.0.1:7401', zone: 'z1', weight: 1 });
      const snapshot = await client.waitFor(isSnapshot);
      client.send({ type: 'ack', version: snapshot.version });
      client.send({ type: 'health', healthy: false });
      const metrics = new PrometheusSidecarMetrics({ service: 'web' });
      // A certificate with ten minutes left, and config version 0 while the mesh is further on.
      const reporter = new Reporter({
        channel: { connected: false, reportIntervalMs: undefined, send: () => false, on: () => undefined },
        metrics: metrics.registry,
        state: { configVersion: () => 0, certExpiresAt: () => Date.now() + 600_000, appHealthy: () => false, certRenewalFailing: () => false, routes: () => [] },
        logger: silentLogger,
      });
      client.send(await reporter.build());
      metrics.endpointEjected('api');
      client.send(await reporter.build());
      const session = await uiLogin(cp, caPem, await adminTokenOf(cp));
      const kinds = async (): Promise<string[]> => ((await uiCall(cp, caPem, 'GET', '/ui/api/mesh', { cookie: session.cookie })).json as MeshView).warnings.map((w) => w.kind).sort();
      await eventually(async () => (await kinds()).length === 4, 'four warnings');
      assert.deepEqual(await kinds(), ['cert-expiring', 'config-behind', 'endpoint-ejected', 'endpoint-unhealthy']);
      const view = (await uiCall(cp, caPem, 'GET', '/ui/api/mesh', { cookie: session.cookie })).json as MeshView;
      // The same view for scripts, behind the admin token.
      const scripted = await call(cp, dir.path, 'GET', '/v1/mesh', { token: await adminTokenOf(cp) });
      assert.equal(scripted.status, 200);
      assert.equal((scripted.json as MeshView).sidecars.find((s) => s.sidecarId === web.sidecarId)?.configVersionAcked, snapshot.version);
      assert.equal(errorCode((await call(cp, dir.path, 'GET', '/v1/mesh')).json), 'TRELLIS_ERR_UNAUTHORIZED');
      assert.equal(view.sidecars.find((s) => s.sidecarId === web.sidecarId)?.configVersionAcked, snapshot.version);
      await client.close();
      await eventually(async () => (await kinds()).includes('endpoint-disconnected'), 'the disconnected endpoint warning');
    });
  });
});
