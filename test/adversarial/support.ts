// Pieces of the adversarial tests: the victim sidecar's memory from /proc, a steady echo flow
// through it (in a process of its own) whose rate is measured before and during an attack, certificates forged with the
// mesh CA's own key, and a raw TLS peer that counts what the sidecar answers.
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { spawn } from 'node:child_process';
import { createPublicKey } from 'node:crypto';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { CertificateAuthority, leafKeyOf } from '../../control-plane/ca.js';
import { generateSidecarKeyPair } from '../../sidecar/identity/keys.js';
import type { Frame } from '../../proto/index.js';
import { FrameDecoder, FrameEncoder, FrameType } from '../../proto/index.js';

/** Resident set size of process `pid` now, in bytes (VmRSS of /proc/PID/status). */
export async function rssOf(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kib = /^VmRSS:\s+(\d+) kB/m.exec(status)?.[1];
  if (kib === undefined) throw new Error(`no VmRSS for process ${pid}`);
  return Number(kib) * 1024;
}

/** Samples the RSS of `pid` every 100 ms until stopped; `stop()` resolves with the peak seen. */
export function sampleRss(pid: number): { stop(): Promise<number> } {
  let peakBytes = 0;
  let sampling = Promise.resolve();
  const timer = setInterval(() => {
    sampling = sampling.then(async () => {
      peakBytes = Math.max(peakBytes, await rssOf(pid));
    });
  }, 100);
  return {
    stop: async () => {
      clearInterval(timer);
      await sampling;
      return Math.max(peakBytes, await rssOf(pid));
    },
  };
}

/** A mark of the flow process: bytes echoed so far, at its own clock. */
export interface FlowMark {
  bytes: number;
  atMs: number;
}

/**
 * The other traffic of an attack, in a process of its own (so that the attacker's work in the
 * test process does not slow it): an echo app, and a flow through a sidecar to that app that
 * keeps bytes in flight and checks every echoed byte (see flow-process.ts).
 */
export class FlowProcess {
  readonly #child: ChildProcessWithoutNullStreams;
  readonly #lines: string[] = [];
  readonly #waiters: ((line: string) => void)[] = [];
  #exited = false;

