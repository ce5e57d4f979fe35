/**
 * Simulated sidecars against one control plane or several replicas sharing an etcd, in
 * processes of their own: this coordinator
 * and WORKERS worker processes (control-plane-sim-worker.ts), each holding its share of the
 * COUNT real channels (WebSocket over mutual TLS, one certificate each).
 *
 *  1. joins COUNT identities with one key and one CSR (the control plane signs each join its
 *     own certificate whatever the CSR says; making COUNT keys would take minutes), timing the
 *     CA. The mesh has COUNT / 10 services of 10 sidecars each; every sidecar routes to the 3
 *     services after its own, so each service has 30 subscribers whatever COUNT is;
 *  2. the workers open every channel (register on channel 2 with the upstreams, ack like a
 *     sidecar) until all hold their snapshot;
 *  3. ROUNDS mesh-wide policy changes (the default action, which every sidecar gets), timed
 *     from the call to each session's arrival;
 *  4. a burst of endpoint changes (sidecars re-registering with another weight), timed from
 *     each send to its arrival at every subscriber, with the control plane's CPU per change;
 * all within TIMEOUT_MS (the joins within half of it): a phase that runs out reports what it reached. Prints one JSON line
 * (SimulatorReport), then holds the channels until told `close` on stdin so that the harness
 * can read the control plane's memory with all of them connected.
 *
 * With several replicas (URLS and CP_PIDS comma-separated, in the same order) the joins and the
 * channels are spread over them in turn, the policy changes go to the first, and the CPU and
 * memory figures are the replicas' sums: every arrival at a session of another replica than the
 * one written to has crossed etcd.
 *
 * usage: node control-plane-simulator.js URLS ADMIN_TOKEN_FILE COUNT ROUNDS TIMEOUT_MS CP_PIDS WORKERS
 */
import { fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { ControlPlaneEndpoint } from '../../sidecar/control/api-client.js';
import { fetchPinnedCa, request } from '../../sidecar/control/api-client.js';
import { createCsrPem, generateSidecarKeyPair } from '../../sidecar/identity/keys.js';
import { parseAdminToken } from '../../proto/tokens.js';
import { percentile } from '../stats.js';
import { clockTicksPerSecond, readProcessCpuSeconds, readProcessMemory } from '../system.js';
import type { SimulatedSidecar, WatchedKey, WorkerCommand, WorkerEvent } from './control-plane-sim-worker.js';

/** Joins in flight at once, as many sidecars starting together would. */
const JOIN_CONCURRENCY = 16;
/** Channel handshakes in flight at once, per worker. */
const CONNECT_CONCURRENCY_PER_WORKER = 32;
/** Sidecars per service, and upstream services per sidecar: 30 subscribers per service at any size. */
const SIDECARS_PER_SERVICE = 10;
const UPSTREAMS_PER_SIDECAR = 3;
/** Endpoint changes in the burst of phase 4. */
const ENDPOINT_CHANGES = 200;
/** Joins answer quickly even under load; a slower one is a failure worth reporting. */
const JOIN_TIMEOUT_MS = 30_000;
/** Admin calls may wait behind a registration storm; how long is part of the report. */
const ADMIN_TIMEOUT_MS = 120_000;
/** Quiet time whose control-plane CPU is the baseline subtracted from the burst's. */
const IDLE_SAMPLE_MS = 2_000;
/**
 * Joins stop at this share of TIMEOUT_MS, so that the sidecars that did join still get time to
 * open their channels: a bound too short for all the joins then reports how many of those held
 * a snapshot, not none.
 */
const JOIN_SHARE_OF_TIMEOUT = 0.5;
/** A phase waiting for arrivals gives up after this (within the overall deadline). */
const PHASE_TIMEOUT_MS = 60_000;
/** The channels are held for the memory reading until `close`, at most this long. */
const HOLD_TIMEOUT_MS = 120_000;
const FIRST_FAKE_PORT = 20_000;

export interface LatencyFigures {
  samples: number;
  missed: number;
  p50Ms: number | null;
  p99Ms: number | null;
  maxMs: number | null;
}

export interface SimulatorReport {
  sidecars: number;
  workers: number;
  joined: number;
  joinSeconds: number;
  certsPerSecond: number;
  /** Control-plane CPU per join (TLS handshake, token, CSR check, signing, store write), ms. */
  joinCpuMsPerSidecar: number | null;
  connected: number;
  snapshots: number;
  /** From the first channel to the last snapshot. */
  connectSeconds: number;
  /** Control-plane CPU per sidecar for connecting (handshake, register, snapshot, deltas to subscribers). */
  connectCpuMsPerSidecar: number | null;
  /** The worker processes' CPU per sidecar for the same (TLS client, decoding, acks). */
  simulatorCpuMsPerSidecar: number | null;
  /** Control-plane RSS before the channels and with all of them, MB. */
  rssBeforeMB: number | null;
  rssConnectedMB: number | null;
  policy: LatencyFigures & { rounds: number };
  endpoint: LatencyFigures & { changes: number; subscribersPerChange: number };
  /** Control-plane CPU per endpoint change in the burst, idle CPU subtracted, µs. */
  cpuUsPerRegistration: number | null;
  /** Which phases ran out of time. */
  timedOut: string[];
  errors: string[];
}

const [urlsText, adminTokenFile, countText, roundsText, timeoutText, cpPidsText, workersText] = process.argv.slice(2);
const urls = (urlsText ?? '').split(',').filter((url) => url !== '');
const cpPids = (cpPidsText ?? '').split(',').map(Number);
const count = Number(countText);
const rounds = Number(roundsText);
const timeoutMs = Number(timeoutText);
const workerCount = Number(workersText);
if (urls.length === 0 || urls.length !== cpPids.length || adminTokenFile === undefined || ![count, rounds, timeoutMs, workerCount, ...cpPids].every((value) => Number.isInteger(value) && value > 0)) {
  process.stderr.write('usage: control-plane-simulator URLS ADMIN_TOKEN_FILE COUNT ROUNDS TIMEOUT_MS CP_PIDS WORKERS\n');
  process.exit(2);
}
const errors: string[] = [];
const noteError = (text: string): void => {
  if (errors.length < 10 && !errors.includes(text)) errors.push(text);
};
const wallNow = (): number => performance.timeOrigin + performance.now();
const ticks = clockTicksPerSecond();
const cpuSeconds = async (): Promise<number> => (await Promise.all(cpPids.map((pid) => readProcessCpuSeconds(pid, ticks)))).reduce((a, b) => a + b, 0);

/** A worker process and a way to wait for its next event of a kind. */
class Worker {
  readonly child: ChildProcess;
  readonly #queue: WorkerEvent[] = [];
  #wake: (() => void) | undefined;

  constructor(script: string) {
    this.child = fork(script, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.child.on('message', (event: WorkerEvent) => {
      this.#queue.push(event);
      this.#wake?.();
    });
    this.child.on('exit', (code) => {
      if (code !== 0 && code !== null) noteError(`a simulator worker exited with ${code}`);
      this.#wake?.();
    });
  }

  tell(command: WorkerCommand): void {
    if (this.child.connected) this.child.send(command);
  }

  async next<K extends WorkerEvent['evt']>(evt: K, deadline: number): Promise<Extract<WorkerEvent, { evt: K }> | undefined> {
    for (;;) {
      const index = this.#queue.findIndex((event) => event.evt === evt);
      if (index >= 0) return this.#queue.splice(index, 1)[0] as Extract<WorkerEvent, { evt: K }>;
      if (Date.now() > deadline || this.child.exitCode !== null) return undefined;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(1, deadline - Date.now()));
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }
}

function latencies(values: number[], missed: number): LatencyFigures {
  const sorted = [...values].sort((a, b) => a - b);
  return {
    samples: sorted.length,
    missed,
    p50Ms: sorted.length > 0 ? percentile(sorted, 50) : null,
    p99Ms: sorted.length > 0 ? percentile(sorted, 99) : null,
    maxMs: sorted.length > 0 ? sorted[sorted.length - 1]! : null,
  };
}

async function rssMB(): Promise<number | null> {
  return Promise.all(cpPids.map((pid) => readProcessMemory(pid)))
    .then((memories) => memories.reduce((sum, memory) => sum + memory.rssMB, 0))
    .catch(() => null);
}

function serviceOf(index: number, services: number): number {
  return Math.floor(index / SIDECARS_PER_SERVICE) % services;
}

async function main(): Promise<SimulatorReport> {
  const deadline = Date.now() + timeoutMs;
  const joinDeadline = Date.now() + timeoutMs * JOIN_SHARE_OF_TIMEOUT;
  const timedOut: string[] = [];
  const adminToken = (await readFile(adminTokenFile!, 'utf8')).trim();
  const admin = parseAdminToken(adminToken);
  // Every replica serves the same CA: the one the admin token names.
  const caPem = await fetchPinnedCa(urls[0]!, admin.caFingerprint);
  const endpoints: ControlPlaneEndpoint[] = urls.map((url) => ({ url, trustDomain: admin.trustDomain, caPems: [caPem], timeoutMs: JOIN_TIMEOUT_MS }));
  const adminEndpoint: ControlPlaneEndpoint = { ...endpoints[0]!, timeoutMs: ADMIN_TIMEOUT_MS };
  // No call outlives the deadline by more than a second: the report is due when the time runs out.
  const bounded = (base: ControlPlaneEndpoint): ControlPlaneEndpoint => ({ ...base, timeoutMs: Math.max(1_000, Math.min(base.timeoutMs ?? ADMIN_TIMEOUT_MS, deadline - Date.now())) });
  const services = Math.max(UPSTREAMS_PER_SIDECAR + 1, Math.ceil(count / SIDECARS_PER_SERVICE));
  const serviceName = (i: number): string => `svc-${i}`;
  const keys = await generateSidecarKeyPair();
  const csrPem = await createCsrPem(keys.privateKeyPem, 'bench-sim');

  // 1. Joins, one token per service.
  const tokens = new Map<number, string>();
  const joined: Array<SimulatedSidecar & { sidecarId: string }> = [];
  const joinStart = performance.now();
  const cpuBeforeJoins = await cpuSeconds();
  let nextJoin = 0;
  const joiner = async (): Promise<void> => {
    while (nextJoin < count && Date.now() < joinDeadline) {
      const index = nextJoin++;
      const service = serviceOf(index, services);
      try {
        let token = tokens.get(service);
        if (token === undefined) {
          token = ((await request(bounded(adminEndpoint), 'POST', '/v1/tokens', { service: serviceName(service), ttlSeconds: 3600 }, { bearerToken: adminToken })) as { token: string }).token;
          tokens.set(service, token);
        }
        const answer = (await request(bounded(endpoints[index % endpoints.length]!), 'POST', '/v1/join', { token, csrPem, service: serviceName(service) })) as { certPem: string; sidecarId: string };
        const upstreams = Array.from({ length: UPSTREAMS_PER_SIDECAR }, (_, k) => serviceName((service + 1 + k) % services));
        joined.push({ index, certPem: answer.certPem, sidecarId: answer.sidecarId, service: serviceName(service), upstreams, port: FIRST_FAKE_PORT + (index % 40_000) });
      } catch (error) {
        noteError(`join ${index}: ${(error as Error).message}`);
      }
    }
  };
  await Promise.all(Array.from({ length: JOIN_CONCURRENCY }, () => joiner()));
  if (joined.length < count) timedOut.push('joins');
  const joinSeconds = (performance.now() - joinStart) / 1000;
  const joinCpuMsPerSidecar = joined.length > 0 ? (((await cpuSeconds()) - cpuBeforeJoins) * 1000) / joined.length : null;

  // 2. Channels, spread over the workers.
  const script = fileURLToPath(new URL('./control-plane-sim-worker.js', import.meta.url));
  const workers = Array.from({ length: workerCount }, () => new Worker(script));
  const ownerOf = new Map<number, Worker>();
  const shares: SimulatedSidecar[][] = workers.map(() => []);
  joined.forEach((sidecar, i) => {
    shares[i % workerCount]!.push(sidecar);
    ownerOf.set(sidecar.index, workers[i % workerCount]!);
  });
  const rssBeforeMB = await rssMB();
  const cpuBeforeConnect = await cpuSeconds();
  const workersCpu = async (): Promise<number> => (await Promise.all(workers.map((worker) => readProcessCpuSeconds(worker.child.pid ?? 0, ticks).catch(() => 0)))).reduce((a, b) => a + b, 0);
  const workersCpuBefore = await workersCpu();
  const connectStartedAt = wallNow();
  // Worker i holds its channels at replica i mod the replicas.
  workers.forEach((worker, i) =>
    worker.tell({ cmd: 'open', url: urls[i % urls.length]!, caPem, keyPem: keys.privateKeyPem, sidecars: shares[i]!, concurrency: CONNECT_CONCURRENCY_PER_WORKER, deadline }),
  );
  let connected = 0;
  let snapshots = 0;
  let lastSnapshotAt = connectStartedAt;
  for (const worker of workers) {
    const opened = await worker.next('opened', deadline + 5_000);
    if (opened === undefined) continue;
    connected += opened.connected;
    snapshots += opened.snapshots;
    lastSnapshotAt = Math.max(lastSnapshotAt, opened.lastSnapshotAt);
    opened.errors.forEach(noteError);
  }
  if (snapshots < count) timedOut.push('connect');
  const connectSeconds = (lastSnapshotAt - connectStartedAt) / 1000;
  const connectCpuMsPerSidecar = snapshots > 0 ? ((await cpuSeconds()) - cpuBeforeConnect) * 1000 / snapshots : null;
  const simulatorCpuMsPerSidecar = snapshots > 0 ? ((await workersCpu()) - workersCpuBefore) * 1000 / snapshots : null;
  const rssConnectedMB = await rssMB();

  // 3. Mesh-wide policy changes, each timed to the first message that carries it (a session's
  // version moves only with what is in its scope, so versions alone cannot tell).
  const policyLatencies: number[] = [];
  let policyMissed = 0;
  for (let round = 0; round < rounds && Date.now() < deadline; round++) {
    const action = round % 2 === 0 ? 'deny' : 'allow';
    const phaseDeadline = Math.min(deadline, Date.now() + PHASE_TIMEOUT_MS);
    workers.forEach((worker) => worker.tell({ cmd: 'watch-keys', round, keys: [{ key: 'policy/default', field: 'action', value: action }] }));
    for (const worker of workers) await worker.next('watching', phaseDeadline);
    const changedAt = wallNow();
    const answer = await request(bounded(adminEndpoint), 'PUT', '/v1/policies/default', { action }, { bearerToken: adminToken }).catch((error: Error) => {
      noteError(`policy round ${round}: ${error.message}`);
      return undefined;
    });
    if (answer === undefined) policyMissed += snapshots;
    workers.forEach((worker) => worker.tell({ cmd: 'collect-keys', round, deadline: answer === undefined ? Date.now() : phaseDeadline }));
    for (const worker of workers) {
      const arrivals = await worker.next('key-arrivals', phaseDeadline + 5_000);
      if (arrivals === undefined) continue;
      if (answer !== undefined) policyMissed += arrivals.missing;
      for (const { at } of arrivals.arrivals) policyLatencies.push(at - changedAt);
      arrivals.errors.forEach(noteError);
    }
  }
  if (policyMissed > 0) timedOut.push('policy');

  // 4. A burst of endpoint changes: re-registrations with a new weight, each due at its service's subscribers.
  let cpuUsPerRegistration: number | null = null;
  const endpointLatencies: number[] = [];
  let endpointMissed = 0;
  const changers = joined.filter((_, i) => i % Math.max(1, Math.floor(joined.length / ENDPOINT_CHANGES)) === 0).slice(0, ENDPOINT_CHANGES);
  if (Date.now() < deadline && changers.length > 0) {
    const watch: WatchedKey[] = changers.map((sidecar) => ({ key: `endpoint/${sidecar.service}/${sidecar.sidecarId}`, service: sidecar.service, field: 'weight', value: 7 }));
    const phaseDeadline = Math.min(deadline, Date.now() + PHASE_TIMEOUT_MS);
    workers.forEach((worker) => worker.tell({ cmd: 'watch-keys', round: rounds, keys: watch }));
    for (const worker of workers) await worker.next('watching', phaseDeadline);
    const idleStart = await cpuSeconds();
    await new Promise((resolve) => setTimeout(resolve, IDLE_SAMPLE_MS));
    const idleCpuPerMs = ((await cpuSeconds()) - idleStart) / IDLE_SAMPLE_MS;
    const cpuBefore = await cpuSeconds();
    const burstStart = performance.now();
    const sentAt: Record<string, number> = {};
    for (const worker of workers) {
      const mine = changers.filter((sidecar) => ownerOf.get(sidecar.index) === worker).map((sidecar) => ({ index: sidecar.index, weight: 7, key: `endpoint/${sidecar.service}/${sidecar.sidecarId}` }));
      worker.tell({ cmd: 'reregister', round: rounds, changes: mine });
    }
    for (const worker of workers) Object.assign(sentAt, (await worker.next('reregistered', phaseDeadline))?.sentAt ?? {});
    workers.forEach((worker) => worker.tell({ cmd: 'collect-keys', round: rounds, deadline: phaseDeadline }));
    for (const worker of workers) {
      const arrivals = await worker.next('key-arrivals', phaseDeadline + 5_000);
      if (arrivals === undefined) continue;
      endpointMissed += arrivals.missing;
      for (const { key, at } of arrivals.arrivals) if (sentAt[key] !== undefined) endpointLatencies.push(at - sentAt[key]);
      arrivals.errors.forEach(noteError);
    }
    const burstMs = performance.now() - burstStart;
    cpuUsPerRegistration = (((await cpuSeconds()) - cpuBefore - idleCpuPerMs * burstMs) * 1e6) / changers.length;
    if (endpointMissed > 0) timedOut.push('endpoint');
  } else timedOut.push('endpoint');

  const report: SimulatorReport = {
    sidecars: count,
    workers: workerCount,
    joined: joined.length,
    joinSeconds,
    certsPerSecond: joined.length / joinSeconds,
    joinCpuMsPerSidecar,
    connected,
    snapshots,
    connectSeconds,
    connectCpuMsPerSidecar,
    simulatorCpuMsPerSidecar,
    rssBeforeMB,
    rssConnectedMB,
    policy: { rounds, ...latencies(policyLatencies, policyMissed) },
    endpoint: { changes: changers.length, subscribersPerChange: SIDECARS_PER_SERVICE * UPSTREAMS_PER_SIDECAR, ...latencies(endpointLatencies, endpointMissed) },
    cpuUsPerRegistration,
    timedOut,
    errors,
  };
  process.stdout.write(`${JSON.stringify(report)}\n`);
  // Hold the channels until the harness has read the control plane's memory.
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, HOLD_TIMEOUT_MS);
    process.stdin.on('data', (data: Buffer) => {
      if (data.toString().includes('close')) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  workers.forEach((worker) => worker.tell({ cmd: 'close' }));
  await Promise.all(workers.map((worker) => new Promise((resolve) => (worker.child.exitCode !== null ? resolve(undefined) : worker.child.once('exit', resolve)))));
  return report;
}

main().then(
  () => process.exit(0),
  (error: Error) => {
    process.stderr.write(`control-plane simulator failed: ${error.stack ?? error.message}\n`);
    process.exit(1);
  },
);
