// What can fail at start fails before joining, naming its flag: ports taken or not local, a
// data directory that cannot be one, an admin endpoint other hosts could reach, a wildcard
// listener with nothing to advertise. No failed start costs a certificate.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { ControlPlaneProcess, SidecarProcess } from '../support/mesh.js';
import { createToken, eventually, removeDirs, sidecarStatus, startControlPlane, startSidecar } from '../support/mesh.js';
import { freeLoopbackPort } from '../support/ports.js';
import { runTrellis } from '../support/processes.js';

/** The control plane's join counter, by result, from its /metrics (over TLS, trusting its CA). */
function joinsCounted(cp: ControlPlaneProcess): Promise<number> {
  const ca = readFileSync(join(cp.dataDir, 'ca.crt'));
  return new Promise((resolve, reject) => {
    https
      .get(`${cp.url}/metrics`, { ca }, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
        res.on('end', () => {
          const samples = body.split('\n').filter((line) => line.startsWith('trellis_cp_joins_total{'));
          resolve(samples.reduce((sum, line) => sum + Number(line.split(' ').at(-1)), 0));
        });
      })
      .on('error', reject);
  });
}

describe('trellis sidecar checks its flags before joining', () => {
  let cp: ControlPlaneProcess;
  let token: string;
  let taken: net.Server;
  let takenPort: number;
  const sidecars: SidecarProcess[] = [];
  before(async () => {
    cp = await startControlPlane();
    token = await createToken(cp, 'api');
    taken = net.createServer().listen(0, '127.0.0.1');
    await new Promise((resolve) => taken.once('listening', resolve));
    takenPort = (taken.address() as net.AddressInfo).port;
  });
  after(async () => {
    for (const sidecar of sidecars) await sidecar.proc.stop();
    taken?.close();
    await cp?.proc.stop();
    await removeDirs(cp?.dataDir ?? '');
  });

  const sidecar = (...flags: string[]) => runTrellis(['sidecar', '--service', 'api', '--token', token, '--control-plane', cp.url, ...flags]);

  it('names the flag whose port is taken, for every listener, and joins nothing', async () => {
    const busy = `127.0.0.1:${takenPort}`;
    const cases: [string, string[]][] = [
      ['--listen', ['--listen', busy]],
      ['--admin', ['--listen', '127.0.0.1:0', '--admin', busy]],
      ['--proxy', ['--listen', '127.0.0.1:0', '--proxy', busy]],
      ['--upstream db', ['--listen', '127.0.0.1:0', '--upstream', `db=${busy}`]],
    ];
    for (const [flag, flags] of cases) {
      const { code, stderr } = await sidecar(...flags);
      assert.equal(code, 1, stderr);
      assert.ok(stderr.startsWith(`trellis: ${flag} ${busy} `), stderr);
      assert.ok(stderr.includes('(EADDRINUSE) [TRELLIS_ERR_ADDRESS_UNAVAILABLE]'), stderr);
    }
    assert.equal(await joinsCounted(cp), 0);
  });

  it('refuses one port given to two flags, naming the second', async () => {
    const port = await freeLoopbackPort();
    const { code, stderr } = await sidecar('--listen', `127.0.0.1:${port}`, '--admin', `127.0.0.1:${port}`);
    assert.equal(code, 1);
    assert.ok(stderr.startsWith(`trellis: --admin 127.0.0.1:${port} `), stderr);
    assert.ok(stderr.includes('[TRELLIS_ERR_ADDRESS_UNAVAILABLE]'), stderr);
  });

  it('names the flag of an address that is not this machine\'s (EADDRNOTAVAIL)', async () => {
    // 192.0.2.0/24 is TEST-NET-1: never assigned to a host.
    const { code, stderr } = await sidecar('--listen', '192.0.2.77:7000');
    assert.equal(code, 1);
    assert.ok(stderr.startsWith('trellis: --listen 192.0.2.77:7000 '), stderr);
    assert.ok(stderr.includes('(EADDRNOTAVAIL) [TRELLIS_ERR_ADDRESS_UNAVAILABLE]'), stderr);
  });

  it('names --data-dir when it cannot be a directory (ENOTDIR)', async () => {
    const file = join(cp.dataDir, 'a-file');
    writeFileSync(file, 'not a directory');
    const { code, stderr } = await sidecar('--listen', '127.0.0.1:0', '--data-dir', join(file, 'state'));
    assert.equal(code, 1);
    assert.ok(stderr.startsWith('trellis: --data-dir '), stderr);
    assert.ok(stderr.includes('(ENOTDIR) [TRELLIS_ERR_DATA_DIR]'), stderr);
    assert.equal(await joinsCounted(cp), 0);
  });

  it('refuses a non-loopback --admin unless --admin-allow-remote says so', async () => {
    const refused = await sidecar('--listen', '127.0.0.1:0', '--admin', '0.0.0.0:0');
    assert.equal(refused.code, 2);
    assert.ok(refused.stderr.includes('--admin-allow-remote') && refused.stderr.includes('[TRELLIS_ERR_USAGE]'), refused.stderr);
    const allowed = await startSidecar({ service: 'api', token, cp, extra: ['--admin', '0.0.0.0:0', '--admin-allow-remote'] });
    sidecars.push(allowed);
    // --admin is given twice (the helper's loopback one, then 0.0.0.0): the last wins, as with any flag.
    assert.match(allowed.adminUrl, /^http:\/\/0\.0\.0\.0:\d+$/);
  });

  it('requires --advertise for a wildcard --listen, and registers the advertised address', async () => {
    const refused = await sidecar('--listen', '0.0.0.0:0');
    assert.equal(refused.code, 2);
    assert.ok(refused.stderr.includes('--advertise') && refused.stderr.includes('[TRELLIS_ERR_USAGE]'), refused.stderr);
    const wildcardAdvertise = await sidecar('--listen', '127.0.0.1:0', '--advertise', '0.0.0.0:7000');
    assert.equal(wildcardAdvertise.code, 2);
    // A gateway registers its listen URLs when it advertises none: the same rule holds.
    const gatewayToken = await runTrellis(['token', 'create', '--gateway', 'ga', '--zone', 'a', '--control-plane', cp.url, '--admin-token-file', cp.adminTokenFile]);
    assert.equal(gatewayToken.code, 0, gatewayToken.stderr);
    const gateway = (...flags: string[]) => runTrellis(['gateway', '--zone', 'a', '--token', gatewayToken.stdout.trim(), '--control-plane', cp.url, ...flags]);
    for (const flags of [['--listen', 'tls://0.0.0.0:0'], ['--listen', 'tls://127.0.0.1:0', '--advertise', 'tls://0.0.0.0:7600']]) {
      const refusedGateway = await gateway(...flags);
      assert.equal(refusedGateway.code, 2, flags.join(' '));
      assert.ok(refusedGateway.stderr.includes('[TRELLIS_ERR_USAGE]') && refusedGateway.stderr.includes('--advertise'), refusedGateway.stderr);
    }

    const port = await freeLoopbackPort();
    const api = await startSidecar({ service: 'api', token, cp, extra: ['--listen', `0.0.0.0:${port}`, '--advertise', `127.0.0.1:${port}`] });
    sidecars.push(api);
    const web = await startSidecar({ service: 'web', token: await createToken(cp, 'web'), cp, upstreams: ['api'] });
    sidecars.push(web);
    await eventually(async () => {
      const endpoints = (await sidecarStatus(web)).upstreams[0]?.endpoints as { address?: string }[] | undefined;
      return endpoints?.some((endpoint) => endpoint.address === `127.0.0.1:${port}`) === true;
    }, 'the advertised address in web\'s view of api');
    const all = (await sidecarStatus(web)).upstreams[0]?.endpoints as { address?: string }[];
    assert.ok(all.every((endpoint) => !endpoint.address?.startsWith('0.0.0.0')), JSON.stringify(all));
  });
});
