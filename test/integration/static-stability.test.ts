// Static stability through real processes: the control plane is killed -9 mid-traffic; open
// streams finish byte-exact and new connections between known endpoints work; a client and a
// server sidecar restarted meanwhile come back from their on-disk cache and serve; when the
// control plane is back they reconnect, register and take new config (a policy change) without
// anyone's help. A corrupt cache is refused with its code and the sidecar starts from the
// control plane instead. Across zones, both gateways restarted while it is down serve from
// their cache too.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { connectAdmin } from '../../cli/admin-client.js';
import { ConfigCache, ConfigCacheErrorCode } from '../../sidecar/config/config-cache.js';
import { MeshConfig } from '../../sidecar/config/mesh-config.js';
import type { TestApp } from '../support/apps.js';
import { connect, readAll, sha256, startSinkSourceApp } from '../support/apps.js';
import type { ControlPlaneProcess, SidecarProcess } from '../support/mesh.js';
import { createGatewayToken, createToken, eventually, removeDirs, scrapeMetric, setPolicy, startControlPlane, startSidecar } from '../support/mesh.js';
import { freeLoopbackPort } from '../support/ports.js';
import type { TrellisProcess } from '../support/processes.js';
import { spawnTrellis } from '../support/processes.js';

/** What the app sends on every connection before it answers with the sha256 of what it got. */
const APP_BYTES = randomBytes(2 * 1024 * 1024);
const CHUNK_BYTES = 64 * 1024;

interface Status {
  sidecarId: string;
  controlPlaneConnected: boolean;
  configVersion: number;
  configFromCache: boolean;
  outboundLinks: number;
  upstreams: { service: string; endpoints: { sidecarId: string }[] }[];
}

async function status(sidecar: SidecarProcess): Promise<Status> {
  return (await (await fetch(`${sidecar.adminUrl}/status`)).json()) as Status;
}

async function write(socket: net.Socket, bytes: Buffer): Promise<void> {
  for (let offset = 0; offset < bytes.length; offset += CHUNK_BYTES) {
    if (!socket.write(bytes.subarray(offset, offset + CHUNK_BYTES))) await once(socket, 'drain');
  }
}

/**
 * Sends `upload` through the client sidecar's upstream port, running `midway` after the first
 * half; asserts that both directions arrived byte-exact.
 */
async function transfer(port: number, upload: Buffer, midway: () => Promise<void> = () => Promise.resolve()): Promise<void> {
  const socket = await connect(port);
  const reply = readAll(socket);
  const half = Math.floor(upload.length / 2);
  await write(socket, upload.subarray(0, half));
  await midway();
  await write(socket, upload.subarray(half));
  socket.end();
  const received = await reply;
  assert.equal(received.length, APP_BYTES.length + 64, 'the app data and the digest');
  assert.equal(sha256(received.subarray(0, APP_BYTES.length)), sha256(APP_BYTES), 'app → client byte-exact');
  assert.equal(received.subarray(APP_BYTES.length).toString(), sha256(upload), 'client → app byte-exact');
}

/** Codes in the JSON log records a process wrote on stderr. */
function loggedCodes(stderr: string): string[] {
  const codes: string[] = [];
  for (const line of stderr.split('\n')) {
    if (!line.startsWith('{')) continue;
    const record = JSON.parse(line) as { code?: unknown };
    if (typeof record.code === 'string') codes.push(record.code);
  }
  return codes;
}

/** The version in a sidecar's cache file; `undefined` while it is missing or refused. */
async function cachedVersion(dataDir: string): Promise<number | undefined> {
  const cache = new ConfigCache({ path: join(dataDir, 'config.json'), source: new MeshConfig(), logger: pino({ level: 'silent' }) });
  return (await cache.load().catch(() => undefined))?.version;
}