  private constructor(child: ChildProcessWithoutNullStreams) {
    this.#child = child;
    let buffered = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      buffered += chunk;
      for (let at = buffered.indexOf('\n'); at >= 0; at = buffered.indexOf('\n')) {
        const line = buffered.slice(0, at);
        buffered = buffered.slice(at + 1);
        const waiter = this.#waiters.shift();
        if (waiter !== undefined) waiter(line);
        else this.#lines.push(line);
      }
    });
    child.stderr.resume();
    child.once('exit', () => {
      this.#exited = true;
      for (const waiter of this.#waiters.splice(0)) waiter('error the flow process exited');
    });
  }

  /** Starts the process; resolves with it and its echo app's address once it listens. */
  static async start(): Promise<{ flow: FlowProcess; echoAddress: string }> {
    const flow = new FlowProcess(spawn(process.execPath, [fileURLToPath(new URL('./flow-process.js', import.meta.url))]));
    const [, port] = (await flow.#line()).split(' ');
    return { flow, echoAddress: `127.0.0.1:${port ?? ''}` };
  }

  /** Starts the flow through `port` (a sidecar's upstream port for the echo app's service). */
  async connect(port: number): Promise<void> {
    this.#child.stdin.write(`flow ${port}\n`);
    await this.#line();
  }

  /** Bytes echoed so far; rejects if the flow failed (a byte differed, the connection closed). */
  async mark(): Promise<FlowMark> {
    this.#child.stdin.write('mark\n');
    const [kind, bytes, atMs] = (await this.#line()).split(' ');
    if (kind !== 'mark') throw new Error(`the echo flow failed: ${[kind, bytes, atMs].join(' ')}`);
    return { bytes: Number(bytes), atMs: Number(atMs) };
  }

  /** Bytes per second between two marks. */
  static rate(from: FlowMark, to: FlowMark): number {
    return ((to.bytes - from.bytes) * 1000) / (to.atMs - from.atMs);
  }

  async stop(): Promise<void> {
    if (this.#exited) return;
    const exited = once(this.#child, 'exit');
    this.#child.kill();
    await exited;
  }

  #line(): Promise<string> {
    const line = this.#lines.shift();
    if (line !== undefined) return Promise.resolve(line);
    if (this.#exited) return Promise.resolve('error the flow process exited');
    return new Promise((resolve) => this.#waiters.push(resolve));
  }
}

/** What a forged leaf claims: its URI SANs and its validity. */
export interface ForgedLeaf {
  uriSans: string[];
  /** Milliseconds from now at which the certificate stops being valid. @default one hour */
  notAfterFromNowMs?: number;
}

/**
 * A key and a leaf signed with the mesh CA's own key (read from the control plane's data
 * directory), claiming whatever `leaf` says: what a holder of the CA key, or a bug in the
 * issuer, could make.
 */
export async function forgeWithMeshCa(cpDataDir: string, trustDomain: string, leaf: ForgedLeaf): Promise<{ key: string; cert: string }> {
  const nowMs = Date.now();
  const notAfterMs = nowMs + (leaf.notAfterFromNowMs ?? 3_600_000);
  // The CA stamps notBefore one clock-skew allowance before `now`: shift `now` so that an
  // expired leaf also started in the past.
  const issueAtMs = Math.min(nowMs, notAfterMs - 3_600_000);
  const ca = await CertificateAuthority.loadOrCreate({ dataDir: cpDataDir, trustDomain, logger: pino({ level: 'silent' }), now: () => issueAtMs });
  const keys = await generateSidecarKeyPair();
  const issued = ca.issue(leafKeyOf(createPublicKey(keys.publicKeyPem)), { commonName: 'sc-forged00000', uriSans: leaf.uriSans, extKeyUsage: { serverAuth: true, clientAuth: true } }, notAfterMs - issueAtMs);
  return { key: keys.privateKeyPem, cert: issued.certPem };
}

/** What became of a TLS client the link listener should refuse. */
export interface Refusal {
  /** Bytes the listener sent after the handshake (frames): 0 for a refused client. */
  bytesReceived: number;
  /** Whether the TLS client's side of the handshake completed before the refusal. */
  handshook: boolean;
}

/**
 * Connects to `address` with `identity` (or none), sends a frame's worth of bytes once its
 * side of the handshake is done (TLS 1.3 checks the client certificate after that), and
 * resolves once the listener closed the connection.
 */
export async function tryLink(address: string, identity: { key?: string; cert?: string }): Promise<Refusal> {
  const [host, port] = address.split(':');
  const socket = tls.connect({ host, port: Number(port), rejectUnauthorized: false, ...identity });
  let bytesReceived = 0;
  let handshook = false;
  socket.on('data', (chunk: Buffer) => (bytesReceived += chunk.length));
  socket.on('error', () => undefined);
  socket.once('secureConnect', () => {
    handshook = true;
    const encoder = new FrameEncoder();
    for (const buffer of encoder.encode({ type: FrameType.HELLO, minVersion: 1, maxVersion: 2, initialWindowBytes: 65536 })) socket.write(buffer);
  });
  // Not events.once: it rejects on the 'error' a refused handshake emits first.
  await new Promise((resolve) => socket.once('close', resolve));
  return { bytesReceived, handshook };
}

/**
 * A raw link peer with a mesh identity that writes whatever bytes a test wants and decodes
 * what the sidecar answers, counting frames by type (and RESETs by code) without keeping them
 * all, so that a flood of 100,000 answers costs little.
 */
export class CountingPeer {
  readonly socket: tls.TLSSocket;
  readonly closed: Promise<void>;
  readonly countsByType = new Map<number, number>();
  readonly resetsByCode = new Map<number, number>();
  /** The GOAWAY the sidecar sent, if any. */
  goAway: Frame | undefined;
  readonly #encoder = new FrameEncoder();
  readonly #decoder = new FrameDecoder();
  readonly #listeners = new Set<() => void>();

  private constructor(socket: tls.TLSSocket) {
    this.socket = socket;
    socket.on('error', () => undefined);
    socket.on('data', (chunk: Buffer) => {
      this.#decoder.push(chunk, (frame) => {
        this.countsByType.set(frame.type, (this.countsByType.get(frame.type) ?? 0) + 1);
        if (frame.type === FrameType.RESET) this.resetsByCode.set(frame.code, (this.resetsByCode.get(frame.code) ?? 0) + 1);
        if (frame.type === FrameType.GOAWAY) this.goAway = frame;
      });
      for (const listener of this.#listeners) listener();
    });
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
  }

  /** A TLS link to `address` as `identity`; with `hello` (the default), HELLO is sent first. */
  static async connect(address: string, identity: { key: string; cert: string; ca: string[] }, hello = true): Promise<CountingPeer> {
    const [host, port] = address.split(':');
    const socket = tls.connect({ host, port: Number(port), ...identity, checkServerIdentity: () => undefined });
    await once(socket, 'secureConnect');
    const peer = new CountingPeer(socket);
    if (hello) peer.send({ type: FrameType.HELLO, minVersion: 1, maxVersion: 2, initialWindowBytes: 256 * 1024 });
    return peer;
  }

  count(type: FrameType): number {
    return this.countsByType.get(type) ?? 0;
  }

  send(...frames: Frame[]): void {
    for (const frame of frames) for (const buffer of this.#encoder.encode(frame)) this.socket.write(buffer);
  }

  /** Writes `buffers`, waiting for 'drain' whenever the socket asks; stops if it closes. */
  async writeAll(buffers: Iterable<Buffer>): Promise<void> {
    for (const buffer of buffers) {
      if (this.socket.destroyed) return;
      if (!this.socket.write(buffer)) {
        await new Promise<void>((resolve) => {
          const done = (): void => {
            this.socket.off('drain', done).off('close', done);
            resolve();
          };
          this.socket.once('drain', done).once('close', done);
        });
      }
    }
  }

  /** Resolves once `condition` holds (checked on every read) or the link closes. */
  until(condition: () => boolean): Promise<void> {
    if (condition() || this.socket.destroyed) return Promise.resolve();
    return new Promise((resolve) => {
      const check = (): void => {
        if (!condition()) return;
        this.#listeners.delete(check);
        resolve();
      };
      this.#listeners.add(check);
      void this.closed.then(() => {
        this.#listeners.delete(check);
        resolve();
      });
    });
  }
}

/** A frame's bytes as the wire carries them: a u16 length and the header bytes given. */
export function rawFrame(header: Buffer, declaredLength = header.length): Buffer {
  const prefix = Buffer.alloc(2);
  prefix.writeUInt16BE(declaredLength);
  return Buffer.concat([prefix, header]);
}
