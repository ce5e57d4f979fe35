// `--config FILE.yaml` for sidecar, control-plane and gateway: equivalent to the flags, flags
// override it, and a wrong value is named by file, line and field before anything starts.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { ControlPlaneProcess } from '../support/mesh.js';
import { createToken, removeDirs, startControlPlane } from '../support/mesh.js';
import { freeLoopbackPort } from '../support/ports.js';
import { runTrellis, spawnTrellis } from '../support/processes.js';

describe('trellis --config', () => {
  let dir: string;
  let cp: ControlPlaneProcess;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'trellis-config-'));
    cp = await startControlPlane();
  });
  after(async () => {
    await cp?.proc.stop();
    await removeDirs(dir, cp?.dataDir ?? '');
  });

  const file = (name: string, lines: string[]): string => {
    const path = join(dir, name);
    writeFileSync(path, `${lines.join('\n')}\n`);
    return path;
  };

  it('starts a sidecar from the file alone, as with the same flags', async () => {
    const [upstreamPort, adminPort] = [await freeLoopbackPort(), await freeLoopbackPort()];
    const path = file('web.yaml', [
      '# the sidecar of web',
      'service: web',
      `token: ${await createToken(cp, 'web')}`,
      `control-plane: [${cp.url}]`,
      'listen: 127.0.0.1:0',
      `admin: 127.0.0.1:${adminPort}`,
      'weight: 3',
      'upstreams:',
      '  - service: api',
      `    address: 127.0.0.1:${upstreamPort}`,
      'log-format: json',
    ]);
    const sidecar = spawnTrellis(['sidecar', '--config', path]);
    try {
      await sidecar.waitForOutput(/admin on http:\/\/\S+/);
      assert.ok(sidecar.stdout().includes(`  upstream api on 127.0.0.1:${upstreamPort}\n`), sidecar.stdout());
      assert.ok(sidecar.stdout().includes(`  admin on http://127.0.0.1:${adminPort}\n`), sidecar.stdout());
      const services = (await runTrellis(['services', '--json', '--control-plane', cp.url, '--admin-token-file', cp.adminTokenFile])).stdout;
      const web = (JSON.parse(services) as { services: Record<string, { weight: number }[]> }).services['web'];
      assert.deepEqual(web?.map((endpoint) => endpoint.weight), [3]);
    } finally {
      await sidecar.stop();
    }
  });

  it('lets flags override the file, a repeatable flag replacing the file\'s list', async () => {
    const [filePort, flagPort, adminPort] = [await freeLoopbackPort(), await freeLoopbackPort(), await freeLoopbackPort()];
    const path = file('override.yaml', [
      'service: web',
      `control-plane: ${cp.url}`,
      'listen: 127.0.0.1:0',
      'admin: 127.0.0.1:0',
      'upstreams:',
      `  - {service: api, address: "127.0.0.1:${filePort}"}`,
    ]);
    const sidecar = spawnTrellis(['sidecar', '--config', path, '--token', await createToken(cp, 'web'), '--admin', `127.0.0.1:${adminPort}`, '--upstream', `db=127.0.0.1:${flagPort}`]);
    try {
      await sidecar.waitForOutput(/admin on http:\/\/\S+/);
      assert.ok(sidecar.stdout().includes(`  upstream db on 127.0.0.1:${flagPort}\n`), sidecar.stdout());
      assert.ok(!sidecar.stdout().includes('upstream api'), sidecar.stdout());
      assert.ok(sidecar.stdout().includes(`  admin on http://127.0.0.1:${adminPort}\n`), sidecar.stdout());
    } finally {
      await sidecar.stop();
    }
  });

  it('runs a command under `trellis run` from a file, flags overriding it', async () => {
    const filePort = await freeLoopbackPort();
    const path = file('run.yaml', [
      'service: web',
      `token: ${await createToken(cp, 'web')}`,
      `control-plane: ${cp.url}`,
      'upstreams:',
      `  - {service: api, address: "127.0.0.1:${filePort}"}`,
      '  - service: db',
    ]);
    const printUpstreams = ['--', 'sh', '-c', 'printf "%s|%s" "$TRELLIS_UPSTREAM_API" "$TRELLIS_UPSTREAM_DB"'];
    const fromFile = await runTrellis(['run', '--config', path, ...printUpstreams]);
    assert.equal(fromFile.code, 0, fromFile.stderr);
    const [api, db] = fromFile.stdout.split('|');
    assert.equal(api, `127.0.0.1:${filePort}`);
    assert.match(db ?? '', /^127\.0\.0\.1:[1-9]\d*$/);
    const overridden = await runTrellis(['run', '--config', path, '--upstream', 'db', ...printUpstreams]);
    assert.equal(overridden.code, 0, overridden.stderr);
    const [apiAfter, dbAfter] = overridden.stdout.split('|');
    assert.equal(apiAfter, '', 'a repeatable flag replaces the file\'s list');
    assert.match(dbAfter ?? '', /^127\.0\.0\.1:[1-9]\d*$/);
  });

  it('starts a control plane from a file', async () => {
    const port = await freeLoopbackPort();
    const path = file('cp.yaml', [`data-dir: ${join(dir, 'cp-data')}`, `listen: 127.0.0.1:${port}`, 'lease-ttl: 5s']);
    const controlPlane = spawnTrellis(['control-plane', '--config', path]);
    try {
      await controlPlane.waitForOutput(new RegExp(`listening on https://127\\.0\\.0\\.1:${port}\\n`));
    } finally {
      assert.equal(await controlPlane.stop(), 0);
    }
  });

  /** Runs a command with a config file of `lines` and returns its exit code and error line. */
  const refused = async (command: string, lines: string[]) => {
    const path = file(`${command}.yaml`, lines);
    const { code, stderr } = await runTrellis([command, '--config', path]);
    return { code, stderr, path };
  };

  it('names file, line and field of a wrong value, with the code TRELLIS_ERR_CONFIG_FILE and exit 2', async () => {
    const cases: [string, string[], string][] = [
      ['sidecar', ['service: web', 'listen: 127.0.0.1:0', 'upstreams:', '  - service: api', '    address: 127.0.0.1:9000', '  - service: db', '    address: nowhere'], '7: upstreams[1].address: expected HOST:PORT'],
      ['sidecar', ['service: web', 'lisen: 127.0.0.1:0'], '2: lisen: not a setting of this command (did you mean listen?)'],
      ['sidecar', ['service: web', 'weight: 0'], '2: weight: expected a whole number 1..1000'],
      ['sidecar', ['service: Web_1'], '1: service: expected a name'],
      ['sidecar', ['service: web', 'control-plane:', '  - https://127.0.0.1:7400', '  - http://127.0.0.1:7401'], '4: control-plane[1]: expected an https:// URL'],
      ['sidecar', ['service: web', 'upstreams:', '  - service: api', '    adress: 127.0.0.1:1'], '4: upstreams[0].adress: not a setting'],
      ['control-plane', ['listen: 127.0.0.1:7400', 'cert-ttl: forever'], '2: cert-ttl: expected a duration'],
      ['sidecar', ['service: web', 'admin-allow-remote: yes please'], '2: admin-allow-remote: expected true or false'],
      ['sidecar', ['service: web', 'data-dir: {a: 1}'], '2: data-dir: expected a string'],
      ['run', ['service: web', 'app-port: 70000'], '2: app-port: expected a port 1..65535'],
      ['run', ['service: web', 'upstreams: [{service: api, address: here}]'], '2: upstreams[0].address: expected HOST:PORT'],
      ['gateway', ['zone: east', 'listen: [tls://127.0.0.1:0, udp://x:1]'], '2: listen[1]: expected HOST:PORT, tls://HOST:PORT or wss://HOST:PORT[/PATH]'],
    ];
    for (const [command, lines, expected] of cases) {
      const { code, stderr, path } = await refused(command, lines);
      assert.equal(code, 2, stderr);
      assert.ok(stderr.startsWith(`trellis: ${path}:${expected}`), `${lines.join(' / ')}\n${stderr}`);
      assert.ok(stderr.includes('[TRELLIS_ERR_CONFIG_FILE]'), stderr);
    }
    // Not YAML at all: the parser's own message, with the line it stopped at.
    const syntax = await refused('sidecar', ['service: web', 'listen: [unclosed']);
    assert.equal(syntax.code, 2);
    assert.ok(new RegExp(`^trellis: ${syntax.path.replaceAll('/', '\\/')}:[23]: `).test(syntax.stderr), syntax.stderr);
    assert.ok(syntax.stderr.includes('[TRELLIS_ERR_CONFIG_FILE]'), syntax.stderr);
  });

  it('refuses a file that cannot be read', async () => {
    const { code, stderr } = await runTrellis(['sidecar', '--config', join(dir, 'missing.yaml')]);
    assert.equal(code, 2);
    assert.ok(stderr.includes('(ENOENT)') && stderr.includes('[TRELLIS_ERR_CONFIG_FILE]'), stderr);
  });
});
