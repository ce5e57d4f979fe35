// Gateways drained under traffic, with real processes in network namespaces: SIGTERM of a
// gateway carrying tunnels (the first hop of zone a's paths, then the last hop of zone b's) loses
// no stream and fails no connection. The tunnels' sidecars hear TUNNEL_DRAIN, move new streams
// to tunnels through the other gateway at once (streams opened during the drain never cross the
// victim), and let open ones finish on the old; the gateway exits 0 once its old tunnels are
// done, well before its drain time runs out.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { TestContext } from 'node:test';
import type { ClientResult, MeshProcess, NsProcess, ServerRecord, StandardClouds } from '../support/clouds.js';
import { cmdlineOf, CLOUDS_SPEC, pollFor, startStandardClouds, untilReachable } from '../support/clouds.js';
import type { Topology, TopologySpec } from '../support/netns.js';
import { createTopology } from '../support/netns.js';

const LONG_STREAMS_PER_CLIENT = 4;
const SHORT_LOOPS_PER_CLIENT = 2;
const LOAD_DURATION_MS = 6_000;
/** Long streams per client opened after the SIGTERM, and how long they run: past the first load's end. */
const LATE_STREAMS_PER_CLIENT = 2;
const LATE_DURATION_MS = 10_000;
/** gb2's --drain-timeout; the other gateways keep the default, 30 s. */
const DRAIN_TIMEOUT_MS = 25_000;
/** A victim that exits before this did so because its tunnels were done, not at its drain deadline. */
const EXIT_BOUND_MS = 20_000;

/** The standard clouds and a second gateway in zone b, so that zone b can drain one. */
const SPEC: TopologySpec = { ...CLOUDS_SPEC, hosts: { ...CLOUDS_SPEC.hosts, gb2: { cloudB: '10.71.2.3', wan: '10.71.100.8' } } };

interface LoadLine {
  event: 'long-started' | 'done' | ClientResult['event'];
}

