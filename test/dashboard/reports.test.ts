// Reports from sidecars: built from the sidecar's own metrics and trimmed to their caps, sent
// only to a control plane that announced channel version 2, kept by the control plane (the
// latest per sender, gone with its session), refused when they break the schema, and shown in
// the dashboard's mesh view.
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { ChannelIdentity } from '../../control-plane/peer-identity.js';
import { percentilesOf, ReportStore } from '../../control-plane/reports.js';
import type { MeshView } from '../../control-plane/dashboard/view-types.js';
import type { ReportMessage, SidecarMessage } from '../../proto/control.js';
import {
  CHANNEL_VERSION_HEADER,
  encodeControlMessage,
  MAX_REPORT_BYTES,
  MAX_REPORT_ENTRIES,
  MAX_REPORT_ERROR_CODES,
  MAX_REPORT_FAILURE_CODES,
  MAX_REPORT_ROUTES,
  parseSidecarMessage,
  REPORT_HISTOGRAM_BOUNDS_MS,
  REPORT_INTERVAL_HEADER,
  reportIntervalFromHeaders,
} from '../../proto/control.js';
import type { ReportChannel, ReporterState } from '../../sidecar/control/reporter.js';
import { Reporter } from '../../sidecar/control/reporter.js';
import { PrometheusSidecarMetrics } from '../../sidecar/metrics/index.js';
import { MAX_UPSTREAM_LABELS, OTHER_UPSTREAMS } from '../../sidecar/metrics/prometheus-metrics.js';
import { adminTokenOf, caPemOf, ChannelClient, isError, isSnapshot, joinAs, joinAsGateway, silentLogger, withTestControlPlane } from '../control-plane/helpers.js';
import { eventually } from '../support/mesh.js';
import { uiCall, uiLogin } from './helpers.js';

/** A channel seam for the reporter: records what it was asked to send. */
class RecordingChannel extends EventEmitter implements ReportChannel {
  connected = false;
  readonly sent: SidecarMessage[] = [];
  constructor(readonly reportIntervalMs: number | undefined) {
    super();
  }
  send(message: SidecarMessage): boolean {
    this.sent.push(message);
    return true;
  }
}

function reporterFor(metrics: PrometheusSidecarMetrics, channel: ReportChannel = new RecordingChannel(undefined), state: Partial<ReporterState> = {}): Reporter {
  return new Reporter({
    channel,
    metrics: metrics.registry,
    state: { configVersion: () => 7, certExpiresAt: () => 1_900_000_000_000, appHealthy: () => true, certRenewalFailing: () => false, routes: () => [], ...state },
    logger: silentLogger,
  });
}

/** Resolves after pending promise callbacks (the reporter reads the registry asynchronously). */
async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await Promise.resolve();
}

