/**
 * One worker process of the control-plane simulator (control-plane-simulator.ts forks several):
 * holds many real sidecar channels (WebSocket over mutual TLS, each with its own certificate),
 * registers each on channel 2 with its upstreams, acks every snapshot and delta as a sidecar
 * does, and records arrival times the coordinator asks about. Times are wall-clock
 * milliseconds (`performance.timeOrigin + performance.now()`), comparable across processes on
 * one machine.
 *
 * Driven over IPC by {@link WorkerCommand}s; answers with {@link WorkerEvent}s.
 */
import WebSocket from 'ws';
import type { ControlPlaneMessage } from '../../proto/control.js';
import { CHANNEL_VERSION, decodeControlPlaneMessage, encodeControlMessage, MAX_CONTROL_MESSAGE_BYTES, SIDECAR_CHANNEL_PATH } from '../../proto/control.js';

/** One simulated sidecar: its certificate, service and upstreams. */
export interface SimulatedSidecar {
  index: number;
  certPem: string;
  service: string;
  upstreams: string[];
  /** Fake link port: the control plane only stores it. */
  port: number;
}

/**
 * A key to watch: the first message carrying `key` whose value has `field` equal to `value` is
 * timed, at every session routing to `service` (at every session when absent).
 */
export interface WatchedKey {
  key: string;
  service?: string;
  field: 'weight' | 'action';
  value: number | string;
}

export type WorkerCommand =
  | { cmd: 'open'; url: string; caPem: string; keyPem: string; sidecars: SimulatedSidecar[]; concurrency: number; deadline: number }
  | { cmd: 'watch-keys'; round: number; keys: WatchedKey[] }
  | { cmd: 'reregister'; round: number; changes: Array<{ index: number; weight: number; key: string }> }
  | { cmd: 'collect-keys'; round: number; deadline: number }
  | { cmd: 'close' };

export type WorkerEvent =
  | { evt: 'opened'; connected: number; snapshots: number; lastSnapshotAt: number; errors: string[] }
  | { evt: 'watching'; round: number }
  | { evt: 'reregistered'; round: number; sentAt: Record<string, number> }
  | { evt: 'key-arrivals'; round: number; arrivals: Array<{ key: string; at: number }>; missing: number; errors: string[] };

interface Session {
  sidecar: SimulatedSidecar;
  socket: WebSocket;
  version: number;
  snapshotAt: number | undefined;
  /** When each config version first arrived. */
  arrivals: Map<number, number>;
}

const now = (): number => performance.timeOrigin + performance.now();
const POLL_MS = 20;
/** Tries to open one channel before the simulated sidecar gives up. */
const OPEN_ATTEMPTS = 3;

const sessions: Session[] = [];
const errors: string[] = [];
/** key → weight watched; arrivals recorded per (session, key). */
let watched = new Map<string, WatchedKey>();
let keyArrivals = new Map<Session, Map<string, number>>();

function noteError(text: string): void {
  if (errors.length < 10 && !errors.includes(text)) errors.push(text);
}

function send(event: WorkerEvent): void {
  process.send?.(event);
}

function onMessage(session: Session, data: Buffer): void {
  const arrivedAt = now();
  let message: ControlPlaneMessage;
  try {
    message = decodeControlPlaneMessage(data);
  } catch (error) {
    noteError(`session ${session.sidecar.index}: ${(error as Error).message}`);
    return;
  }
  if (message.type === 'error') noteError(`session ${session.sidecar.index}: ${message.code}: ${message.message}`);
  if (message.type !== 'snapshot' && message.type !== 'delta') return;
  if (message.type === 'delta' && message.baseVersion !== session.version) {
    noteError(`session ${session.sidecar.index}: delta on base ${message.baseVersion}, holding ${session.version}`);
    session.socket.send(encodeControlMessage({ type: 'nack', version: message.version, haveVersion: session.version }));
    return;
  }
  if (message.type === 'snapshot') session.snapshotAt ??= arrivedAt;
  if (!session.arrivals.has(message.version)) session.arrivals.set(message.version, arrivedAt);
  session.version = message.version;
  session.socket.send(encodeControlMessage({ type: 'ack', version: message.version }));
  if (watched.size === 0) return;
  const entries = message.type === 'snapshot' ? message.entries : message.changes;
  for (const [key, value] of entries) {
    const watch = watched.get(key);
    if (watch === undefined || value === null || (value as Record<string, unknown>)[watch.field] !== watch.value) continue;
    let seen = keyArrivals.get(session);
    if (seen === undefined) keyArrivals.set(session, (seen = new Map<string, number>()));
    if (!seen.has(key)) seen.set(key, arrivedAt);
  }
}