describe('across clouds: gateways drain on SIGTERM', { timeout: 240_000 }, () => {
  let topology: Topology;
  let mesh: StandardClouds;
  let gb2: MeshProcess;

  before(async () => {
    topology = await createTopology(SPEC);
    try {
      mesh = await startStandardClouds(topology, { withC: false });
      gb2 = await mesh.clouds.startGateway('gb2', { network: 'cloudB', zone: 'b', extra: ['--drain-timeout', `${DRAIN_TIMEOUT_MS / 1000}s`] });
    } catch (error) {
      await mesh?.clouds.stop();
      await topology.destroy();
      throw error;
    }
  });

  after(async () => {
    await mesh?.clouds.stop();
    await topology?.destroy();
  });

  /**
   * Runs load from a1 and a2 to echo-b, SIGTERMs whichever of `candidates` carries more tunnels
   * once every long stream is under way, and checks that nothing was lost.
   */
  async function drainUnderLoad(t: TestContext, candidates: Record<string, MeshProcess>): Promise<void> {
    const { clouds, apps } = mesh;
    await Promise.all([untilReachable(clouds, 'a1', 'echo-b'), untilReachable(clouds, 'a2', 'echo-b')]);
    const loads: NsProcess[] = ['a1', 'a2'].map((host) => clouds.startLoad(host, 'echo-b', LONG_STREAMS_PER_CLIENT, LOAD_DURATION_MS, SHORT_LOOPS_PER_CLIENT));
    await Promise.all(loads.map((load) => load.waitForOutput(new RegExp(`"event":"long-started"[^\\n]*"count":${LONG_STREAMS_PER_CLIENT}\\}`), 20_000)));

    const active: Record<string, number> = {};
    for (const [name, gateway] of Object.entries(candidates)) active[name] = await clouds.metric(gateway, 'trellis_tunnels_active');
    const [victimName] = Object.entries(active).sort((a, b) => b[1] - a[1])[0] as [string, number];
    const victim = candidates[victimName] as MeshProcess;
    t.diagnostic(`tunnels active before the drain: ${JSON.stringify(active)}; SIGTERM to ${victimName}`);
    assert.ok((active[victimName] ?? 0) >= 1, `no tunnel crosses any candidate: ${JSON.stringify(active)}`);
    assert.ok(cmdlineOf(victim.proc.pid).some((arg) => arg.endsWith('bin/trellis.js')), 'the pid to signal is the gateway itself');
    await new Promise((resolve) => setTimeout(resolve, 500));
    const signalledAt = Date.now();
    victim.proc.child.kill('SIGTERM');
    const exit = victim.proc.exited().then((code) => ({ code, at: Date.now() }));
    // Long streams opened once the drain has begun: were they to enter a tunnel through the
    // victim, it could not exit before they end.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const lateLoads: NsProcess[] = ['a1', 'a2'].map((host) => clouds.startLoad(host, 'echo-b', LATE_STREAMS_PER_CLIENT, LATE_DURATION_MS, 0));

    await Promise.all([...loads, ...lateLoads].map((load) => load.waitForOutput(/"event":"done"/, LATE_DURATION_MS + 30_000)));
    const results = loads.flatMap((load) => load.lines<LoadLine>()).filter((line): line is ClientResult => line.event === 'long' || line.event === 'short');
    const longs = results.filter((result) => result.event === 'long');
    const shorts = results.filter((result) => result.event === 'short');
    const counts = (list: ClientResult[]): Record<string, number> => list.reduce<Record<string, number>>((acc, r) => ({ ...acc, [r.outcome]: (acc[r.outcome] ?? 0) + 1 }), {});
    t.diagnostic(`long streams: ${JSON.stringify(counts(longs))}; short connections: ${JSON.stringify(counts(shorts))}`);

    // Every stream is whole: the long ones that crossed the gateway finished on it.
    assert.equal(longs.length, 2 * LONG_STREAMS_PER_CLIENT);
    for (const result of longs) {
      assert.equal(result.outcome, 'ok', `long stream ${result.id}: ${JSON.stringify(result)}`);
      assert.equal(result.receivedSha256, result.sentSha256);
    }
    const serverRecords = (): ServerRecord[] => [apps.b1, apps.b2].flatMap((app) => app.lines<ServerRecord>()).filter((line) => line.event === 'conn');
    await pollFor(() => Promise.resolve(longs.every((long) => serverRecords().some((record) => record.id === long.id)) ? true : undefined), 'the server records of every long stream', 10_000);
    for (const long of longs) {
      const record = serverRecords().find((entry) => entry.id === long.id);
      assert.equal(record?.outcome, 'end', `server side of long stream ${long.id}: ${JSON.stringify(record)}`);
      assert.equal(record.sha256, long.sentSha256);
    }
    // And no connection failed, before, during or after the drain: new ones took the other gateway.
    const failed = shorts.filter((result) => result.outcome !== 'ok');
    assert.deepEqual(failed, [], `short connections failed: ${JSON.stringify(failed.map((r) => ({ outcome: r.outcome, code: r.errorCode, start: r.startedAt - signalledAt })))}`);
    assert.ok(shorts.filter((result) => result.startedAt > signalledAt).length >= 10, 'too few short connections ran during the drain');

    // The streams opened during the drain are whole too, and none crossed the victim: it
    // exited by itself once its old tunnels were done, before they ended.
    const lates = lateLoads.flatMap((load) => load.lines<LoadLine>()).filter((line): line is ClientResult => line.event === 'long');
    assert.equal(lates.length, 2 * LATE_STREAMS_PER_CLIENT);
    for (const result of lates) assert.equal(result.outcome, 'ok', `stream opened during the drain ${result.id}: ${JSON.stringify(result)}`);
    const { code, at } = await exit;
    const firstLateEnd = Math.min(...lates.map((result) => result.endedAt));
    t.diagnostic(`${victimName} exited ${String(code)} ${at - signalledAt} ms after SIGTERM; the first stream opened during the drain ended at ${firstLateEnd - signalledAt} ms`);
    assert.equal(code, 0);
    assert.ok(at < firstLateEnd, `${victimName} exited only after a stream opened during its drain ended: that stream crossed it`);
    assert.ok(at - signalledAt < EXIT_BOUND_MS, `${victimName} exited only after ${at - signalledAt} ms`);
  }

  it('SIGTERM of a first-hop gateway (zone a): no stream reset, no connection failed, exit 0 when its tunnels are done', { timeout: 100_000 }, async (t) => {
    await drainUnderLoad(t, { ga1: mesh.gateways.ga1, ga2: mesh.gateways.ga2 });
  });

  it('SIGTERM of a last-hop gateway (zone b): TUNNEL_DRAIN crosses the first hop to the source; nothing lost', { timeout: 100_000 }, async (t) => {
    await pollFor(async () => ((await mesh.clouds.status(gb2))['peerGateways'] as string[]).length >= 1 ? true : undefined, 'gb2 linked to zone a', 20_000);
    await drainUnderLoad(t, { gb: mesh.gateways.gb, gb2 });
  });
});