describe('static stability', () => {
  let cp: ControlPlaneProcess;
  let app: TestApp;
  let server: SidecarProcess;
  let client: SidecarProcess;
  let serverListen: string;
  let serverDir: string;
  let clientDir: string;
  let serverId: string;
  let clientId: string;
  const clientPort = (): number => client.upstreams.get('blob')?.port ?? 0;

  before(async () => {
    [cp, app] = await Promise.all([startControlPlane(), startSinkSourceApp(APP_BYTES)]);
    serverDir = await mkdtemp(join(tmpdir(), 'trellis-stable-server-'));
    clientDir = await mkdtemp(join(tmpdir(), 'trellis-stable-client-'));
    // The server comes back on the address the others hold in their cache.
    serverListen = `127.0.0.1:${await freeLoopbackPort()}`;
    server = await startSidecar({ service: 'blob', token: await createToken(cp, 'blob'), cp, app: app.address, listen: serverListen, dataDir: serverDir });
    client = await startSidecar({ service: 'web', token: await createToken(cp, 'web'), cp, upstreams: ['blob'], dataDir: clientDir });
    await setPolicy(cp, ['deny', '--from', 'intruder', '--to', 'blob']);
    serverId = (await status(server)).sidecarId;
    clientId = (await status(client)).sidecarId;
    // Both caches hold the mesh as it is now: the client knows the server's endpoint.
    await eventually(async () => (await status(client)).upstreams[0]?.endpoints.length === 1, 'the client to see the server');
    await eventually(async () => {
      const [clientNow, serverNow] = await Promise.all([status(client), status(server)]);
      return (await cachedVersion(clientDir)) === clientNow.configVersion && (await cachedVersion(serverDir)) === serverNow.configVersion;
    }, 'both caches to hold the current version');
  });

  after(async () => {
    await Promise.all([client?.proc.stop('SIGKILL'), server?.proc.stop('SIGKILL')]);
    await cp?.proc.stop('SIGKILL');
    await app?.close();
    await removeDirs(cp?.dataDir ?? '', serverDir ?? '', clientDir ?? '');
  });

  it('keeps open streams byte-exact across a kill -9 of the control plane, and new connections work', async () => {
    const uploads = [randomBytes(8 * 1024 * 1024), randomBytes(8 * 1024 * 1024)];
    let killed: Promise<void> | undefined;
    const killOnce = (): Promise<void> =>
      (killed ??= (async () => {
        await cp.proc.stop('SIGKILL');
        await eventually(async () => !(await status(client)).controlPlaneConnected && !(await status(server)).controlPlaneConnected, 'both sidecars to notice');
      })());
    await Promise.all(uploads.map((upload) => transfer(clientPort(), upload, killOnce)));

    for (let i = 0; i < 5; i += 1) await transfer(clientPort(), randomBytes(256 * 1024));
  });

  it('restarts the client sidecar while the control plane is down: it serves from its cache', async () => {
    const before = await status(client);
    await client.proc.stop('SIGKILL');
    // No token: identity, trust bundle and config all come from the data directory.
    client = await startSidecar({ service: 'web', cp, upstreams: ['blob'], dataDir: clientDir });
    const after = await status(client);
    assert.equal(after.sidecarId, clientId);
    assert.equal(after.controlPlaneConnected, false);
    assert.equal(after.configFromCache, true);
    assert.equal(after.configVersion, before.configVersion);
    assert.deepEqual(after.upstreams[0]?.endpoints.map((e) => e.sidecarId), [serverId]);
    for (let i = 0; i < 3; i += 1) await transfer(clientPort(), randomBytes(512 * 1024));
  });

  it('restarts the server sidecar while the control plane is down: it serves from its cache', async () => {
    const before = await status(server);
    await transfer(clientPort(), randomBytes(64 * 1024));
    await server.proc.stop('SIGKILL');
    await eventually(async () => (await status(client)).outboundLinks === 0, 'the client to drop its link to the dead server');
    server = await startSidecar({ service: 'blob', cp, app: app.address, listen: serverListen, dataDir: serverDir });
    const after = await status(server);
    assert.equal(after.sidecarId, serverId);
    assert.equal(after.controlPlaneConnected, false);
    assert.equal(after.configFromCache, true);
    assert.equal(after.configVersion, before.configVersion);
    for (let i = 0; i < 3; i += 1) await transfer(clientPort(), randomBytes(512 * 1024));
  });

  it('catches up when the control plane is back: reconnects, registers, and takes a policy change', async () => {
    cp = await startControlPlane({ dataDir: cp.dataDir, listen: new URL(cp.url).host });
    await eventually(async () => {
      const [clientNow, serverNow] = await Promise.all([status(client), status(server)]);
      return clientNow.controlPlaneConnected && serverNow.controlPlaneConnected && !clientNow.configFromCache && !serverNow.configFromCache;
    }, 'both sidecars to reconnect and take a snapshot', 30_000);
    const admin = await connectAdmin(cp.url, cp.adminTokenFile);
    const registered = (await admin.call('GET', '/v1/services')) as { services: Record<string, { sidecarId: string; connected: boolean }[]> };
    assert.deepEqual(registered.services['blob']?.map((e) => [e.sidecarId, e.connected]), [[serverId, true]]);
    assert.deepEqual(registered.services['web']?.map((e) => [e.sidecarId, e.connected]), [[clientId, true]]);
    await transfer(clientPort(), randomBytes(256 * 1024));

    const deniedBefore = await scrapeMetric(server, 'trellis_sidecar_policy_denials_total', { source: 'web' });
    const serverVersion = (await status(server)).configVersion;
    await setPolicy(cp, ['deny', '--from', 'web', '--to', 'blob']);
    await eventually(async () => (await status(server)).configVersion > serverVersion, 'the policy to reach the server sidecar');
    const socket = await connect(clientPort());
    const reply = readAll(socket);
    socket.end('refused?');
    // The destination resets the stream, and the client sidecar the app's connection.
    await assert.rejects(reply, { code: 'ECONNRESET' });
    await eventually(async () => (await scrapeMetric(server, 'trellis_sidecar_policy_denials_total', { source: 'web' })) === deniedBefore + 1, 'the denial to be counted');
    assert.equal(await scrapeMetric(server, 'trellis_sidecar_stream_errors_total', { code: 'POLICY_DENIED' }), 1);
    // The cache follows: a restart now would start with the policy in force.
    await eventually(async () => (await readFile(join(serverDir, 'config.json'), 'utf8')).includes('policy/rule/web/blob'), 'the server cache to hold the new policy');
  });

  it('refuses a corrupt cache with its code and starts from the control plane', async () => {
    await client.proc.stop('SIGKILL');
    await writeFile(join(clientDir, 'config.json'), '{"format":1,"version":12,"entr');
    client = await startSidecar({ service: 'web', cp, upstreams: ['blob'], dataDir: clientDir });
    assert.ok(loggedCodes(client.proc.stderr()).includes(ConfigCacheErrorCode.CORRUPT), client.proc.stderr());
    const now = await status(client);
    assert.equal(now.configFromCache, false);
    assert.equal(now.sidecarId, clientId);
    assert.deepEqual(now.upstreams[0]?.endpoints.map((e) => e.sidecarId), [serverId]);
    await eventually(async () => (await cachedVersion(clientDir)) === (await status(client)).configVersion, 'the cache to be rewritten from the control plane');
  });
});

