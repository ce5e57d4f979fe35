// The proxy port through real processes, driven by an unmodified curl: SOCKS5, HTTP CONNECT and
// plain HTTP proxy requests reach `<service>.mesh`; other names are refused and never dialled.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import type { TestApp } from '../support/apps.js';
import { startEchoApp } from '../support/apps.js';
import type { HttpTestApp } from '../support/http-app.js';
import { startHttpApp } from '../support/http-app.js';
import type { ControlPlaneProcess, SidecarProcess } from '../support/mesh.js';
import { createToken, removeDirs, scrapeMetric, startControlPlane, startSidecar } from '../support/mesh.js';

/** curl's exit code for a refused proxy handshake (CURLE_PROXY, curl 7.73 and later) or a failed CONNECT. */
const CURL_PROXY_REFUSED = [97, 56];

/** Runs curl to completion; never rejects, so that failures can be asserted. */
function curl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('curl', ['--silent', '--show-error', '--max-time', '20', ...args], (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

describe('proxy port (SOCKS5 and HTTP) with curl', () => {
  let cp: ControlPlaneProcess;
  let api: HttpTestApp;
  let other: HttpTestApp;
  let decoy: TestApp;
  const sidecars: SidecarProcess[] = [];
  let web: SidecarProcess;
  let proxy: string;

  before(async () => {
    // The decoy stands for the internet: reachable from here, so a proxy that dialled refused names would hit it.
    [cp, api, other, decoy] = await Promise.all([startControlPlane(), startHttpApp('api'), startHttpApp('other'), startEchoApp()]);
    // Both destinations at once; web joins after them.
    await Promise.all(
      [
        { service: 'api', app: api.address },
        { service: 'other', app: other.address },
      ].map(async ({ service, app }) => sidecars.push(await startSidecar({ service, token: await createToken(cp, service), cp, app }))),
    );
    web = await startSidecar({ service: 'web', token: await createToken(cp, 'web'), cp, extra: ['--proxy', '127.0.0.1:0'] });
    sidecars.push(web);
    proxy = /proxy on (\S+)/.exec(web.proc.stdout())?.[1] ?? '';
    assert.match(proxy, /^127\.0\.0\.1:\d+$/);
  });

  after(async () => {
    await Promise.all(sidecars.map((sidecar) => sidecar.proc.stop()));
    await cp?.proc.stop();
    await Promise.all([api?.close(), other?.close(), decoy?.close()]);
    await removeDirs(cp?.dataDir ?? '');
  });

  it('curl --proxy socks5h:// reaches api.mesh; the name is resolved by the mesh, the port ignored', async () => {
    const result = await curl(['--proxy', `socks5h://${proxy}`, 'http://api.mesh:8080/hello?x=1']);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, 'api GET /hello?x=1 host=api.mesh:8080 connection= body=');
  });

  it('curl -x http:// sends absolute-form requests, which reach the app in origin form, body intact', async () => {
    const get = await curl(['-x', `http://${proxy}`, 'http://api.mesh/items?id=7']);
    assert.equal(get.code, 0, get.stderr);
    assert.equal(get.stdout, 'api GET /items?id=7 host=api.mesh connection=close body=');
    const post = await curl(['-x', `http://${proxy}`, '--data-binary', 'payload-bytes', 'http://api.mesh/submit']);
    assert.equal(post.stdout, 'api POST /submit host=api.mesh connection=close body=payload-bytes');
  });

  it('one curl, several URLs on two services: each request gets its own connection, each reaches its service', async () => {
    const result = await curl(['-x', `http://${proxy}`, 'http://api.mesh/1', 'http://other.mesh/2', 'http://api.mesh/3']);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(
      result.stdout,
      'api GET /1 host=api.mesh connection=close body=' + 'other GET /2 host=other.mesh connection=close body=' + 'api GET /3 host=api.mesh connection=close body=',
    );
  });

  it('curl -p -x http:// tunnels through CONNECT', async () => {
    const result = await curl(['-p', '-x', `http://${proxy}`, 'http://api.mesh/tunnel']);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, 'api GET /tunnel host=api.mesh connection= body=');
  });

  it('refuses names outside .mesh in every mode, logs them, and opens no socket to them', async () => {
    const acceptedBefore = api.accepted;
    const refusalsBefore = await scrapeMetric(web, 'trellis_sidecar_proxy_refusals_total', { reason: 'not-mesh' });
    const decoyUrl = `http://127.0.0.1:${decoy.port}/`;
    const localhostUrl = `http://localhost:${decoy.port}/`;
    for (const args of [
      ['--proxy', `socks5h://${proxy}`, localhostUrl],
      ['--proxy', `socks5h://${proxy}`, 'http://example.com/'],
      ['--proxy', `socks5://${proxy}`, decoyUrl], // curl resolves, then sends an IPv4 address
      ['-p', '-x', `http://${proxy}`, decoyUrl],
      ['-p', '-x', `http://${proxy}`, 'http://api.mesh.example.com/'],
    ]) {
      const result = await curl(args);
      assert.ok(CURL_PROXY_REFUSED.includes(result.code), `curl ${args.join(' ')} exited ${result.code}: ${result.stderr}`);
    }
    const socksRefusal = await curl(['--proxy', `socks5h://${proxy}`, 'http://example.com/']);
    // curl names the SOCKS5 reply code: 2, "connection not allowed by ruleset".
    assert.match(socksRefusal.stderr, /SOCKS5 connection to example\.com.*\(2\)/);
    for (const url of [decoyUrl, localhostUrl, 'http://example.com/', 'http://a.api.mesh/']) {
      const result = await curl(['-x', `http://${proxy}`, '--write-out', 'status=%{http_code}', url]);
      assert.match(result.stdout, /is not a mesh name: this proxy reaches only <service>\.mesh.*\nstatus=403$/, url);
    }
    assert.equal(decoy.accepted, 0, 'no refused name was ever dialled');
    assert.equal(api.accepted, acceptedBefore);
    assert.match(web.proc.stderr(), /proxy refused a destination outside the mesh/);
    // Five refusals in the first loop, one more SOCKS5, four over plain HTTP.
    assert.equal(await scrapeMetric(web, 'trellis_sidecar_proxy_refusals_total', { reason: 'not-mesh' }), refusalsBefore + 10);
  });

  it('answers 502 for a mesh service with no endpoint, and SOCKS5 "host unreachable"', async () => {
    const http = await curl(['-x', `http://${proxy}`, '--write-out', 'status=%{http_code}', 'http://nobody.mesh/']);
    assert.match(http.stdout, /no route to service "nobody".*\nstatus=502$/);
    const socks = await curl(['--proxy', `socks5h://${proxy}`, 'http://nobody.mesh/']);
    assert.ok(CURL_PROXY_REFUSED.includes(socks.code), `curl exited ${socks.code}: ${socks.stderr}`);
  });
});
