/**
 * Simulated sidecars, in a process of their own, against one control plane:
 *  1. joins COUNT identities with one key and one CSR (the control plane signs each join its
 *     own certificate whatever the CSR says; making COUNT keys would take minutes), timing the CA;
 *  2. opens COUNT sidecar channels, each with its own certificate, registers, and acks every
 *     snapshot and delta as a sidecar does;
 *  3. changes a policy ROUNDS times and records when the delta carrying each change reaches
 *     every session (one process clock for the change and the arrivals).
 * Prints one JSON line (SimulatorReport), then holds the sessions until told `close` on stdin
 * so that the harness can read the control plane's memory with all of them connected.
 *
 * usage: node control-plane-simulator.js URL ADMIN_TOKEN_FILE COUNT ROUNDS TIMEOUT_MS
 */
import { readFile } from 'node:fs/promises';
import WebSocket from 'ws';
import type { ControlPlaneEndpoint } from '../../sidecar/control/api-client.js';
import { fetchPinnedCa, request } from '../../sidecar/control/api-client.js';
import { createCsrPem, generateSidecarKeyPair } from '../../sidecar/identity/keys.js';
import { decodeControlPlaneMessage, encodeControlMessage, MAX_CONTROL_MESSAGE_BYTES, SIDECAR_CHANNEL_PATH } from '../../proto/control.js';
import { parseAdminToken } from '../../proto/tokens.js';
import { percentile } from '../stats.js';

/** Joins in flight at once, as many sidecars starting together would. */
const JOIN_CONCURRENCY = 16;
/** Channel handshakes in flight at once. */
const CONNECT_CONCURRENCY = 64;
/** The config is settled once no session has received anything for this long. */
const QUIET_MS = 2_000;
const POLL_INTERVAL_MS = 20;
/** Joins answer quickly even under load; a slower one is a failure worth reporting. */
const JOIN_TIMEOUT_MS = 30_000;
/**
 * Admin calls wait longer: with thousands of sessions the control plane can be busy for a long
 * while after a registration storm, and how long is part of what the report shows.
 */
const ADMIN_TIMEOUT_MS = 120_000;
/** The sessions give up waiting for `close` after this. */
const HOLD_TIMEOUT_MS = 120_000;
const SIMULATED_SERVICE = 'bench-sim';
/** Fake link ports: the control plane only stores them. */
const FIRST_FAKE_PORT = 20_000;

export interface SimulatorReport {
  joined: number;
  joinSeconds: number;
  certsPerSecond: number;
  connected: number;
  connectSeconds: number;
  /** From the last snapshot until the control plane answered an admin call and the sessions went quiet. */
  settleSeconds: number;
  policy: { rounds: number; samples: number; missed: number; p50Ms: number; p99Ms: number; maxMs: number };
  errors: string[];
}

interface SimulatedSession {
  socket: WebSocket;
  version: number;
  /** When each version first arrived, by version (one entry per snapshot or delta). */
  arrivals: Map<number, number>;
  snapshot: boolean;
}

const [url, adminTokenFile, countText, roundsText, timeoutText] = process.argv.slice(2);
const count = Number(countText);
const rounds = Number(roundsText);
const timeoutMs = Number(timeoutText);
if (url === undefined || adminTokenFile === undefined || ![count, rounds, timeoutMs].every((value) => Number.isInteger(value) && value > 0)) {
  process.stderr.write('usage: control-plane-simulator URL ADMIN_TOKEN_FILE COUNT ROUNDS TIMEOUT_MS\n');
  process.exit(2);
}
const errors: string[] = [];
/** Distinct errors only, and few: one broken join repeats itself for every sidecar. */
const noteError = (text: string): void => {
  if (errors.length < 10 && !errors.includes(text)) errors.push(text);
};
let lastArrivalAt = performance.now();

/** Runs `task(i)` for i in 0..total-1 with at most `concurrency` at once; stops at the deadline. */
async function inParallel(total: number, concurrency: number, deadline: number, task: (index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < total && Date.now() < deadline) {
      const index = next++;
      await task(index).catch((error: Error) => noteError(error.message));
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, total) }, () => worker()));
}

async function until(condition: () => boolean, deadline: number): Promise<boolean> {
  while (!condition()) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, POLL_INTERVAL_MS));
  }
  return true;
}

function openSession(index: number, certPem: string, keyPem: string, caPem: string, sessions: SimulatedSession[]): Promise<void> {
  const channelUrl = new URL(SIDECAR_CHANNEL_PATH, url);
  channelUrl.protocol = 'wss:';
  const socket = new WebSocket(channelUrl, { ca: [caPem], key: keyPem, cert: certPem, maxPayload: MAX_CONTROL_MESSAGE_BYTES, handshakeTimeout: 30_000 });
  const session: SimulatedSession = { socket, version: -1, arrivals: new Map(), snapshot: false };
  socket.on('message', (data: Buffer) => {
    // The arrival time is taken before decoding, so the simulator's own work counts as little as it can.
    const arrivedAt = performance.now();
    lastArrivalAt = arrivedAt;
    try {
      const message = decodeControlPlaneMessage(data);
      if (message.type === 'snapshot' || message.type === 'delta') {
        if (message.type === 'snapshot') session.snapshot = true;
        if (!session.arrivals.has(message.version)) session.arrivals.set(message.version, arrivedAt);
        session.version = Math.max(session.version, message.version);
        socket.send(encodeControlMessage({ type: 'ack', version: message.version }));
      } else if (message.type === 'error') {
        noteError(`session ${index}: ${message.code}: ${message.message}`);
      }
    } catch (error) {
      noteError(`session ${index}: ${(error as Error).message}`);
    }
  });
  socket.on('close', (code) => {
    if (code !== 1000 && code !== 1005) noteError(`session ${index} closed by the control plane (${code})`);
  });
  return new Promise((resolve, reject) => {
    socket.once('open', () => {
      sessions.push(session);
      socket.send(encodeControlMessage({ type: 'register', address: `127.0.0.1:${FIRST_FAKE_PORT + (index % 40_000)}`, zone: 'bench', weight: 1 }));
      resolve();
    });
    socket.once('error', (error) => reject(new Error(`session ${index}: ${error.message}`)));
  });
}

