// Scoped push with real sidecar processes: a sidecar holds only its upstreams' endpoints, the
// rules protecting its own service and the mesh-wide entries; a first connection through the
// proxy port to a service it has never used waits for that service's endpoints and succeeds;
// after a restart from its data directory it resumes and forgets what it no longer uses.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { HttpTestApp } from '../support/http-app.js';
import { startHttpApp } from '../support/http-app.js';
import type { ControlPlaneProcess, SidecarProcess } from '../support/mesh.js';
import { createToken, eventually, removeDirs, setPolicy, startControlPlane, startSidecar } from '../support/mesh.js';

function curl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('curl', ['--silent', '--show-error', '--max-time', '20', ...args], (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

/** The keys of the config a sidecar last applied, from the cache in its data directory. */
async function cachedKeys(dataDir: string): Promise<Set<string>> {
  try {
    const cached = JSON.parse(await readFile(join(dataDir, 'config.json'), 'utf8')) as { entries: [string, unknown][] };
    return new Set(cached.entries.map(([key]) => key));
  } catch {
    return new Set();
  }
}

/** One sample of the control plane's /metrics (HTTPS with the mesh CA), or 0 when absent. */
async function controlPlaneMetric(cp: ControlPlaneProcess, sample: string): Promise<number> {
  const result = await curl(['--cacert', join(cp.dataDir, 'ca.crt'), `${cp.url}/metrics`]);
  assert.equal(result.code, 0, result.stderr);
  const line = result.stdout.split('\n').find((l) => l.startsWith(`${sample} `));
  return line === undefined ? 0 : Number(line.split(' ').at(-1));
}

const endpointServices = (keys: Set<string>): string[] => [...new Set([...keys].filter((k) => k.startsWith('endpoint/')).map((k) => k.split('/')[1] ?? ''))].sort();

describe('scoped push with real sidecars', () => {
  let cp: ControlPlaneProcess;
  let api: HttpTestApp;
  let other: HttpTestApp;
  let webDir: string;
  const sidecars: SidecarProcess[] = [];
  let web: SidecarProcess;

  before(async () => {
    [cp, api, other, webDir] = await Promise.all([startControlPlane(), startHttpApp('api'), startHttpApp('other'), mkdtemp(join(tmpdir(), 'trellis-web-'))]);
    // The three other sidecars and both rules at once; web joins once they are all in place.
    const startJoined = async (options: { service: string; app?: string }): Promise<void> => {
      sidecars.push(await startSidecar({ ...options, token: await createToken(cp, options.service), cp }));
    };
    await Promise.all([
      startJoined({ service: 'api', app: api.address }),
      startJoined({ service: 'other', app: other.address }),
      startJoined({ service: 'unrelated' }),
      setPolicy(cp, ['allow', '--from', 'web', '--to', 'api']),
      setPolicy(cp, ['deny', '--from', 'unrelated', '--to', 'web']),
    ]);
    web = await startSidecar({ service: 'web', token: await createToken(cp, 'web'), cp, upstreams: ['api'], dataDir: webDir, extra: ['--proxy', '127.0.0.1:0'] });
    sidecars.push(web);
  });

  after(async () => {
    await Promise.all(sidecars.map((sidecar) => sidecar.proc.stop()));
    await cp?.proc.stop();
    await Promise.all([api?.close(), other?.close()]);
    await removeDirs(cp?.dataDir ?? '', webDir ?? '');
  });

  it('holds only its upstream\'s endpoints, the rules protecting it and the mesh-wide entries', async () => {
    await eventually(async () => endpointServices(await cachedKeys(webDir)).includes('api'), 'web to hold the endpoints of api');
    const keys = await cachedKeys(webDir);
    assert.deepEqual(endpointServices(keys), ['api']);
    assert.ok(keys.has('policy/rule/unrelated/web'));
    assert.ok(!keys.has('policy/rule/web/api'), 'the rule api enforces is not pushed to web');
    assert.ok(keys.has('policy/default'));
  });

  it('a first connection through the proxy port to a service never used waits for its endpoints and succeeds', async () => {
    const proxy = /proxy on (\S+)/.exec(web.proc.stdout())?.[1] ?? '';
    assert.ok(!endpointServices(await cachedKeys(webDir)).includes('other'));
    const result = await curl(['--proxy', `socks5h://${proxy}`, 'http://other.mesh/first']);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, 'other GET /first host=other.mesh connection= body=');
    await eventually(async () => endpointServices(await cachedKeys(webDir)).includes('other'), 'web to cache the endpoints of other');
    assert.deepEqual(endpointServices(await cachedKeys(webDir)), ['api', 'other']);
    // Through the upstream port, api works as before.
    const upstream = web.upstreams.get('api');
    const viaUpstream = await curl([`http://${upstream?.host}:${upstream?.port}/up`]);
    assert.equal(viaUpstream.stdout, 'api GET /up host=' + `${upstream?.host}:${upstream?.port}` + ' connection= body=');
  });

  it('a restarted sidecar resumes from its cached version and forgets the services it no longer uses', async () => {
    await web.proc.stop();
    sidecars.splice(sidecars.indexOf(web), 1);
    web = await startSidecar({ service: 'web', token: await createToken(cp, 'web'), cp, upstreams: ['api'], dataDir: webDir });
    sidecars.push(web);
    await eventually(async () => (await controlPlaneMetric(cp, 'trellis_cp_push_events_total{event="resume-delta"}')) === 1, 'the control plane to resume web with a delta');
    await setPolicy(cp, ['allow', '--from', 'other', '--to', 'web']);
    await eventually(async () => (await cachedKeys(webDir)).has('policy/rule/other/web'), 'the new rule to reach web');
    assert.deepEqual(endpointServices(await cachedKeys(webDir)), ['api']);
  });
});
