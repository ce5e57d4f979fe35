// The relay never sees plaintext: a marker streamed from a1 to c1 through gateways ga1 and gc
// (gc takes no inbound connection) is found in the memory of the end sidecars, which proves the
// scan works, and in neither gateway's memory nor logs.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { ClientResult, MeshProcess } from '../support/clouds.js';
import { APP_PORT, assertExact, Clouds, cmdlineOf, CLOUDS_SPEC, untilReachable } from '../support/clouds.js';
import { scanProcessMemory } from '../support/memscan.js';
import type { Topology, TopologySpec } from '../support/netns.js';
import { createTopology } from '../support/netns.js';

const SPEC: TopologySpec = {
  networks: { cloudA: '10.71.1.0/24', netC: '10.71.3.0/24', wan: '10.71.100.0/24' },
  hosts: {
    cp: { cloudA: '10.71.1.100', netC: '10.71.3.100' },
    a1: CLOUDS_SPEC.hosts['a1'] ?? {},
    ga1: CLOUDS_SPEC.hosts['ga1'] ?? {},
    c1: CLOUDS_SPEC.hosts['c1'] ?? {},
    gc: CLOUDS_SPEC.hosts['gc'] ?? {},
  },
};
const PAYLOAD_BYTES = 8 * 1024 * 1024;
/** Per process: a node process maps a few hundred MiB readable at most. */
const SCAN_BOUND_BYTES = 3 * 1024 * 1024 * 1024;

describe('a relay never sees plaintext', { timeout: 120_000 }, () => {
  let topology: Topology;
  let clouds: Clouds;
  let processes: Record<'a1' | 'c1' | 'ga1' | 'gc', MeshProcess>;

  before(async () => {
    topology = await createTopology(SPEC);
    try {
      await topology.dropInbound('gc', 'wan');
      clouds = await Clouds.start(topology);
      // Debug logs on the gateways: whatever they might log about a tunnel, the marker must not be in it.
      const [ga1, gc] = await Promise.all([
        clouds.startGateway('ga1', { network: 'cloudA', zone: 'a', logLevel: 'debug' }),
        clouds.startGateway('gc', { network: 'netC', zone: 'c', logLevel: 'debug' }),
      ]);
      await clouds.startApp('c1');
      const [a1, c1] = await Promise.all([
        clouds.startSidecar('a1', { network: 'cloudA', zone: 'a', service: 'client', upstreams: ['echo-c'] }),
        clouds.startSidecar('c1', { network: 'netC', zone: 'c', service: 'echo-c', appPort: APP_PORT }),
      ]);
      processes = { a1, c1, ga1, gc };
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

  it('finds the marker in both end sidecars and in neither gateway (memory and logs)', async (t) => {
    await untilReachable(clouds, 'a1', 'echo-c');
    for (const [host, target] of Object.entries(processes)) {
      // The pid is node's own (ip netns exec execs in place), not a wrapper's.
      const argv = cmdlineOf(target.proc.pid);
      assert.match(argv[0] ?? '', /node/, `${host}: ${argv.join(' ')}`);
      assert.ok(argv.some((arg) => arg.endsWith('bin/trellis.js')), `${host}: ${argv.join(' ')}`);
    }
    const marker = randomBytes(32).toString('hex');
    const needle = Buffer.from(marker);
    const client = clouds.spawnEcho('a1', 'echo-c', PAYLOAD_BYTES, { marker, holdMs: 60_000 });
    await client.waitForOutput(/"event":"echo"/, 60_000);
    const [result] = client.lines<ClientResult>();
    assert.ok(result !== undefined);
    assertExact(result, PAYLOAD_BYTES, 'a1 → echo-c with the marker');
    // While the connection is still open (idle), scan all four processes.
    const scans: Record<string, ReturnType<typeof scanProcessMemory>> = {};
    for (const [host, target] of Object.entries(processes)) scans[host] = scanProcessMemory(target.proc.pid, needle, SCAN_BOUND_BYTES);
    const summary = JSON.stringify(scans);
    t.diagnostic(summary);
    assert.equal(scans['ga1']?.found, false, `marker in ga1's memory: ${summary}`);
    assert.equal(scans['gc']?.found, false, `marker in gc's memory: ${summary}`);
    assert.equal(scans['ga1']?.truncated, false, summary);
    assert.equal(scans['gc']?.truncated, false, summary);
    assert.equal(scans['a1']?.found, true, `the scan did not find the marker in the source sidecar: ${summary}`);
    assert.equal(scans['c1']?.found, true, `the scan did not find the marker in the destination sidecar: ${summary}`);
    // And the bytes did cross both gateways: each relayed a tunnel.
    for (const host of ['ga1', 'gc'] as const) {
      assert.ok((await clouds.metric(processes[host], 'trellis_tunnels_opened_total')) >= 1, `${host} relayed no tunnel`);
    }
    for (const host of ['ga1', 'gc'] as const) {
      const logs = processes[host].proc.stdout() + processes[host].proc.stderr();
      assert.ok(logs.length > 0, `${host} logged nothing at debug level`);
      assert.equal(logs.includes(marker), false, `marker in ${host}'s logs`);
    }
    await client.kill();
  });
});
