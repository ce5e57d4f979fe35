// trellis status, services, endpoints and policy list against a real mesh: aligned tables for
// people, --json for scripts, colour only on a terminal and never with NO_COLOR, and status
// exits 1 when something is wrong.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { TestApp } from '../support/apps.js';
import { startNamedApp } from '../support/apps.js';
import type { ControlPlaneProcess, SidecarProcess } from '../support/mesh.js';
import { createToken, eventually, removeDirs, setPolicy, startControlPlane, startSidecar } from '../support/mesh.js';
import { freeLoopbackPort } from '../support/ports.js';
import { repoRoot, runTrellis, trellisBin } from '../support/processes.js';

/** A colour (SGR) escape; the progress line's erase-line escape on stderr is not one. */
const COLOUR = new RegExp(`${String.fromCharCode(0x1b)}\\[[0-9;]*m`);

interface Problem {
  severity: string;
  subject: string;
  message: string;
}

describe('trellis status, services, endpoints, policy list', () => {
  let cp: ControlPlaneProcess;
  let app: TestApp;
  let api: SidecarProcess;
  let web: SidecarProcess;
  let db: SidecarProcess | undefined;
  let dbApp: TestApp | undefined;
  let apiId: string;
  let webId: string;
  let env: NodeJS.ProcessEnv;

  before(async () => {
    cp = await startControlPlane();
    env = { TRELLIS_CONTROL_PLANE: cp.url, TRELLIS_ADMIN_TOKEN: '' };
    app = await startNamedApp('api');
    api = await startSidecar({ service: 'api', token: await createToken(cp, 'api'), cp, app: app.address });
    // web routes to db too, which nobody serves: what status must find.
    web = await startSidecar({ service: 'web', token: await createToken(cp, 'web'), cp, upstreams: ['api', 'db'] });
    apiId = ((await (await fetch(`${api.adminUrl}/status`)).json()) as { sidecarId: string }).sidecarId;
    webId = ((await (await fetch(`${web.adminUrl}/status`)).json()) as { sidecarId: string }).sidecarId;
    await setPolicy(cp, ['deny', '--from', 'web', '--to', 'api']);
  });
  after(async () => {
    await db?.proc.stop();
    await dbApp?.close();
    await web?.proc.stop();
    await api?.proc.stop();
    await app?.close();
    await cp?.proc.stop();
    await removeDirs(cp?.dataDir ?? '');
  });

  const trellis = (...args: string[]) => runTrellis([...args, '--admin-token-file', cp.adminTokenFile], env);

  it('services: an aligned table, and JSON', async () => {
    const { code, stdout } = await trellis('services');
    assert.equal(code, 0);
    assert.equal(stdout, ['SERVICE  ENDPOINTS  HEALTHY  CONNECTED  ZONES', 'api      1          1        1          default', 'web      1          1        1          default', ''].join('\n'));
    const json = JSON.parse((await trellis('services', '--json')).stdout) as { services: Record<string, { sidecarId: string; address: string }[]> };
    assert.deepEqual(Object.keys(json.services).sort(), ['api', 'web']);
    assert.equal(json.services['api']?.[0]?.sidecarId, apiId);
  });

  it('endpoints SERVICE: one row per endpoint; an unknown service is TRELLIS_ERR_NOT_FOUND; no service is a usage error', async () => {
    const { code, stdout } = await trellis('endpoints', 'api');
    assert.equal(code, 0);
    const [header, row, ...rest] = stdout.split('\n');
    assert.equal(header, `SIDECAR${' '.repeat(apiId.length - 'SIDECAR'.length)}  ADDRESS${' '.repeat(api.linkAddress.length - 'ADDRESS'.length)}  ZONE     WEIGHT  HEALTHY  CONNECTED`);
    assert.equal(row, `${apiId}  ${api.linkAddress}  default  1       yes      yes`);
    assert.deepEqual(rest, ['']);
    const json = JSON.parse((await trellis('endpoints', 'api', '--json')).stdout) as { service: string; endpoints: { address: string }[] };
    assert.deepEqual([json.service, json.endpoints.map((endpoint) => endpoint.address)], ['api', [api.linkAddress]]);
    const unknown = await trellis('endpoints', 'nope');
    assert.equal(unknown.code, 1);
    assert.ok(unknown.stderr.includes('[TRELLIS_ERR_NOT_FOUND]'), unknown.stderr);
    const missing = await trellis('endpoints');
    assert.equal(missing.code, 2);
    assert.ok(missing.stderr.includes('[TRELLIS_ERR_USAGE]'), missing.stderr);
  });

  it('policy list: the default and the rules, and JSON', async () => {
    const { code, stdout } = await trellis('policy', 'list');
    assert.equal(code, 0);
    assert.equal(stdout, ['default: allow (for calls no rule matches)', 'FROM  TO   ACTION', 'web   api  deny', ''].join('\n'));
    const json = JSON.parse((await trellis('policy', 'list', '--json')).stdout) as { defaultAction: string; rules: unknown[] };
    assert.deepEqual([json.defaultAction, json.rules], ['allow', [{ from: 'web', to: 'api', action: 'deny' }]]);
  });

  it('status: exit 1 naming a service a sidecar routes to that has no endpoint, from the reports alone', async () => {
    type Found = { ok: boolean; problems: Problem[]; reportedSidecars: { sidecarId: string; routes: string[] }[] };
    let found: Found | undefined;
    let code: number | string = 0;
    // The control plane knows what web routes to from web's first report (every 5 s).
    await eventually(async () => {
      const result = await trellis('status', '--json');
      code = result.code;
      found = JSON.parse(result.stdout) as Found;
      return found.problems.some((p) => p.subject === 'service db');
    }, 'status to hear of web routing to db');
    assert.equal(code, 1);
    assert.equal(found?.ok, false);
    assert.deepEqual(found?.problems.map(({ severity, subject }) => ({ severity, subject })), [{ severity: 'error', subject: 'service db' }]);
    assert.ok(found?.problems[0]?.message.includes(`web/${webId}`), found?.problems[0]?.message);
    assert.deepEqual(found?.reportedSidecars.find((s) => s.sidecarId === webId)?.routes, ['api', 'db']);
    // Its admin endpoint says the same; the finding is not doubled.
    const withAdmin = JSON.parse((await trellis('status', '--admin-url', web.adminUrl, '--json')).stdout) as Found;
    assert.deepEqual(withAdmin.problems.map(({ subject }) => subject), ['service db']);
    const table = await trellis('status');
    assert.equal(table.code, 1);
    assert.ok(table.stdout.includes(`service db has no endpoint, and web/${webId} routes to it`), table.stdout);
    assert.ok(table.stdout.endsWith('1 problem found.\n'), table.stdout);
  });

  it('status: exit 0 when nothing is wrong', async () => {
    dbApp = await startNamedApp('db');
    db = await startSidecar({ service: 'db', token: await createToken(cp, 'db'), cp, app: dbApp.address });
    const { code, stdout } = await trellis('status', '--admin-url', api.adminUrl, '--json');
    const found = JSON.parse(stdout) as { ok: boolean; problems: Problem[]; cliVersion: string; sidecars: { status: { version: string } }[] };
    assert.equal(code, 0, stdout);
    assert.deepEqual([found.ok, found.problems], [true, []]);
    const { version } = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string };
    assert.deepEqual([found.cliVersion, found.sidecars[0]?.status.version], [version, version]);
    const table = await trellis('status', '--admin-url', api.adminUrl);
    assert.equal(table.code, 0);
    assert.ok(table.stdout.endsWith('Nothing is wrong.\n'), table.stdout);
  });

  it('status: exit 1 for a control-plane replica or a sidecar that does not answer', async () => {
    const closed = `https://127.0.0.1:${await freeLoopbackPort()}`;
    const deadAdmin = `http://127.0.0.1:${await freeLoopbackPort()}`;
    const { code, stdout } = await runTrellis(['status', '--json', '--control-plane', cp.url, '--control-plane', closed, '--admin-url', deadAdmin, '--admin-token-file', cp.adminTokenFile]);
    assert.equal(code, 1);
    const found = JSON.parse(stdout) as { problems: Problem[]; controlPlanes: { url: string; ok: boolean }[] };
    assert.deepEqual(found.controlPlanes.map(({ url, ok }) => ({ url, ok })), [{ url: cp.url, ok: true }, { url: closed, ok: false }]);
    assert.deepEqual(found.problems.map(({ severity, subject }) => ({ severity, subject })), [
      { severity: 'error', subject: `control plane ${closed}` },
      { severity: 'error', subject: `sidecar ${deadAdmin}` },
    ]);
  });

  /** Runs `trellis ARGS` on a pseudo-terminal (`script`) and returns what it printed. */
  const onTerminal = async (args: string[], extraEnv: NodeJS.ProcessEnv): Promise<string> => {
    const line = [process.execPath, trellisBin, ...args, '--admin-token-file', cp.adminTokenFile].join(' ');
    const child = spawn('script', ['-qec', line, '/dev/null'], { env: { ...process.env, ...env, ...extraEnv }, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (text: string) => (out += text));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    await once(child, 'close');
    clearTimeout(timer);
    return out;
  };

  it('colours on a terminal only, and never with NO_COLOR', async () => {
    for (const args of [['services'], ['policy', 'list'], ['status']]) {
      assert.match(await onTerminal(args, { NO_COLOR: '' }), COLOUR, `trellis ${args.join(' ')} on a terminal has no colour`);
      assert.doesNotMatch(await onTerminal(args, { NO_COLOR: '1' }), COLOUR, `trellis ${args.join(' ')} with NO_COLOR has colour`);
      assert.doesNotMatch((await trellis(...args)).stdout, COLOUR, `trellis ${args.join(' ')} into a pipe has colour`);
    }
  });
});