interface GatewayProcess {
  proc: TrellisProcess;
  adminUrl: string;
}

interface GatewayStatus {
  controlPlaneConnected: boolean;
  configVersion: number;
  configFromCache: boolean;
  peerGateways: string[];
}

async function gatewayStatus(gateway: GatewayProcess): Promise<GatewayStatus> {
  return (await (await fetch(`${gateway.adminUrl}/status`)).json()) as GatewayStatus;
}

/** A gateway on a fixed port with a data directory; without `token` it starts from the directory. */
async function startGateway(cp: ControlPlaneProcess, options: { zone: string; name: string; listen: string; dataDir: string; token?: string }): Promise<GatewayProcess> {
  const args = ['gateway', '--zone', options.zone, '--name', options.name, '--control-plane', cp.url, '--listen', `tls://${options.listen}`, '--admin', '127.0.0.1:0', '--data-dir', options.dataDir];
  if (options.token !== undefined) args.push('--token', options.token);
  const proc = spawnTrellis(args);
  await proc.waitForOutput(/ready: links on/);
  const [, adminUrl] = await proc.waitForOutput(/admin on (http:\/\/\S+)/);
  return { proc, adminUrl: adminUrl ?? '' };
}

describe('static stability across zones', () => {
  let cp: ControlPlaneProcess;
  let app: TestApp;
  let server: SidecarProcess;
  let client: SidecarProcess;
  const gateways = new Map<string, GatewayProcess>();
  const gatewaySetup = new Map<string, { zone: string; name: string; listen: string; dataDir: string }>();
  const dirs: string[] = [];
  const clientPort = (): number => client.upstreams.get('blob')?.port ?? 0;
  const linked = async (): Promise<boolean> => (await gatewayStatus(gateways.get('a/ga')!)).peerGateways.includes('c/gc') && (await gatewayStatus(gateways.get('c/gc')!)).peerGateways.includes('a/ga');

  before(async () => {
    [cp, app] = await Promise.all([startControlPlane(), startSinkSourceApp(APP_BYTES)]);
    // Both gateways at once.
    await Promise.all(
      ([['a', 'ga'], ['c', 'gc']] as const).map(async ([zone, name]) => {
        const dataDir = await mkdtemp(join(tmpdir(), `trellis-stable-${name}-`));
        dirs.push(dataDir);
        const setup = { zone, name, listen: `127.0.0.1:${await freeLoopbackPort()}`, dataDir };
        gatewaySetup.set(`${zone}/${name}`, setup);
        gateways.set(`${zone}/${name}`, await startGateway(cp, { ...setup, token: await createGatewayToken(cp, zone, name) }));
      }),
    );
    server = await startSidecar({ service: 'blob', token: await createToken(cp, 'blob'), cp, app: app.address, extra: ['--zone', 'c'] });
    client = await startSidecar({ service: 'web', token: await createToken(cp, 'web'), cp, upstreams: ['blob'], extra: ['--zone', 'a'] });
    await eventually(linked, 'the gateways to link');
    await transfer(clientPort(), randomBytes(256 * 1024));
    // The gateways' caches hold the zone graph as it is now.
    await eventually(async () => {
      for (const [key, gateway] of gateways) if ((await cachedVersion(gatewaySetup.get(key)!.dataDir)) !== (await gatewayStatus(gateway)).configVersion) return false;
      return true;
    }, 'both gateway caches to hold the current version');
  });

  after(async () => {
    await Promise.all([client?.proc.stop('SIGKILL'), server?.proc.stop('SIGKILL'), ...[...gateways.values()].map((g) => g.proc.stop('SIGKILL'))]);
    await cp?.proc.stop('SIGKILL');
    await app?.close();
    await removeDirs(cp?.dataDir ?? '', ...dirs);
  });

  it('restarts both gateways while the control plane is down: they serve from their cache, and catch up after', async () => {
    await cp.proc.stop('SIGKILL');
    for (const key of ['c/gc', 'a/ga']) {
      const before = await gatewayStatus(gateways.get(key)!);
      await gateways.get(key)!.proc.stop('SIGKILL');
      const restarted = await startGateway(cp, gatewaySetup.get(key)!);
      gateways.set(key, restarted);
      const after = await gatewayStatus(restarted);
      assert.equal(after.controlPlaneConnected, false, key);
      assert.equal(after.configFromCache, true, key);
      assert.equal(after.configVersion, before.configVersion, key);
      await eventually(linked, `the gateways to link again after ${key} restarted`);
      for (let i = 0; i < 3; i += 1) await transfer(clientPort(), randomBytes(512 * 1024));
    }

    cp = await startControlPlane({ dataDir: cp.dataDir, listen: new URL(cp.url).host });
    await eventually(async () => {
      for (const gateway of gateways.values()) {
        const now = await gatewayStatus(gateway);
        if (!now.controlPlaneConnected || now.configFromCache) return false;
      }
      return true;
    }, 'both gateways to reconnect and take a snapshot', 30_000);
    await transfer(clientPort(), randomBytes(256 * 1024));
  });
});