async function main(): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const adminToken = (await readFile(adminTokenFile!, 'utf8')).trim();
  const admin = parseAdminToken(adminToken);
  const caPem = await fetchPinnedCa(url!, admin.caFingerprint);
  const endpoint: ControlPlaneEndpoint = { url: url!, trustDomain: admin.trustDomain, caPems: [caPem], timeoutMs: JOIN_TIMEOUT_MS };
  const adminEndpoint: ControlPlaneEndpoint = { ...endpoint, timeoutMs: ADMIN_TIMEOUT_MS };
  const { token } = (await request(adminEndpoint, 'POST', '/v1/tokens', { service: SIMULATED_SERVICE, ttlSeconds: 3600 }, { bearerToken: adminToken })) as { token: string };
  const keys = await generateSidecarKeyPair();
  const csrPem = await createCsrPem(keys.privateKeyPem, SIMULATED_SERVICE);

  const certPems: string[] = [];
  const joinStart = performance.now();
  await inParallel(count, JOIN_CONCURRENCY, deadline, async () => {
    const answer = (await request(endpoint, 'POST', '/v1/join', { token, csrPem, service: SIMULATED_SERVICE })) as { certPem: string };
    certPems.push(answer.certPem);
  });
  const joinSeconds = (performance.now() - joinStart) / 1000;

  const sessions: SimulatedSession[] = [];
  const connectStart = performance.now();
  await inParallel(certPems.length, CONNECT_CONCURRENCY, deadline, (index) => openSession(index, certPems[index]!, keys.privateKeyPem, caPem, sessions));
  if (!(await until(() => sessions.every((session) => session.snapshot), deadline))) noteError('not every session got its snapshot in time');
  const connectSeconds = (performance.now() - connectStart) / 1000;
  // Registering N endpoints sends deltas to everyone; time the policy only once that has
  // settled: the control plane answers again and the sessions have gone quiet.
  const settleStart = performance.now();
  await request(adminEndpoint, 'GET', '/v1/policies', undefined, { bearerToken: adminToken }).catch((error: Error) => noteError(`settling: ${error.message}`));
  const answeredAt = performance.now();
  await until(() => performance.now() - lastArrivalAt > QUIET_MS, deadline);
  // Busy until the later of the admin answer and the last message; the quiet wait is not counted.
  const settleSeconds = (Math.max(answeredAt, lastArrivalAt) - settleStart) / 1000;

  const latenciesMs: number[] = [];
  let missed = 0;
  for (let round = 0; round < rounds; round++) {
    const changedAt = performance.now();
    const rule = { from: `bench-src-${round}`, to: SIMULATED_SERVICE, action: round % 2 === 0 ? 'deny' : 'allow' };
    const answer = (await request(adminEndpoint, 'PUT', '/v1/policies/rules', rule, { bearerToken: adminToken }).catch((error: Error) => {
      noteError(`policy round ${round}: ${error.message}`);
      return undefined;
    })) as { version: number } | undefined;
    if (answer === undefined) {
      missed += sessions.length;
      continue;
    }
    const reachedAll = await until(() => sessions.every((session) => session.version >= answer.version), deadline);
    for (const session of sessions) {
      const arrivedAt = [...session.arrivals].filter(([version]) => version >= answer.version).map(([, at]) => at).sort((a, b) => a - b)[0];
      if (arrivedAt === undefined) missed += 1;
      else latenciesMs.push(arrivedAt - changedAt);
    }
    if (!reachedAll) noteError(`policy round ${round}: version ${answer.version} did not reach every session in time`);
    await until(() => performance.now() - lastArrivalAt > QUIET_MS / 4, deadline);
  }

  const report: SimulatorReport = {
    joined: certPems.length,
    joinSeconds,
    certsPerSecond: certPems.length / joinSeconds,
    connected: sessions.filter((session) => session.socket.readyState === WebSocket.OPEN).length,
    connectSeconds,
    settleSeconds,
    policy: { rounds, samples: latenciesMs.length, missed, p50Ms: percentile(latenciesMs, 50), p99Ms: percentile(latenciesMs, 99), maxMs: latenciesMs.length === 0 ? NaN : Math.max(...latenciesMs) },
    errors,
  };
  process.stdout.write(`${JSON.stringify(report)}\n`);

  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, HOLD_TIMEOUT_MS);
    process.stdin.setEncoding('utf8').on('data', () => {
      clearTimeout(timer);
      resolve();
    });
    process.stdin.once('end', () => {
      clearTimeout(timer);
      resolve();
    });
  });
  for (const session of sessions) session.socket.terminate();
  process.exit(0);
}

main().catch((error: Error) => {
  process.stderr.write(`control-plane simulator failed: ${error.message}\n`);
  process.exit(1);
});
