import assert from 'node:assert/strict';
import cluster from 'node:cluster';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { MeshConfig } from '../../sidecar/config/mesh-config.js';
import { ConfigSubscriptions } from '../../sidecar/config/subscriptions.js';
import { Credentials } from '../../sidecar/identity/credentials.js';
import { PrometheusSidecarMetrics } from '../../sidecar/metrics/index.js';
import { WorkerError } from '../../sidecar/workers/errors.js';
import { mergeMetrics, mergeStatus } from '../../sidecar/workers/merge.js';
import type { WorkerSummary } from '../../sidecar/workers/messages.js';
import { RemoteSubscriptions, WANT_REFRESH_MS } from '../../sidecar/workers/remote-subscriptions.js';
import { send, WorkerPool } from '../../sidecar/workers/worker-pool.js';

const brokenWorker = fileURLToPath(new URL('../support/broken-worker.js', import.meta.url));

function poolInit(mode: string) {
  const subscriptions = new ConfigSubscriptions();
  return {
    count: 2,
    entry: brokenWorker,
    entryOptions: { mode },
    settings: { service: 'web', listen: { scheme: 'tls' as const, host: '127.0.0.1', port: 0, path: undefined }, upstreams: [] },
    credentials: new Credentials({ trustDomain: 'trellis.local', service: 'web', sidecarId: 'sc-1', privateKeyPem: '', certPem: '', caPems: [], expiresAt: 0 }),
    config: new MeshConfig(),
    subscriptions,
    registry: new Registry(),
    logger: pino({ level: 'silent' }),
    close: () => subscriptions.close(),
  };
}

describe('worker pool', () => {
  for (const mode of ['fail', 'exit']) {
    it(`rejects with TRELLIS_ERR_WORKER_START when a worker cannot start (${mode})`, async () => {
      const init = poolInit(mode);
      try {
        await assert.rejects(WorkerPool.start(init), (error: unknown) => error instanceof WorkerError && error.code === 'TRELLIS_ERR_WORKER_START');
      } finally {
        init.close();
      }
    });
  }
});

describe('sending to a worker', () => {
  it('drops a message to a worker that died before this process saw its exit', async () => {
    cluster.setupPrimary({ exec: brokenWorker, args: [], serialization: 'advanced' });
    const worker = cluster.fork();
    await once(worker, 'message');
    worker.process.kill('SIGKILL');
    // Block this thread while the worker dies: its end of the channel closes, but the exit and the
    // disconnect are events that only run after this turn, so the worker still looks connected.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 300);
    assert.equal(worker.isConnected(), true);
    const exited = once(worker, 'exit');
    send(worker, { type: 'close' });
    const [, signal] = (await exited) as [number | null, string | null];
    assert.equal(signal, 'SIGKILL');
  });
});

describe('merging workers', () => {
  it('adds counters and stream gauges up, and keeps the primary\'s config version', async () => {
    const primary = new PrometheusSidecarMetrics({ service: 'web' });
    primary.configVersion(7);
    const workers = [new PrometheusSidecarMetrics({ service: 'web' }), new PrometheusSidecarMetrics({ service: 'web' })];
    workers[0]?.streamOpened('outbound');
    workers[1]?.streamOpened('outbound');
    workers[1]?.streamOpened('outbound');
    workers[1]?.linkRtt('10.0.0.1:7000', 4);
    workers[0]?.linkRtt('10.0.0.1:7000', 2);
    const summaries: WorkerSummary[] = await Promise.all(
      workers.map(async (worker, index) => ({ index, pid: 100 + index, metrics: await worker.registry.getMetricsAsJSON(), status: { outboundLinks: index + 1, gatewayLinks: 0, gatewayRtts: { 'a/g': 5 - index }, load: { api: [{ sidecarId: 's1', activeStreams: index + 1, failureStreak: index, ejected: index === 1 }] } } })),
    );
    const merged = await mergeMetrics(await primary.registry.getMetricsAsJSON(), summaries).getMetricsAsJSON();
    const value = (name: string, labels: Record<string, string> = {}): number | undefined =>
      merged.find((metric) => metric.name === name)?.values.find((sample) => Object.entries(labels).every(([key, v]) => sample.labels[key] === v))?.value;
    assert.equal(value('trellis_sidecar_streams_opened_total', { direction: 'outbound' }), 3);
    assert.equal(value('trellis_sidecar_streams_active', { direction: 'outbound' }), 3);
    assert.equal(value('trellis_sidecar_config_version'), 7);
    assert.equal(value('trellis_sidecar_link_rtt_seconds', { peer: '10.0.0.1:7000' }), 0.004);

    const status = mergeStatus(summaries);
    assert.equal(status.outboundLinks, 3);
    assert.deepEqual(status.gatewayRtts, { 'a/g': 4 });
    assert.deepEqual(status.load['api'], [{ sidecarId: 's1', activeStreams: 3, failureStreak: 1, ejected: true }]);
    assert.deepEqual(status.workers?.map((worker) => [worker.pid, worker.streamsActive.outbound]), [[100, 1], [101, 2]]);
  });
});

describe('a worker\'s subscriptions', () => {
  it('asks the primary on first use, again only after a while, and wakes waiters when the primary holds the service', async () => {
    let now = 1000;
    const sent: string[] = [];
    const subscriptions = new RemoteSubscriptions((service) => sent.push(service), () => now);
    const ready = subscriptions.ready('api', 10_000);
    subscriptions.want('api');
    subscriptions.update({ all: false, services: ['api'] });
    assert.equal(await ready, true);
    subscriptions.want('api');
    assert.deepEqual(sent, ['api']);
    now += WANT_REFRESH_MS;
    subscriptions.want('api');
    assert.deepEqual(sent, ['api', 'api']);
    // The wait's own timer is unreferenced: a referenced one keeps this test's process alive meanwhile.
    const [held] = await Promise.all([subscriptions.ready('db', 10), new Promise((resolve) => setTimeout(resolve, 30))]);
    assert.equal(held, false);
    subscriptions.update({ all: true, services: [] });
    assert.equal(subscriptions.holds('db'), true);
  });
});
