/**
 * Gateways on loopback, as real processes: a tunnel from zone a to zone c through one gateway
 * of each, carrying many connections byte-exact; and every refusal a gateway makes of a tunnel
 * it must not relay, each with its wire code and its counter.
 */

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ErrorCode } from '../../proto/errors.js';
import { parseJoinToken } from '../../proto/tokens.js';
import { Credentials } from '../../sidecar/identity/credentials.js';
import { SidecarStateDir } from '../../sidecar/identity/state-dir.js';
import { joinMesh } from '../../sidecar/join.js';
import { TlsLinkTransport } from '../../sidecar/links/tls-transport.js';
import { next } from '../mux/helpers.js';
import { Session } from '../../sidecar/mux/index.js';
import type { TestApp } from '../support/apps.js';
import { connect, readAll, sha256, startEchoApp } from '../support/apps.js';
import type { ControlPlaneProcess, GatewayProcess, SidecarProcess } from '../support/mesh.js';
import { createToken, eventually, removeDirs, scrapeMetric, startControlPlane, startGateway, startSidecar } from '../support/mesh.js';

/** Echoes `bytes` through `port` and returns what came back. */
async function echoThrough(port: number, bytes: Buffer): Promise<Buffer> {
  const socket = await connect(port);
  const received = readAll(socket);
  socket.end(bytes);
  return received;
}