describe('reports', () => {
  it('are read from the sidecar metrics: streams by destination, failures by code, histograms in the report buckets', async () => {
    const metrics = new PrometheusSidecarMetrics({ service: 'web' });
    metrics.upstreamStreamOpened('api', 0.0008);
    metrics.upstreamStreamOpened('api', 0.003);
    metrics.upstreamStreamOpened('api', 0.04);
    metrics.upstreamStreamClosed('api', 0.2);
    metrics.upstreamStreamFailed('api', 'POLICY_DENIED');
    metrics.upstreamStreamFailed('db', 'APP_UNREACHABLE');
    metrics.streamOpened('outbound');
    metrics.streamError('POLICY_DENIED');
    metrics.policyDenied('intruder', 'api');
    metrics.linkRtt('127.0.0.1:7001', 1.5);
    metrics.endpointEjected('api');
    metrics.bytes('out', 100);
    metrics.bytes('in', 40);
    const report = await reporterFor(metrics).build();
    assert.deepEqual(parseSidecarMessage(report), report);
    const api = report.upstreams.find((u) => u.service === 'api');
    assert.equal(api?.opened, 3);
    assert.equal(api?.active, 2);
    assert.deepEqual(api?.failed, { POLICY_DENIED: 1 });
    const bucketOf = (ms: number): number => REPORT_HISTOGRAM_BOUNDS_MS.findIndex((bound) => ms <= bound);
    const expectedConnect = new Array<number>(REPORT_HISTOGRAM_BOUNDS_MS.length + 1).fill(0);
    for (const ms of [0.8, 3, 40]) expectedConnect[bucketOf(ms)] = (expectedConnect[bucketOf(ms)] ?? 0) + 1;
    assert.deepEqual(api?.connectMs.counts, expectedConnect);
    assert.ok(Math.abs((api?.connectMs.sumMs ?? 0) - 43.8) < 1e-6);
    assert.equal(api?.durationMs.counts[bucketOf(200)], 1);
    // A destination that never got a stream still shows its failures.
    assert.deepEqual(report.upstreams.find((u) => u.service === 'db')?.failed, { APP_UNREACHABLE: 1 });
    assert.deepEqual(report.errors, { POLICY_DENIED: 1 });
    assert.deepEqual(report.denials, [{ source: 'intruder', count: 1 }]);
    assert.deepEqual(report.peers, [{ peer: '127.0.0.1:7001', rttMs: 1.5 }]);
    assert.deepEqual(report.ejections, [{ service: 'api', count: 1 }]);
    assert.deepEqual(report.bytes, { in: 40, out: 100 });
    assert.deepEqual(report.streamsActive, { inbound: 0, outbound: 1 });
    assert.equal(report.configVersion, 7);
    assert.equal(report.appHealthy, true);
    assert.equal(report.software, '0.1.0');
  });

  it('are trimmed to their caps by the sender, busiest destinations first', async () => {
    const metrics = new PrometheusSidecarMetrics({ service: 'web' });
    for (let i = 0; i < MAX_REPORT_ENTRIES + 6; i++) {
      for (let n = 0; n <= i; n++) metrics.upstreamStreamOpened(`svc-${i}`, 0.001);
      metrics.policyDenied(`caller-${i}`, 'api');
      metrics.linkRtt(`127.0.0.1:${7000 + i}`, 1);
    }
    for (let i = 0; i < MAX_REPORT_FAILURE_CODES + 4; i++) metrics.upstreamStreamFailed('svc-0', `CODE_${i}`);
    for (let i = 0; i < MAX_REPORT_ERROR_CODES + 4; i++) metrics.streamError(`CODE_${i}`);
    const report = await reporterFor(metrics).build();
    assert.equal(report.upstreams.length, MAX_REPORT_ENTRIES);
    assert.equal(report.upstreams[0]?.service, `svc-${MAX_REPORT_ENTRIES + 5}`);
    assert.equal(report.upstreams.some((u) => u.service === 'svc-0'), false);
    assert.equal(report.denials.length, MAX_REPORT_ENTRIES);
    assert.equal(report.peers.length, MAX_REPORT_ENTRIES);
    assert.equal(Object.keys(report.errors).length, MAX_REPORT_ERROR_CODES);
    assert.deepEqual(parseSidecarMessage(report), report);
  });

  it('come from per-destination metrics whose series are capped (apps may name any destination at the proxy port)', async () => {
    const metrics = new PrometheusSidecarMetrics({ service: 'web' });
    for (let i = 0; i < MAX_UPSTREAM_LABELS + 50; i++) metrics.upstreamStreamFailed(`name-${i}`, 'APP_UNREACHABLE');
    metrics.upstreamStreamFailed('name-0', 'APP_UNREACHABLE');
    const failures = (await metrics.registry.getSingleMetric('trellis_sidecar_upstream_stream_failures_total')?.get())?.values ?? [];
    assert.equal(failures.length, MAX_UPSTREAM_LABELS + 1);
    assert.equal(failures.find((v) => v.labels.upstream === OTHER_UPSTREAMS)?.value, 50);
    assert.equal(failures.find((v) => v.labels.upstream === 'name-0')?.value, 2);
    const report = await reporterFor(metrics).build();
    assert.equal(report.upstreams.length, MAX_REPORT_ENTRIES);
    assert.equal(report.upstreams.some((u) => u.service === OTHER_UPSTREAMS), false);
  });

  it('stay under MAX_REPORT_BYTES with every list at its cap and every name at its longest', () => {
    const name = (i: number): string => `s${String(i).padStart(2, '0')}`.padEnd(63, 'x');
    const codes = (max: number): Record<string, number> => Object.fromEntries(Array.from({ length: max }, (_, i) => [`C${i}`.padEnd(32, 'X'), Number.MAX_SAFE_INTEGER]));
    const histogram = { counts: new Array<number>(REPORT_HISTOGRAM_BOUNDS_MS.length + 1).fill(Number.MAX_SAFE_INTEGER), sumMs: Number.MAX_SAFE_INTEGER };
    const big = Number.MAX_SAFE_INTEGER;
    const report: ReportMessage = {
      type: 'report',
      software: 'v'.repeat(32),
      configVersion: big,
      certExpiresAt: big,
      appHealthy: true,
      streamsActive: { inbound: big, outbound: big },
      bytes: { in: big, out: big },
      linksActive: big,
      upstreams: Array.from({ length: MAX_REPORT_ENTRIES }, (_, i) => ({ service: name(i), opened: big, active: big, failed: codes(MAX_REPORT_FAILURE_CODES), connectMs: histogram, durationMs: histogram })),
      denials: Array.from({ length: MAX_REPORT_ENTRIES }, (_, i) => ({ source: name(i), count: big })),
      errors: codes(MAX_REPORT_ERROR_CODES),
      peers: Array.from({ length: MAX_REPORT_ENTRIES }, (_, i) => ({ peer: `${i}`.padEnd(256, 'p'), rttMs: 3_600_000 })),
      ejections: Array.from({ length: MAX_REPORT_ENTRIES }, (_, i) => ({ service: name(i), count: big })),
      certRenewalFailing: true,
      routes: Array.from({ length: MAX_REPORT_ROUTES }, (_, i) => `r${String(i).padStart(3, '0')}`.padEnd(63, 'x')),
    };
    assert.deepEqual(parseSidecarMessage(report), report);
    const bytes = encodeControlMessage(report).byteLength;
    assert.ok(bytes < MAX_REPORT_BYTES, `${bytes} bytes`);
    assert.throws(() => parseSidecarMessage({ ...report, upstreams: [...report.upstreams, report.upstreams[0]] }), { code: 'TRELLIS_ERR_INVALID' });
    assert.throws(() => parseSidecarMessage({ ...report, errors: { ...report.errors, EXTRA: 1 } }), { code: 'TRELLIS_ERR_INVALID' });
    assert.throws(() => parseSidecarMessage({ ...report, peers: [{ peer: 'p'.repeat(257), rttMs: 1 }] }), { code: 'TRELLIS_ERR_INVALID' });
    assert.throws(() => parseSidecarMessage({ ...report, upstreams: [{ ...report.upstreams[0], connectMs: { counts: [1, 2], sumMs: 3 } }] }), { code: 'TRELLIS_ERR_INVALID' });
    assert.throws(() => parseSidecarMessage({ ...report, routes: [...(report.routes ?? []), 'one-more'] }), { code: 'TRELLIS_ERR_INVALID' });
    assert.throws(() => parseSidecarMessage({ ...report, routes: ['Not_A_Service'] }), { code: 'TRELLIS_ERR_INVALID' });
    assert.throws(() => parseSidecarMessage({ ...report, certRenewalFailing: 'yes' }), { code: 'TRELLIS_ERR_INVALID' });
    // Senders older than the two fields leave them out; their reports stay valid.
    const { certRenewalFailing: _failing, routes: _routes, ...older } = report;
    assert.deepEqual(parseSidecarMessage(older), older);
  });

  it('say whether certificate renewal is failing and which services the sender routes to, upstreams first, capped', async () => {
    const metrics = new PrometheusSidecarMetrics({ service: 'web' });
    let failing = false;
    const wanted = new Set(['db', 'api', 'db', 'Bad_Name']);
    const reporter = reporterFor(metrics, undefined, { certRenewalFailing: () => failing, routes: () => wanted });
    let report = await reporter.build();
    assert.equal(report.certRenewalFailing, false);
    assert.deepEqual(report.routes, ['db', 'api']);
    failing = true;
    for (let i = 0; i < MAX_REPORT_ROUTES + 10; i++) wanted.add(`svc-${i}`);
    report = await reporter.build();
    assert.equal(report.certRenewalFailing, true);
    assert.equal(report.routes?.length, MAX_REPORT_ROUTES);
    assert.deepEqual(report.routes?.slice(0, 3), ['db', 'api', 'svc-0']);
    assert.deepEqual(parseSidecarMessage(report), report);
  });

  it('go only to a control plane that announced channel version 2, at its interval', () => {
    assert.equal(reportIntervalFromHeaders({}), undefined);
    assert.equal(reportIntervalFromHeaders({ [CHANNEL_VERSION_HEADER]: '1', [REPORT_INTERVAL_HEADER]: '5000' }), undefined);
    assert.equal(reportIntervalFromHeaders({ [CHANNEL_VERSION_HEADER]: '2', [REPORT_INTERVAL_HEADER]: '5000' }), 5000);
    assert.equal(reportIntervalFromHeaders({ [CHANNEL_VERSION_HEADER]: '3', [REPORT_INTERVAL_HEADER]: '1000' }), 1000);
    assert.equal(reportIntervalFromHeaders({ [CHANNEL_VERSION_HEADER]: '2', [REPORT_INTERVAL_HEADER]: '10' }), undefined);
    assert.equal(reportIntervalFromHeaders({ [CHANNEL_VERSION_HEADER]: '2', [REPORT_INTERVAL_HEADER]: 'soon' }), undefined);
  });

  it('are not sent on a version-1 channel, and are sent every interval on a version-2 one', async (t) => {
    t.mock.timers.enable({ apis: ['setInterval'] });
    const metrics = new PrometheusSidecarMetrics({ service: 'web' });
    const old = new RecordingChannel(undefined);
    const current = new RecordingChannel(2000);
    const reporters = [reporterFor(metrics, old), reporterFor(metrics, current)];
    for (const channel of [old, current]) {
      channel.connected = true;
      channel.emit('connected');
    }
    await settle();
    assert.equal(current.sent.length, 1, 'one report as soon as the channel is up');
    for (let i = 0; i < 3; i++) {
      t.mock.timers.tick(2000);
      await settle();
    }
    assert.equal(current.sent.length, 4);
    assert.equal(old.sent.length, 0);
    current.emit('disconnected');
    t.mock.timers.tick(10_000);
    await settle();
    assert.equal(current.sent.length, 4, 'none while the channel is down');
    for (const reporter of reporters) reporter.stop();
  });

  it('are kept by the control plane, the latest per sender, shown in the mesh view, and forgotten with the session', async () => {
    await withTestControlPlane({ reportIntervalMs: 1000 }, async (cp, dir) => {
      const caPem = await caPemOf(dir.path);
      const web = await joinAs(cp, dir.path, 'web');
      const client = new ChannelClient(cp, caPem, web);
      const upgrade = new Promise<Record<string, string | string[] | undefined>>((resolve) => client.ws.once('upgrade', (res) => resolve(res.headers)));
      await client.opened;
      assert.equal(reportIntervalFromHeaders(await upgrade), 1000);
      client.send({ type: 'register', address: '127.0.0.1:7401', zone: 'z1', weight: 1 });
      await client.waitFor(isSnapshot);

      const metrics = new PrometheusSidecarMetrics({ service: 'web' });
      metrics.upstreamStreamOpened('api', 0.002);
      const reporter = reporterFor(metrics);
      client.send(await reporter.build());
      for (let i = 0; i < 9; i++) metrics.upstreamStreamOpened('api', 0.002);
      metrics.upstreamStreamFailed('api', 'POLICY_DENIED');
      client.send(await reporter.build());

      const session = await uiLogin(cp, caPem, await adminTokenOf(cp));
      const meshView = async (): Promise<MeshView> => (await uiCall(cp, caPem, 'GET', '/ui/api/mesh', { cookie: session.cookie })).json as MeshView;
      let view = await meshView();
      await eventually(async () => (view = await meshView()).services.find((s) => s.name === 'api')?.opened === 10, 'the second report in the mesh view');
      const api = view.services.find((s) => s.name === 'api');
      assert.equal(api?.opened, 10, 'the latest report counts, not the sum of both');
      assert.deepEqual(api?.failed, { POLICY_DENIED: 1 });
      assert.notEqual(api?.connectMs.p50, null);
      assert.deepEqual(view.edges.map((e) => [e.from, e.to, e.opened, e.failed]), [['web', 'api', 10, 1]]);
      assert.equal(view.sidecars.find((s) => s.sidecarId === web.sidecarId)?.software, '0.1.0');

      await client.close();
      await eventually(async () => (view = await meshView()).edges.length === 0, 'the closed session to leave the mesh view');
      assert.deepEqual(view.edges, []);
    });
  });

  it('that break the schema are refused (TRELLIS_ERR_INVALID) and the channel closed (1008)', async () => {
    await withTestControlPlane({}, async (cp, dir) => {
      const caPem = await caPemOf(dir.path);
      const web = await joinAs(cp, dir.path, 'web');
      const client = new ChannelClient(cp, caPem, web);
      await client.opened;
      client.send({ type: 'register', address: '127.0.0.1:7401', zone: 'z1', weight: 1 });
      await client.waitFor(isSnapshot);
      const report = await reporterFor(new PrometheusSidecarMetrics({ service: 'web' })).build();
      client.send({ ...report, linksActive: -1 });
      assert.equal((await client.waitFor(isError)).code, 'TRELLIS_ERR_INVALID');
      assert.equal(await client.closed, 1008);
    });
  });

  it('make the mesh view warn of a failing renewal and of a routed-to service with no healthy endpoint, for sidecars and gateways', async () => {
    await withTestControlPlane({ reportIntervalMs: 1000 }, async (cp, dir) => {
      const caPem = await caPemOf(dir.path);
      const web = await joinAs(cp, dir.path, 'web');
      const client = new ChannelClient(cp, caPem, web);
      await client.opened;
      client.send({ type: 'register', address: '127.0.0.1:7401', zone: 'z1', weight: 1 });
      await client.waitFor(isSnapshot);
      const gatewayIdentity = await joinAsGateway(cp, dir.path, 'z1', 'gw1');
      const gateway = new ChannelClient(cp, caPem, gatewayIdentity);
      await gateway.opened;
      gateway.send({ type: 'register-gateway', addresses: ['tls://127.0.0.1:7501'] });
      await gateway.waitFor(isSnapshot);
      const metrics = new PrometheusSidecarMetrics({ service: 'web' });
      // web routes to itself (registered, healthy) and to api (registered by nobody).
      client.send(await reporterFor(metrics, undefined, { certRenewalFailing: () => true, routes: () => ['web', 'api'] }).build());
      gateway.send(await reporterFor(metrics, undefined, { certRenewalFailing: () => true, appHealthy: () => undefined }).build());

      const session = await uiLogin(cp, caPem, await adminTokenOf(cp));
      const meshView = async (): Promise<MeshView> => (await uiCall(cp, caPem, 'GET', '/ui/api/mesh', { cookie: session.cookie })).json as MeshView;
      let view = await meshView();
      await eventually(async () => (view = await meshView()).warnings.filter((w) => w.kind === 'cert-renewal-failing').length === 2, 'both renewal warnings');
      assert.deepEqual(view.warnings.filter((w) => w.kind === 'cert-renewal-failing').map((w) => w.subject).sort(), [web.sidecarId, 'z1/gw1']);
      assert.deepEqual(view.warnings.filter((w) => w.kind === 'no-healthy-endpoint').map((w) => w.subject), ['api']);
      assert.deepEqual(view.services.find((s) => s.name === 'api')?.routedBy, [web.sidecarId]);
      assert.deepEqual(view.services.find((s) => s.name === 'api')?.endpoints, []);
      const sidecar = view.sidecars.find((s) => s.sidecarId === web.sidecarId);
      assert.equal(sidecar?.certRenewalFailing, true);
      assert.deepEqual(sidecar?.routes, ['web', 'api']);
      assert.equal(view.gateways.find((g) => g.name === 'gw1')?.certRenewalFailing, true);

      // Renewed, and no longer routing to api: the warnings go with the next report.
      client.send(await reporterFor(metrics, undefined, { certRenewalFailing: () => false, routes: () => ['web'] }).build());
      const gone = (w: MeshView['warnings'][number]): boolean => (w.kind === 'cert-renewal-failing' && w.subject === web.sidecarId) || w.kind === 'no-healthy-endpoint';
      await eventually(async () => !(view = await meshView()).warnings.some(gone), 'the warnings to go');
      assert.equal(view.services.some((s) => s.name === 'api'), false);
      assert.equal(view.sidecars.find((s) => s.sidecarId === web.sidecarId)?.certRenewalFailing, false);
      await client.close();
      await gateway.close();
    });
  });

  it('keep the control plane at a bounded size per sender: 3000 senders, 20 rounds', async () => {
    const store = new ReportStore();
    const metrics = new PrometheusSidecarMetrics({ service: 'web' });
    for (let i = 0; i < 8; i++) {
      metrics.upstreamStreamOpened(`svc-${i}`, 0.01);
      metrics.upstreamStreamFailed(`svc-${i}`, 'APP_UNREACHABLE');
      metrics.linkRtt(`127.0.0.1:${7000 + i}`, 1);
    }
    const template = await reporterFor(metrics).build();
    const senders = 3000;
    const identities: ChannelIdentity[] = Array.from({ length: senders }, (_, i) => ({ kind: 'sidecar', sidecarId: `sc-${i.toString(16).padStart(12, '0')}`, service: `svc-${i % 8}` }));
    const holders = identities.map(() => ({}));
    // Each round decodes a fresh copy, as the channel does, so no two reports share objects.
    const round = (n: number): void => {
      for (let i = 0; i < senders; i++) {
        const identity = identities[i] as Extract<ChannelIdentity, { kind: 'sidecar' }>;
        const report = parseSidecarMessage(structuredClone({ ...template, configVersion: n })) as ReportMessage;
        store.record(holders[i] ?? {}, identity.sidecarId, identity, report);
      }
    };
    const gc = exposeGc();
    gc();
    const empty = process.memoryUsage().heapUsed;
    round(1);
    round(2);
    gc();
    const afterTwo = process.memoryUsage().heapUsed;
    for (let n = 3; n <= 20; n++) round(n);
    gc();
    const afterTwenty = process.memoryUsage().heapUsed;
    assert.equal(store.size, senders);
    const perSender = (afterTwo - empty) / senders;
    const encoded = encodeControlMessage(template).byteLength;
    process.stdout.write(`# report store: ${Math.round(perSender)} bytes per sender (reports of ${encoded} bytes encoded), growth over 18 more rounds ${Math.round((afterTwenty - afterTwo) / 1024)} KiB\n`);
    // Two decoded reports each (the latest and the one before), whatever the number of rounds.
    assert.ok(perSender < 40 * encoded, `${perSender} bytes per sender`);
    assert.ok(afterTwenty - afterTwo < 0.2 * (afterTwo - empty), `grew by ${afterTwenty - afterTwo} bytes over 18 rounds`);
    assert.ok(percentilesOf(template.upstreams[0]?.connectMs ?? { counts: [], sumMs: 0 }).p50 !== null);
    for (let i = 0; i < senders; i++) store.forget(holders[i] ?? {}, (identities[i] as Extract<ChannelIdentity, { kind: 'sidecar' }>).sidecarId);
    assert.equal(store.size, 0);
  });
});

/** The V8 collector, for heap measurements (node --test does not pass --expose-gc). */
function exposeGc(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}
