// Gateways failing under traffic, with real processes in network namespaces: SIGKILL of one of
// zone a's two gateways resets exactly the streams that crossed it, on both ends, and new
// connections stop failing within a second; once zone b has lost its only gateway, a new
// connection to it is refused at once rather than left hanging.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ClientResult, MeshProcess, NsProcess, ServerRecord, StandardClouds } from '../support/clouds.js';
import { cmdlineOf, CLOUDS_SPEC, pollFor, startStandardClouds, sumMetric, untilReachable } from '../support/clouds.js';
import type { Topology } from '../support/netns.js';
import { createTopology } from '../support/netns.js';

const LONG_STREAMS_PER_CLIENT = 4;
const SHORT_LOOPS_PER_CLIENT = 2;
const LOAD_DURATION_MS = 7_000;
/** How long after the kill a new connection may still fail. */
const RECOVERY_BOUND_MS = 1_000;
/** How fast a connection to a zone without gateways must be refused. */
const REFUSAL_BOUND_MS = 2_000;

interface LoadLine {
  event: 'long-started' | 'done' | ClientResult['event'];
}

describe('across clouds: gateway failures', { timeout: 180_000 }, () => {
  let topology: Topology;
  let mesh: StandardClouds;

  before(async () => {
    topology = await createTopology(CLOUDS_SPEC);
    try {
      mesh = await startStandardClouds(topology, { withC: false });
    } catch (error) {
      await topology.destroy();
      throw error;
    }
  });

  after(async () => {
    await mesh?.clouds.stop();
    await topology?.destroy();
  });

  it('SIGKILL of a gateway resets the streams that crossed it on both ends; new connections recover within 1 s', { timeout: 90_000 }, async (t) => {
    const { clouds, gateways, apps } = mesh;
    await Promise.all([untilReachable(clouds, 'a1', 'echo-b'), untilReachable(clouds, 'a2', 'echo-b')]);
    // Both of zone a's gateways are usable before the kill: every pair of sidecars picks one.
    const loads: NsProcess[] = ['a1', 'a2'].map((host) => clouds.startLoad(host, 'echo-b', LONG_STREAMS_PER_CLIENT, LOAD_DURATION_MS, SHORT_LOOPS_PER_CLIENT));
    await Promise.all(loads.map((load) => load.waitForOutput(new RegExp(`"event":"long-started"[^\\n]*"count":${LONG_STREAMS_PER_CLIENT}\\}`), 20_000)));

    // The victim is the gateway carrying more tunnels now (each tunnel carries all streams of one sidecar pair).
    const active = { ga1: await clouds.metric(gateways.ga1, 'trellis_tunnels_active'), ga2: await clouds.metric(gateways.ga2, 'trellis_tunnels_active') };
    const victimName = active.ga2 > active.ga1 ? 'ga2' : 'ga1';
    const victim: MeshProcess = gateways[victimName];
    t.diagnostic(`tunnels active before the kill: ${JSON.stringify(active)}; killing ${victimName}`);
    assert.ok(active[victimName] >= 1, `no tunnel crosses either gateway: ${JSON.stringify(active)}`);
    assert.ok(cmdlineOf(victim.proc.pid).some((arg) => arg.endsWith('bin/trellis.js')), 'the pid to kill is the gateway itself');
    // Let the streams run a little more before the kill.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const killedAt = Date.now();
    victim.proc.child.kill('SIGKILL');
    await victim.proc.exited();

    await Promise.all(loads.map((load) => load.waitForOutput(/"event":"done"/, LOAD_DURATION_MS + 30_000)));
    const results = loads.flatMap((load) => load.lines<LoadLine>()).filter((line): line is ClientResult => line.event === 'long' || line.event === 'short');
    const longs = results.filter((result) => result.event === 'long');
    const shorts = results.filter((result) => result.event === 'short');
    assert.equal(longs.length, 2 * LONG_STREAMS_PER_CLIENT);

    // Every long stream is byte-exact or was reset: never truncated, altered or left hanging.
    const counts = (list: ClientResult[]): Record<string, number> => list.reduce<Record<string, number>>((acc, r) => ({ ...acc, [r.outcome]: (acc[r.outcome] ?? 0) + 1 }), {});
    t.diagnostic(`long streams: ${JSON.stringify(counts(longs))}; short connections: ${JSON.stringify(counts(shorts))}`);
    for (const result of longs) {
      assert.ok(result.outcome === 'ok' || result.outcome === 'reset', `long stream ${result.id}: ${JSON.stringify(result)}`);
      if (result.outcome === 'ok') assert.equal(result.receivedSha256, result.sentSha256);
    }
    const reset = longs.filter((result) => result.outcome === 'reset');
    assert.ok(reset.length >= 1, 'no long stream crossed the killed gateway');
    for (const result of reset) assert.ok(result.endedAt >= killedAt, `a long stream failed before the kill: ${JSON.stringify(result)}`);

    // On the server side, each reset stream was reset too (never a clean end), each exact one ended cleanly with every byte.
    const serverRecords = (): ServerRecord[] => [apps.b1, apps.b2].flatMap((app) => app.lines<ServerRecord>()).filter((line) => line.event === 'conn');
    await pollFor(() => Promise.resolve(longs.every((long) => serverRecords().some((record) => record.id === long.id)) ? true : undefined), 'the server records of every long stream', 10_000);
    for (const long of longs) {
      const record = serverRecords().find((entry) => entry.id === long.id);
      assert.ok(record !== undefined);
      if (long.outcome === 'ok') {
        assert.equal(record.outcome, 'end', `server side of exact stream ${long.id}: ${JSON.stringify(record)}`);
        assert.equal(record.received, long.sent);
        assert.equal(record.sha256, long.sentSha256);
      } else {
        assert.equal(record.outcome, 'error', `server side of reset stream ${long.id} must be reset, not ended: ${JSON.stringify(record)}`);
      }
    }

    // Short connections: none truncated or altered; none started more than 1 s after the kill fails.
    for (const result of shorts) assert.ok(result.outcome !== 'mismatch' && result.outcome !== 'truncated', `short connection: ${JSON.stringify(result)}`);
    const failed = shorts.filter((result) => result.outcome !== 'ok');
    // The last failure's end, not its start: a connection that started before the kill and hung would count too.
    const lastFailure = Math.max(killedAt, ...failed.map((result) => result.endedAt));
    t.diagnostic(`short connections failed: ${failed.length}, the last ended ${lastFailure - killedAt} ms after the kill: ${JSON.stringify(failed.map((r) => ({ outcome: r.outcome, code: r.errorCode, start: r.startedAt - killedAt, end: r.endedAt - killedAt })))}`);
    assert.ok(lastFailure - killedAt < RECOVERY_BOUND_MS, `a connection failed ${lastFailure - killedAt} ms after the kill: ${JSON.stringify(failed.at(-1))}`);
    const afterward = shorts.filter((result) => result.startedAt > killedAt + RECOVERY_BOUND_MS && result.outcome === 'ok');
    assert.ok(afterward.length >= 10, `only ${afterward.length} short connections succeeded after the recovery bound`);
  });

  it('refuses a new connection at once when the zone has lost every gateway', { timeout: 60_000 }, async (t) => {
    const { clouds, gateways, sidecars } = mesh;
    await untilReachable(clouds, 'a1', 'echo-b');
    const errorsBefore = await clouds.metricsText(sidecars.a1);
    gateways.gb.proc.child.kill('SIGKILL');
    await gateways.gb.proc.exited();
    const timings: number[] = [];
    for (let attempt = 0; attempt < 5; attempt++) {
      const result = await clouds.echo('a1', 'echo-b', 4096, { timeoutMs: 10_000 });
      const elapsed = result.endedAt - result.startedAt;
      timings.push(elapsed);
      assert.notEqual(result.outcome, 'ok', `attempt ${attempt}: reached echo-b with no gateway in zone b`);
      assert.notEqual(result.outcome, 'timeout', `attempt ${attempt}: hung: ${JSON.stringify(result)}`);
      assert.equal(result.received, 0);
      assert.ok(elapsed < REFUSAL_BOUND_MS, `attempt ${attempt}: refused only after ${elapsed} ms`);
    }
    t.diagnostic(`refusal times (ms): ${timings.join(', ')}`);
    // The source sidecar refused them with NO_ROUTE (PROTOCOL.md: "With no usable path at all, a connection is refused at once with NO_ROUTE").
    const errorsAfter = await clouds.metricsText(sidecars.a1);
    const codes = errorsAfter.split('\n').filter((line) => line.startsWith('trellis_sidecar_stream_errors_total{'));
    t.diagnostic(`a1 stream errors: ${codes.join(' ')}`);
    const noRoute = (text: string): number => sumMetric(text, 'trellis_sidecar_stream_errors_total', { code: 'NO_ROUTE' });
    assert.ok(noRoute(errorsAfter) - noRoute(errorsBefore) >= 5, `NO_ROUTE refusals at a1: ${noRoute(errorsBefore)} → ${noRoute(errorsAfter)} (${codes.join(' ')})`);
  });
});
