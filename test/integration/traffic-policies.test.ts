// Outbound traffic settings through real processes: hash policies, a hot key spilling over
// under bounded load, and the idle timeout.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type net from 'node:net';
import { performance } from 'node:perf_hooks';
import { after, before, describe, it } from 'node:test';
import type { TestApp } from '../support/apps.js';
import { connect, startNamedApp } from '../support/apps.js';
import type { ControlPlaneProcess, SidecarProcess } from '../support/mesh.js';
import { createToken, eventually, removeDirs, scrapeMetric, sidecarStatus, startControlPlane, startSidecar } from '../support/mesh.js';

const IDLE_TIMEOUT_MS = 1000;

/** Ends a connection and waits until it is closed both ways (so the client sidecar's stream is done too). */
async function closeGracefully(socket: net.Socket): Promise<void> {
  const closed = once(socket, 'close');
  socket.end();
  socket.resume();
  await closed;
}

/** Connects and reads the app's name line; the connection stays open (the app echoes). */
async function openTo(port: number, source: { localAddress?: string; localPort?: number } = {}): Promise<{ socket: net.Socket; name: string }> {
  const socket = await connect(port, source);
  let text = '';
  while (!text.includes('\n')) {
    const [chunk] = (await once(socket, 'data')) as [Buffer];
    text += chunk.toString();
  }
  return { socket, name: text.trim() };
}

describe('outbound traffic settings', () => {
  let cp: ControlPlaneProcess;
  const apps: TestApp[] = [];
  const apiSidecars: SidecarProcess[] = [];
  let web: SidecarProcess;
  let bySourceIp: number;
  let byFixedKey: number;

  before(async () => {
    cp = await startControlPlane();
    const token = await createToken(cp, 'api');
    const apiByIp = await createToken(cp, 'api-by-ip');
    // The four destination sidecars join at once; web after them.
    await Promise.all(
      ['a', 'b'].map(async (name) => {
        const app = await startNamedApp(`api-${name}`);
        apps.push(app);
        await Promise.all([
          startSidecar({ service: 'api', token, cp, app: app.address }).then((sidecar) => apiSidecars.push(sidecar)),
          startSidecar({ service: 'api-by-ip', token: apiByIp, cp, app: app.address }).then((sidecar) => apiSidecars.push(sidecar)),
        ]);
      }),
    );
    const extra = ['--hash', 'api-by-ip=source-ip', '--hash', 'api=fixed:hot', '--idle-timeout', `${IDLE_TIMEOUT_MS}ms`];
    web = await startSidecar({ service: 'web', token: await createToken(cp, 'web'), cp, upstreams: ['api', 'api-by-ip'], extra });
    byFixedKey = web.upstreams.get('api')?.port ?? 0;
    bySourceIp = web.upstreams.get('api-by-ip')?.port ?? 0;
    await eventually(async () => (await sidecarStatus(web)).upstreams.every((u) => u.endpoints.length === 2), 'web to see both endpoints of each service');
  });

  after(async () => {
    await Promise.all([web?.proc.stop(), ...apiSidecars.map((s) => s.proc.stop())]);
    await cp?.proc.stop();
    await Promise.all(apps.map((app) => app.close()));
    await removeDirs(cp?.dataDir ?? '');
  });

  it('source-ip: every port of one client address reaches the same endpoint', async () => {
    const seen = new Set<string>();
    for (let host = 10; host < 30; host++) {
      const names = new Set<string>();
      for (let i = 0; i < 4; i++) {
        const { socket, name } = await openTo(bySourceIp, { localAddress: `127.0.2.${host}` });
        names.add(name);
        // One at a time: with no other stream open, bounded load leaves the key's owner alone.
        await closeGracefully(socket);
      }
      assert.equal(names.size, 1, `127.0.2.${host} reached ${[...names].join(' and ')}`);
      seen.add([...names][0]!);
    }
    assert.deepEqual(seen, new Set(['api-a', 'api-b']), 'addresses spread over both endpoints');
  });

  /** Waits until web has no stream open to `service`, so that a test starts from no load. */
  async function noLoad(service: string): Promise<void> {
    await eventually(async () => {
      const status = (await (await fetch(`${web.adminUrl}/status`)).json()) as { upstreams: { service: string; load: { activeStreams: number }[] }[] };
      return status.upstreams.find((u) => u.service === service)?.load.every((l) => l.activeStreams === 0) ?? false;
    }, `no open streams to ${service}`);
  }

  it('fixed key: one endpoint while load allows, and a hot key spills over instead of sinking it', async () => {
    const one = await openTo(byFixedKey);
    await closeGracefully(one.socket);
    const held = [];
    for (let i = 0; i < 8; i++) held.push(await openTo(byFixedKey));
    const counts = new Map<string, number>();
    for (const { name } of held) counts.set(name, (counts.get(name) ?? 0) + 1);
    // c = 1.25 over 2 endpoints: the key's owner carries at most ceil(1.25 × 8 / 2) = 5 of 8.
    assert.equal(counts.get(one.name), 5, `the owner carries its bound: ${JSON.stringify([...counts])}`);
    assert.equal(counts.size, 2);
    assert.ok((await scrapeMetric(web, 'trellis_sidecar_bounded_load_skips_total', { upstream: 'api' })) > 0);
    for (const { socket } of held) socket.destroy();
    await noLoad('api');
  });

  it('resets a stream idle for the idle timeout, not one that keeps moving bytes', async () => {
    const resetsBefore = await scrapeMetric(web, 'trellis_sidecar_idle_stream_resets_total');
    const busy = await openTo(byFixedKey);
    const idle = await openTo(byFixedKey);
    const startedMs = performance.now();
    // Not once(): the reset arrives as an 'error' (ECONNRESET) before the 'close'.
    idle.socket.on('error', () => undefined);
    const idleClosed = new Promise<number>((resolve) => idle.socket.once('close', () => resolve(performance.now() - startedMs)));
    // The busy one sends a byte every 100 ms (echoed back) for two idle timeouts.
    while (performance.now() - startedMs < 2 * IDLE_TIMEOUT_MS) {
      busy.socket.write('x');
      await once(busy.socket, 'data');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const idleForMs = await idleClosed;
    assert.ok(idleForMs >= IDLE_TIMEOUT_MS - 20, `reset after ${Math.round(idleForMs)} ms`);
    // Sweeps every quarter of the timeout: reset within the timeout and two sweeps, plus slack.
    assert.ok(idleForMs <= 1.5 * IDLE_TIMEOUT_MS + 200, `reset after ${Math.round(idleForMs)} ms`);
    assert.equal(busy.socket.destroyed, false, 'the busy stream lives on');
    assert.equal(await scrapeMetric(web, 'trellis_sidecar_idle_stream_resets_total'), resetsBefore + 1);
    assert.ok((await scrapeMetric(web, 'trellis_sidecar_stream_errors_total', { code: 'IDLE_TIMEOUT' })) >= 1);
    busy.socket.destroy();
  });
});
