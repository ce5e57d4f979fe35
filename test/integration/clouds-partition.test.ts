// A gateway that vanishes without a FIN (its host cut off by a partition, as in a power loss)
// is noticed by the links' keepalive (PROTOCOL.md "Tunnels": "no PONG within the timeout"):
// streams that crossed it are reset on both ends within seconds, never left hanging or
// truncated, and new connections take the other gateway.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ClientResult, MeshProcess, ServerRecord } from '../support/clouds.js';
import { APP_PORT, Clouds, CLOUDS_SPEC, pollFor, untilReachable } from '../support/clouds.js';
import type { Topology, TopologySpec } from '../support/netns.js';
import { createTopology } from '../support/netns.js';

const SPEC: TopologySpec = {
  networks: { cloudA: '10.71.1.0/24', cloudB: '10.71.2.0/24', wan: '10.71.100.0/24' },
  hosts: Object.fromEntries(['cp', 'a1', 'ga1', 'ga2', 'b1', 'b2', 'gb'].map((host) => [host, CLOUDS_SPEC.hosts[host] ?? {}])),
};
const LONG_STREAMS = 6;
const SHORT_LOOPS = 2;
const LOAD_DURATION_MS = 10_000;
/** Keepalive: PING every 1 s, dead after 3 s without PONG; plus a tick and a margin. */
const NOTICE_BOUND_MS = 5_500;

describe('across clouds: a gateway cut off without a FIN', { timeout: 120_000 }, () => {
  let topology: Topology;
  let clouds: Clouds;
  let gateways: Record<'ga1' | 'ga2' | 'gb', MeshProcess>;
  const apps: Clouds['cp'][] = [];

  before(async () => {
    topology = await createTopology({ networks: SPEC.networks, hosts: { ...SPEC.hosts, cp: { cloudA: '10.71.1.100', cloudB: '10.71.2.100' } } });
    try {
      clouds = await Clouds.start(topology);
      const [ga1, ga2, gb] = await Promise.all([
        clouds.startGateway('ga1', { network: 'cloudA', zone: 'a' }),
        clouds.startGateway('ga2', { network: 'cloudA', zone: 'a' }),
        clouds.startGateway('gb', { network: 'cloudB', zone: 'b' }),
      ]);
      gateways = { ga1, ga2, gb };
      apps.push(...(await Promise.all([clouds.startApp('b1'), clouds.startApp('b2')])));
      await Promise.all([
        clouds.startSidecar('a1', { network: 'cloudA', zone: 'a', service: 'client', upstreams: ['echo-b'] }),
        clouds.startSidecar('b1', { network: 'cloudB', zone: 'b', service: 'echo-b', appPort: APP_PORT }),
        clouds.startSidecar('b2', { network: 'cloudB', zone: 'b', service: 'echo-b', appPort: APP_PORT }),
      ]);
    } catch (error) {
      await clouds?.stop();
      await topology.destroy();
      throw error;
    }
  });

  after(async () => {
    await clouds?.stop();
    await topology?.destroy();
  });

  it('resets the streams that crossed it on both ends within the keepalive timeout; new connections take the other gateway', { timeout: 90_000 }, async (t) => {
    await untilReachable(clouds, 'a1', 'echo-b');
    const load = clouds.startLoad('a1', 'echo-b', LONG_STREAMS, LOAD_DURATION_MS, SHORT_LOOPS);
    await load.waitForOutput(new RegExp(`"event":"long-started"[^\\n]*"count":${LONG_STREAMS}\\}`), 20_000);
    const active = { ga1: await clouds.metric(gateways.ga1, 'trellis_tunnels_active'), ga2: await clouds.metric(gateways.ga2, 'trellis_tunnels_active') };
    const victim = active.ga2 > active.ga1 ? 'ga2' : 'ga1';
    t.diagnostic(`tunnels active: ${JSON.stringify(active)}; cutting ${victim} off`);
    assert.ok(active[victim] >= 1);
    const cutAt = Date.now();
    for (const peer of ['a1', 'gb', 'cp', victim === 'ga1' ? 'ga2' : 'ga1']) await topology.partition(victim, peer);

    await load.waitForOutput(/"event":"done"/, LOAD_DURATION_MS + 30_000);
    const results = load.lines<ClientResult>().filter((line) => line.event === 'long' || line.event === 'short');
    const longs = results.filter((result) => result.event === 'long');
    const shorts = results.filter((result) => result.event === 'short');
    const summary = (list: ClientResult[]): string => JSON.stringify(list.map((r) => ({ outcome: r.outcome, code: r.errorCode, start: r.startedAt - cutAt, end: r.endedAt - cutAt })));
    t.diagnostic(`long streams: ${summary(longs)}`);
    t.diagnostic(`failed short connections: ${summary(shorts.filter((r) => r.outcome !== 'ok'))}`);
    assert.equal(longs.length, LONG_STREAMS);
    for (const result of longs) assert.ok(result.outcome === 'ok' || result.outcome === 'reset', `long stream: ${JSON.stringify(result)}`);
    const reset = longs.filter((result) => result.outcome === 'reset');
    assert.ok(reset.length >= 1, 'no long stream crossed the cut-off gateway');
    for (const result of reset) assert.ok(result.endedAt - cutAt < NOTICE_BOUND_MS, `a stream through the dead gateway was reset only ${result.endedAt - cutAt} ms after the cut`);

    const records = (): ServerRecord[] => apps.flatMap((app) => app.lines<ServerRecord>()).filter((line) => line.event === 'conn');
    await pollFor(() => Promise.resolve(longs.every((long) => records().some((record) => record.id === long.id)) ? true : undefined), 'the server records of every long stream', 10_000);
    for (const long of longs) {
      const record = records().find((entry) => entry.id === long.id);
      assert.ok(record !== undefined);
      assert.equal(record.outcome, long.outcome === 'ok' ? 'end' : 'error', `server side of ${long.outcome} stream: ${JSON.stringify(record)}`);
      if (long.outcome !== 'ok') assert.ok(record.at - cutAt < NOTICE_BOUND_MS, `the server side was reset only ${record.at - cutAt} ms after the cut`);
    }

    for (const result of shorts) assert.ok(result.outcome !== 'mismatch' && result.outcome !== 'truncated', `short connection: ${JSON.stringify(result)}`);
    const lateFailures = shorts.filter((result) => result.outcome !== 'ok' && result.startedAt - cutAt >= NOTICE_BOUND_MS);
    assert.deepEqual(lateFailures, [], 'new connections still failed after the keepalive timeout');
    assert.ok(shorts.filter((result) => result.startedAt - cutAt >= NOTICE_BOUND_MS && result.outcome === 'ok').length >= 10, 'too few connections after the cut');
  });
});