function openSession(url: string, caPem: string, keyPem: string, sidecar: SimulatedSidecar): Promise<void> {
  const channelUrl = new URL(SIDECAR_CHANNEL_PATH, url);
  channelUrl.protocol = 'wss:';
  const socket = new WebSocket(channelUrl, { ca: [caPem], key: keyPem, cert: sidecar.certPem, maxPayload: MAX_CONTROL_MESSAGE_BYTES, handshakeTimeout: 60_000, perMessageDeflate: false });
  const session: Session = { sidecar, socket, version: 0, snapshotAt: undefined, arrivals: new Map() };
  socket.on('message', (data: Buffer) => onMessage(session, data));
  // Errors after the channel opened end in 'close' (noted there); before, they reject below.
  socket.on('error', () => undefined);
  socket.on('close', (code) => {
    if (code !== 1000 && code !== 1005) noteError(`session ${sidecar.index} closed by the control plane (${code})`);
  });
  return new Promise((resolve, reject) => {
    socket.once('open', () => {
      sessions.push(session);
      socket.send(encodeControlMessage({ type: 'register', address: `127.0.0.1:${sidecar.port}`, zone: 'bench', weight: 1, channel: CHANNEL_VERSION, services: sidecar.upstreams }));
      resolve();
    });
    socket.once('error', (error) => reject(new Error(`session ${sidecar.index}: ${error.message}`)));
  });
}

async function until(condition: () => boolean, deadline: number): Promise<boolean> {
  while (!condition()) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  return true;
}

async function open(command: Extract<WorkerCommand, { cmd: 'open' }>): Promise<void> {
  let next = 0;
  const opener = async (): Promise<void> => {
    while (next < command.sidecars.length && Date.now() < command.deadline) {
      const sidecar = command.sidecars[next++]!;
      // A sidecar whose channel fails to open tries again after a pause, as a real one does.
      for (let attempt = 1; attempt <= OPEN_ATTEMPTS && Date.now() < command.deadline; attempt++) {
        const opened = await openSession(command.url, command.caPem, command.keyPem, sidecar).then(
          () => true,
          (error: Error) => {
            noteError(`${error.message} (attempt ${attempt} of ${OPEN_ATTEMPTS})`);
            return false;
          },
        );
        if (opened) break;
        await new Promise((resolve) => setTimeout(resolve, 500 * attempt));
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(command.concurrency, command.sidecars.length) }, () => opener()));
  await until(() => sessions.every((session) => session.snapshotAt !== undefined), command.deadline);
  const snapshots = sessions.filter((session) => session.snapshotAt !== undefined);
  const lastSnapshotAt = Math.max(0, ...snapshots.map((session) => session.snapshotAt!));
  send({ evt: 'opened', connected: sessions.length, snapshots: snapshots.length, lastSnapshotAt, errors: [...errors] });
}

function reregister(command: Extract<WorkerCommand, { cmd: 'reregister' }>): void {
  const sentAt: Record<string, number> = {};
  for (const change of command.changes) {
    const session = sessions.find((candidate) => candidate.sidecar.index === change.index);
    if (session === undefined) continue;
    const { port } = session.sidecar;
    sentAt[change.key] = now();
    session.socket.send(encodeControlMessage({ type: 'register', address: `127.0.0.1:${port}`, zone: 'bench', weight: change.weight, channel: CHANNEL_VERSION, services: session.sidecar.upstreams }));
  }
  send({ evt: 'reregistered', round: command.round, sentAt });
}

async function collectKeys(command: Extract<WorkerCommand, { cmd: 'collect-keys' }>): Promise<void> {
  // Each watched key is due at the sessions that route to its service.
  const dueOf = new Map(sessions.map((session) => [session, [...watched.values()].filter((watch) => watch.service === undefined || session.sidecar.upstreams.includes(watch.service))]));
  const due = (session: Session): WatchedKey[] => dueOf.get(session) ?? [];
  const complete = (): boolean => sessions.every((session) => due(session).every((watch) => keyArrivals.get(session)?.has(watch.key) === true));
  await until(complete, command.deadline);
  const arrivals: Array<{ key: string; at: number }> = [];
  let missing = 0;
  for (const session of sessions) {
    for (const watch of due(session)) {
      const at = keyArrivals.get(session)?.get(watch.key);
      if (at === undefined) missing++;
      else arrivals.push({ key: watch.key, at });
    }
  }
  send({ evt: 'key-arrivals', round: command.round, arrivals, missing, errors: [...errors] });
  watched = new Map();
  keyArrivals = new Map();
}

process.on('message', (command: WorkerCommand) => {
  switch (command.cmd) {
    case 'open':
      void open(command);
      break;
    case 'watch-keys':
      watched = new Map(command.keys.map((watch) => [watch.key, watch]));
      keyArrivals = new Map();
      send({ evt: 'watching', round: command.round });
      break;
    case 'reregister':
      reregister(command);
      break;
    case 'collect-keys':
      void collectKeys(command);
      break;
    case 'close':
      for (const session of sessions) session.socket.terminate();
      process.disconnect?.();
      setTimeout(() => process.exit(0), 100).unref();
      break;
  }
});
process.on('disconnect', () => process.exit(0));
