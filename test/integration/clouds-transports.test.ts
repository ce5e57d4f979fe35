// Links across clouds over other transports, with real processes in network namespaces: a zone
// whose gateway (and sidecar) speak only WebSocket links, and a zone whose gateway has no WAN
// address at all and reaches the other gateways only through an HTTP CONNECT proxy (tinyproxy).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { MeshProcess } from '../support/clouds.js';
import { APP_PORT, assertExact, Clouds, CLOUDS_SPEC, GATEWAY_PORT, untilReachable } from '../support/clouds.js';
import type { Topology, TopologySpec } from '../support/netns.js';
import { createTopology } from '../support/netns.js';
import type { NsTinyproxy } from '../support/ns-tinyproxy.js';
import { startNsTinyproxy } from '../support/ns-tinyproxy.js';

const MIB = 1024 * 1024;
const PROXY_PORT = 8888;
const SPEC: TopologySpec = {
  networks: { cloudA: '10.71.1.0/24', netD: '10.71.4.0/24', netE: '10.71.5.0/24', wan: '10.71.100.0/24' },
  hosts: {
    cp: { cloudA: '10.71.1.100', netD: '10.71.4.100', netE: '10.71.5.100' },
    a1: CLOUDS_SPEC.hosts['a1'] ?? {},
    ga1: CLOUDS_SPEC.hosts['ga1'] ?? {},
    // Zone d: WebSocket links only.
    gd: { netD: '10.71.4.2', wan: '10.71.100.6' },
    d1: { netD: '10.71.4.11' },
    d2: { netD: '10.71.4.12' },
    // Zone e: the gateway is on its own network only; the proxy host is on that network and the WAN.
    ge: { netE: '10.71.5.2' },
    px: { netE: '10.71.5.3', wan: '10.71.100.7' },
    e1: { netE: '10.71.5.11' },
  },
};

describe('across clouds over WebSocket links and through an HTTP CONNECT proxy', { timeout: 120_000 }, () => {
  let topology: Topology;
  let clouds: Clouds;
  let proxy: NsTinyproxy;
  let ga1: MeshProcess;
  let gd: MeshProcess;
  let ge: MeshProcess;

  before(async () => {
    topology = await createTopology(SPEC);
    try {
      clouds = await Clouds.start(topology);
      proxy = await startNsTinyproxy(topology, 'px', topology.host('px').address('netE'), PROXY_PORT);
      const gdWan = topology.host('gd').address('wan');
      const gdOwn = topology.host('gd').address('netD');
      [ga1, gd, ge] = await Promise.all([
        clouds.startGateway('ga1', { network: 'cloudA', zone: 'a' }),
        clouds.startGateway('gd', {
          network: 'netD',
          zone: 'd',
          listen: [`wss://0.0.0.0:${GATEWAY_PORT}`],
          advertise: [`wss://${gdWan}:${GATEWAY_PORT}`, `wss://${gdOwn}:${GATEWAY_PORT}`],
        }),
        clouds.startGateway('ge', {
          network: 'netE',
          zone: 'e',
          advertise: [`tls://${topology.host('ge').address('netE')}:${GATEWAY_PORT}`],
          extra: ['--egress-proxy', `http://${topology.host('px').address('netE')}:${PROXY_PORT}`],
        }),
      ]);
      await Promise.all([clouds.startApp('d1'), clouds.startApp('d2'), clouds.startApp('e1')]);
      await Promise.all([
        clouds.startSidecar('a1', { network: 'cloudA', zone: 'a', service: 'client', upstreams: ['echo-d', 'echo-e', 'echo-dw'] }),
        clouds.startSidecar('d1', { network: 'netD', zone: 'd', service: 'echo-d', appPort: APP_PORT }),
        clouds.startSidecar('e1', { network: 'netE', zone: 'e', service: 'echo-e', appPort: APP_PORT }),
      ]);
    } catch (error) {
      await proxy?.stop();
      await clouds?.stop();
      await topology.destroy();
      throw error;
    }
  });

  after(async () => {
    await proxy?.stop();
    await clouds?.stop();
    await topology?.destroy();
  });

  it('carries A→D byte-exact through a gateway that listens and advertises only wss://', async () => {
    await untilReachable(clouds, 'a1', 'echo-d');
    assertExact(await clouds.echo('a1', 'echo-d', 8 * MIB), 8 * MIB, 'a1 → echo-d');
    // The gateways' link is the WebSocket one: gd offers nothing else.
    const status = await clouds.status(gd);
    assert.deepEqual(status['listen'], [`wss://0.0.0.0:${GATEWAY_PORT}/trellis/v2/link`]);
    assert.ok((status['peerGateways'] as string[]).includes('a/ga1'), JSON.stringify(status));
    assert.ok((await clouds.metric(gd, 'trellis_tunnels_opened_total')) >= 1, 'gd relayed no tunnel');
  });

  it('carries A→D byte-exact to a sidecar whose own link listener is wss:// (as `trellis sidecar --help` offers)', async () => {
    // The sidecar registers its wss:// link URL with the control plane and must become ready.
    await clouds.startSidecar('d2', {
      network: 'netD',
      zone: 'd',
      service: 'echo-dw',
      appPort: APP_PORT,
      listen: `wss://${topology.host('d2').address('netD')}:7500`,
      readyTimeoutMs: 10_000,
    });
    await untilReachable(clouds, 'a1', 'echo-dw');
    assertExact(await clouds.echo('a1', 'echo-dw', 4 * MIB), 4 * MIB, 'a1 → echo-dw');
  });

  it('carries A→E byte-exact through a gateway that reaches the WAN only through tinyproxy', async () => {
    // No direct way out of ge: the WAN is not even a network it is on.
    const direct = await topology.exec('ge', process.execPath, [
      '-e',
      `require('node:net').connect({ host: process.argv[1], port: ${GATEWAY_PORT} }).on('connect', () => console.log('connected')).on('error', (e) => console.log(e.code));`,
      topology.host('ga1').address('wan'),
    ]);
    assert.notEqual(direct.stdout.trim(), 'connected');
    await untilReachable(clouds, 'a1', 'echo-e');
    assertExact(await clouds.echo('a1', 'echo-e', 8 * MIB), 8 * MIB, 'a1 → echo-e');
    const status = await clouds.status(ga1);
    assert.ok((status['peerGateways'] as string[]).includes('e/ge'), JSON.stringify(status));
    assert.ok((await clouds.metric(ge, 'trellis_tunnels_opened_total')) >= 1, 'ge relayed no tunnel');
    // tinyproxy saw the CONNECT to ga1's WAN address.
    assert.ok(proxy.log().includes(`CONNECT ${topology.host('ga1').address('wan')}:${GATEWAY_PORT}`), `tinyproxy log:\n${proxy.log()}`);
  });
});
