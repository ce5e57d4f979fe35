// Across clouds, with real processes in network namespaces (test/support/clouds.ts): sidecars of
// cloud A reach cloud B and private network C only through gateways; C's gateway takes no
// inbound connection; the destination's policy sees the caller through the gateways; tokens
// of one kind start nothing of the other; and a gateway refuses, and counts, what the control
// plane did not publish.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ErrorCode } from '../../proto/errors.js';
import type { StandardClouds } from '../support/clouds.js';
import { assertExact, CP_PORT, GATEWAY_PORT, pollFor, probeScript, SIDECAR_PORT, startStandardClouds, sumMetric, untilReachable } from '../support/clouds.js';
import type { Topology } from '../support/netns.js';
import { createTopology } from '../support/netns.js';
import { CLOUDS_SPEC } from '../support/clouds.js';
import type { ProbeResult } from '../support/tunnel-probe.js';

const MIB = 1024 * 1024;
const CASE = { timeout: 60_000 };

describe('across clouds: A, B and private C through gateways', { timeout: 180_000 }, () => {
  let topology: Topology;
  let mesh: StandardClouds;

  before(async () => {
    topology = await createTopology(CLOUDS_SPEC);
    try {
      mesh = await startStandardClouds(topology);
    } catch (error) {
      await topology.destroy();
      throw error;
    }
  });

  after(async () => {
    await mesh?.clouds.stop();
    await topology?.destroy();
  });

  it('carries A→B, A→C (C takes no inbound connection) and C→B byte-exact', CASE, async () => {
    const { clouds } = mesh;
    await Promise.all([untilReachable(clouds, 'a1', 'echo-b'), untilReachable(clouds, 'a1', 'echo-c'), untilReachable(clouds, 'c1', 'echo-b')]);
    const bytes = 8 * MIB;
    const [ab, ac, cb, a2b] = await Promise.all([
      clouds.echo('a1', 'echo-b', bytes),
      clouds.echo('a1', 'echo-c', bytes),
      clouds.echo('c1', 'echo-b', bytes),
      clouds.echo('a2', 'echo-b', bytes),
    ]);
    assertExact(ab, bytes, 'a1 → echo-b');
    assertExact(ac, bytes, 'a1 → echo-c');
    assertExact(cb, bytes, 'c1 → echo-b');
    assertExact(a2b, bytes, 'a2 → echo-b');
    // gc dialled out: it holds links to the other zones' gateways although none could dial it.
    const status = await clouds.status(mesh.gateways.gc);
    assert.deepEqual(status['peerGateways'], ['a/ga1', 'a/ga2', 'b/gb']);
  });

  it('has no route between clouds: a plain TCP connect from a1 to c1 fails, and gc refuses inbound from the WAN', CASE, async () => {
    const script = `const s = require('node:net').connect({ host: process.argv[1], port: Number(process.argv[2]) });
      const t = setTimeout(() => { console.log('timeout'); process.exit(0); }, 2000);
      s.on('connect', () => { console.log('connected'); process.exit(0); });
      s.on('error', (e) => { console.log(e.code); process.exit(0); });`;
    const c1 = topology.host('c1').address('netC');
    const direct = await topology.exec('a1', process.execPath, ['-e', script, c1, String(SIDECAR_PORT)]);
    assert.notEqual(direct.stdout.trim(), 'connected');
    assert.match(direct.stdout.trim(), /^(ENETUNREACH|EHOSTUNREACH|timeout)$/);
    // ga1 is on the WAN with gc, but gc drops what the WAN dials to it.
    const wan = await topology.exec('ga1', process.execPath, ['-e', script, topology.host('gc').address('wan'), String(GATEWAY_PORT)]);
    assert.equal(wan.stdout.trim(), 'timeout');
    // And the control plane sees the sidecar in c1 from its own network only.
    const control = await topology.exec('c1', process.execPath, ['-e', script, topology.host('cp').address('netC'), String(CP_PORT)]);
    assert.equal(control.stdout.trim(), 'connected');
  });

  it('applies the destination policy to the caller identity across gateways: deny refuses, allow restores', CASE, async () => {
    const { clouds, sidecars } = mesh;
    await untilReachable(clouds, 'a1', 'echo-b');
    const denialsBefore = (await clouds.metric(sidecars.b1, 'trellis_sidecar_policy_denials_total')) + (await clouds.metric(sidecars.b2, 'trellis_sidecar_policy_denials_total'));
    await clouds.admin(['policy', 'deny', '--from', 'client', '--to', 'echo-b']);
    try {
      const refused = await pollFor(async () => {
        const result = await clouds.echo('a1', 'echo-b', 64 * 1024, { timeoutMs: 5_000 });
        return result.outcome === 'ok' ? undefined : result;
      }, 'the deny rule to take effect', 15_000);
      // Refused before any echo: the caller was reset, not served.
      assert.ok(refused.outcome === 'reset' || refused.outcome === 'truncated', JSON.stringify(refused));
      assert.equal(refused.received, 0, JSON.stringify(refused));
      const denials = (await clouds.metric(sidecars.b1, 'trellis_sidecar_policy_denials_total')) + (await clouds.metric(sidecars.b2, 'trellis_sidecar_policy_denials_total'));
      assert.ok(denials >= denialsBefore + 1, `policy denials at b: ${denialsBefore} → ${denials}`);
      // c1 is echo-c, not client: still allowed.
      assertExact(await clouds.echo('c1', 'echo-b', 64 * 1024), 64 * 1024, 'c1 → echo-b while client is denied');
    } finally {
      await clouds.admin(['policy', 'allow', '--from', 'client', '--to', 'echo-b']);
    }
    await pollFor(async () => ((await clouds.echo('a1', 'echo-b', 4096, { timeoutMs: 5_000 })).outcome === 'ok' ? true : undefined), 'the allow rule to take effect', 15_000);
    assertExact(await clouds.echo('a1', 'echo-b', MIB), MIB, 'a1 → echo-b after allow');
  });

  it('refuses a gateway token to a sidecar and a service token to a gateway (TRELLIS_ERR_TOKEN_WRONG_KIND)', CASE, async () => {
    const { clouds } = mesh;
    const gatewayToken = await clouds.gatewayToken('ga9', 'a');
    const serviceToken = await clouds.serviceToken('client');
    const a1 = topology.host('a1').address('cloudA');
    const sidecar = await clouds.trellis(
      ['sidecar', '--service', 'client', '--token', gatewayToken, '--control-plane', clouds.cpUrl('cloudA'), '--zone', 'a', '--listen', `tls://${a1}:7501`, '--admin', '127.0.0.1:9501'],
      'a1',
    );
    assert.notEqual(sidecar.code, 0);
    assert.match(sidecar.stderr, /\[TRELLIS_ERR_TOKEN_WRONG_KIND\]/);
    const gateway = await clouds.trellis(
      ['gateway', '--zone', 'a', '--name', 'ga9', '--token', serviceToken, '--control-plane', clouds.cpUrl('cloudA'), '--listen', 'tls://0.0.0.0:7601', '--admin', '127.0.0.1:9601'],
      'ga1',
    );
    assert.notEqual(gateway.code, 0);
    assert.match(gateway.stderr, /\[TRELLIS_ERR_TOKEN_WRONG_KIND\]/);
    // The control plane refuses the other kind too, whatever the client's parser does.
    const csr = await topology.exec('cp', 'openssl', ['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', '/dev/null', '-subj', '/CN=wrong-kind']);
    assert.equal(csr.exitCode, 0, csr.stderr);
    const post = async (path: string, body: object): Promise<{ status: number; code: string | undefined }> => {
      const result = await topology.exec(
        'cp',
        'curl',
        ['-sSk', '--max-time', '10', '-w', '\n%{http_code}', '-X', 'POST', '-H', 'content-type: application/json', '--data-binary', '@-', `https://127.0.0.1:${CP_PORT}${path}`],
        { input: JSON.stringify(body) },
      );
      assert.equal(result.exitCode, 0, `curl ${path}: ${result.stderr}`);
      const lines = result.stdout.trimEnd().split('\n');
      const status = Number(lines.pop());
      const answer = (lines.length > 0 && lines.join('').trim() !== '' ? JSON.parse(lines.join('\n')) : {}) as { error?: { code?: string } };
      return { status, code: answer.error?.code };
    };
    assert.deepEqual(await post('/v1/join', { token: gatewayToken, csrPem: csr.stdout, service: 'client' }), { status: 403, code: 'TRELLIS_ERR_TOKEN_WRONG_KIND' });
    assert.deepEqual(await post('/v1/join-gateway', { token: serviceToken, csrPem: csr.stdout, zone: 'a', name: 'ga9' }), { status: 403, code: 'TRELLIS_ERR_TOKEN_WRONG_KIND' });
  });

  it('refuses and counts a tunnel along a path the control plane did not publish, and a plain stream', CASE, async () => {
    const { clouds, gateways } = mesh;
    const token = await clouds.serviceToken('client');
    const ga1 = `tls://${topology.host('ga1').address('cloudA')}:${GATEWAY_PORT}`;
    const probe = async (action: string, extra: string[] = []): Promise<ProbeResult> => {
      const result = await topology.exec('a1', process.execPath, [probeScript, clouds.cpUrl('cloudA'), token, 'client', ga1, 'a', 'ga1', action, ...extra], { timeoutMs: 30_000 });
      assert.equal(result.exitCode, 0, `probe failed: ${result.stderr}`);
      return JSON.parse(result.stdout.trim()) as ProbeResult;
    };
    const before = await clouds.metricsText(gateways.ga1);
    const tunnel = await probe('tunnel', ['a/ga1,zz/nope', 'sc-000000000000']);
    assert.equal(tunnel.outcome, 'reset', JSON.stringify(tunnel));
    assert.equal(tunnel.code, ErrorCode.ROUTE_REFUSED, JSON.stringify(tunnel));
    const plain = await probe('stream');
    assert.equal(plain.outcome, 'reset', JSON.stringify(plain));
    // The code the gateway uses for a plain OPEN: it serves no service.
    assert.equal(plain.code, ErrorCode.UNKNOWN_SERVICE, JSON.stringify(plain));
    // A published path (a → b) towards a sidecar of another zone (c1, zone c) is refused too.
    const c1Id = (await clouds.status(mesh.sidecars.c1))['sidecarId'] as string;
    const wrongTarget = await probe('tunnel', ['a/ga1,b/gb', c1Id]);
    assert.equal(wrongTarget.outcome, 'reset', JSON.stringify(wrongTarget));
    assert.equal(wrongTarget.code, ErrorCode.ROUTE_REFUSED, JSON.stringify(wrongTarget));
    const after = await clouds.metricsText(gateways.ga1);
    const count = (text: string, reason: string): number => sumMetric(text, 'trellis_tunnel_refusals_total', { reason });
    assert.equal(count(after, 'not-published') - count(before, 'not-published'), 1);
    assert.equal(count(after, 'plain-stream') - count(before, 'plain-stream'), 1);
    assert.equal(count(after, 'unknown-target') - count(before, 'unknown-target'), 1);
  });
});