describe('gateways between two zones (loopback)', () => {
  let cp: ControlPlaneProcess;
  let ga: GatewayProcess;
  let gc: GatewayProcess;
  let app: TestApp;
  let echo: SidecarProcess;
  let client: SidecarProcess;
  let clientToken: string;

  before(async () => {
    cp = await startControlPlane();
    ga = await startGateway(cp, 'a', 'ga');
    gc = await startGateway(cp, 'c', 'gc');
    app = await startEchoApp();
    echo = await startSidecar({ service: 'echo', token: await createToken(cp, 'echo'), cp, app: app.address, extra: ['--zone', 'c'] });
    clientToken = await createToken(cp, 'client');
    client = await startSidecar({ service: 'client', token: clientToken, cp, upstreams: ['echo'], extra: ['--zone', 'a'] });
    // The gateways find each other and report their link; the route follows.
    await eventually(async () => ((await (await fetch(`${client.adminUrl}/status`)).json()) as { configVersion: number }).configVersion > 0 && (await scrapeMetric(ga, 'trellis_sidecar_links_active')) >= 1, 'the gateway link');
  });

  after(async () => {
    await Promise.all([client, echo].map((sidecar) => sidecar?.proc.stop()));
    await Promise.all([ga, gc].map((gateway) => gateway?.proc.stop()));
    await app?.close();
    await cp?.proc.stop();
    await removeDirs(cp?.dataDir ?? '');
  });

  it('carries 20 concurrent connections byte-exact through one tunnel', async () => {
    const port = client.upstreams.get('echo')?.port ?? 0;
    const payloads = Array.from({ length: 20 }, (_, i) => randomBytes((i + 1) * 256 * 1024));
    const echoed = await Promise.all(payloads.map((payload) => echoThrough(port, payload)));
    echoed.forEach((bytes, i) => assert.equal(sha256(bytes), sha256(payloads[i] as Buffer)));
    // One tunnel for the sidecar pair: each gateway relays one tunnel stream, not one per connection.
    assert.equal(await scrapeMetric(ga, 'trellis_tunnels_opened_total', { role: 'relay' }), 1);
    assert.equal(await scrapeMetric(gc, 'trellis_tunnels_opened_total', { role: 'relay' }), 1);
  });

  it('refuses tunnels off the published routes, from the wrong hop or to unknown targets, and counts each', async () => {
    const joined = await joinMesh([cp.url], parseJoinToken(clientToken), clientToken, 'client');
    const transport = new TlsLinkTransport(new Credentials(joined));
    const link = await transport.dial({ address: ga.url, peer: { kind: 'gateway', zone: 'a', name: 'ga' } });
    const session = new Session(link.socket, { role: 'dialer' });
    await session.whenReady();
    const echoId = ((await (await fetch(`${echo.adminUrl}/status`)).json()) as { sidecarId: string }).sidecarId;
    const refusals: [path: string[], hop: number, target: string, code: number, reason: string][] = [
      [['a/ga', 'z/nope'], 0, echoId, ErrorCode.ROUTE_REFUSED, 'not-published'],
      [['c/gc', 'a/ga'], 0, echoId, ErrorCode.ROUTE_REFUSED, 'wrong-hop'],
      [['c/gc', 'a/ga'], 1, echoId, ErrorCode.ROUTE_REFUSED, 'wrong-previous-hop'],
      [['a/ga', 'c/gc'], 0, 'sc-000000000000', ErrorCode.ROUTE_REFUSED, 'unknown-target'],
    ];
    for (const [path, hop, target, code, reason] of refusals) {
      const before = await scrapeMetric(ga, 'trellis_tunnel_refusals_total', { reason });
      const [resetCode] = await next<[number]>(session.openTunnel(path, hop, target), 'reset');
      assert.equal(resetCode, code, reason);
      assert.equal(await scrapeMetric(ga, 'trellis_tunnel_refusals_total', { reason }), before + 1, reason);
    }
    // A sidecar registered in zone c may not use zone a's gateway as its first hop.
    const intruderDir = await mkdtemp(join(tmpdir(), 'trellis-intruder-'));
    const intruder = await startSidecar({ service: 'intruder', token: await createToken(cp, 'intruder'), cp, dataDir: intruderDir, extra: ['--zone', 'c'] });
    const intruderIdentity = await new SidecarStateDir(intruderDir).loadCredentials();
    assert.ok(intruderIdentity !== undefined);
    await eventually(async () => ((await (await fetch(`${ga.adminUrl}/status`)).json()) as { configVersion: number }).configVersion >= ((await (await fetch(`${intruder.adminUrl}/status`)).json()) as { configVersion: number }).configVersion, 'the gateway to learn of the intruder');
    const intruderLink = await new TlsLinkTransport(new Credentials(intruderIdentity)).dial({ address: ga.url, peer: { kind: 'gateway', zone: 'a', name: 'ga' } });
    const intruderSession = new Session(intruderLink.socket, { role: 'dialer' });
    await intruderSession.whenReady();
    const [wrongZone] = await next<[number]>(intruderSession.openTunnel(['a/ga', 'c/gc'], 0, echoId), 'reset');
    assert.equal(wrongZone, ErrorCode.ROUTE_REFUSED);
    assert.equal(await scrapeMetric(ga, 'trellis_tunnel_refusals_total', { reason: 'wrong-zone' }), 1);
    intruderSession.close();
    await intruder.proc.stop();
    await removeDirs(intruderDir);

    // A gateway serves no service: a plain stream is refused too.
    const [plainCode] = await next<[number]>(session.openStream('echo'), 'reset');
    assert.equal(plainCode, ErrorCode.UNKNOWN_SERVICE);
    assert.equal(await scrapeMetric(ga, 'trellis_tunnel_refusals_total', { reason: 'plain-stream' }), 1);
    session.close();
  });

  it('refuses at once with NO_ROUTE when the far zone\'s gateway is gone', async () => {
    // The client's links add up across its two sets: the link to its gateway and the tunnel inside it.
    assert.equal(await scrapeMetric(client, 'trellis_sidecar_links_active'), 2);
    await gc.proc.stop('SIGKILL');
    const port = client.upstreams.get('echo')?.port ?? 0;
    // The tunnel over the dead gateway fails; a new connection must be refused fast, not hang.
    await eventually(async () => (await scrapeMetric(ga, 'trellis_sidecar_links_active')) === 0, 'the gateway link to go down', 5000);
    // Wait for the client to see its tunnel end too: a connection that raced the tunnel's end
    // would be reset with the tunnel (LINK_CLOSED) rather than refused for want of a route.
    await eventually(async () => (await scrapeMetric(client, 'trellis_sidecar_links_active')) === 1, 'the tunnel to go down', 5000);
    const started = Date.now();
    const socket = await connect(port);
    socket.end('hello');
    const outcome = await Promise.race([readAll(socket).then((bytes) => `echoed ${bytes.length}`, (error: NodeJS.ErrnoException) => error.code ?? 'error'), next(socket, 'close').then(() => 'closed')]);
    assert.notEqual(outcome, 'echoed 5');
    assert.ok(Date.now() - started < 2000, `refused after ${Date.now() - started} ms`);
    assert.ok((await scrapeMetric(client, 'trellis_sidecar_stream_errors_total', { code: 'NO_ROUTE' })) >= 1);
  });
});

describe('two linked gateways stopped at once', () => {
  let cp: ControlPlaneProcess;
  after(async () => {
    await cp?.proc.stop();
    await removeDirs(cp?.dataDir ?? '');
  });

  it('both exit 0: neither waits for the link the other accepted', async () => {
    cp = await startControlPlane();
    const ga = await startGateway(cp, 'a', 'ga');
    const gc = await startGateway(cp, 'c', 'gc');
    await eventually(async () => (await scrapeMetric(ga, 'trellis_sidecar_links_active')) >= 1 && (await scrapeMetric(gc, 'trellis_sidecar_links_active')) >= 1, 'the gateway link');
    const timer = setTimeout(() => [ga, gc].forEach((gateway) => gateway.proc.child.kill('SIGKILL')), 20_000);
    const codes = await Promise.all([ga.proc.stop(), gc.proc.stop()]);
    clearTimeout(timer);
    assert.deepEqual(codes, [0, 0]);
  });
});
