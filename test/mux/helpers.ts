/**
 * Shared pieces of the multiplexer tests: real socket pairs on loopback (TCP and TLS 1.3),
 * session pairs, byte senders and checkers, and a raw peer that speaks frames by hand.
 */

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect, createServer as createTlsServer } from 'node:tls';
import { FrameDecoder, FrameEncoder } from '../../proto/index.js';
import type { Frame } from '../../proto/index.js';
import { Session } from '../../sidecar/mux/index.js';
import type { MuxStream, SessionInit } from '../../sidecar/mux/index.js';

/** Two ends of one connection. */
export interface SocketPair {
  client: Socket;
  server: Socket;
}

/** A TCP connection on 127.0.0.1, port chosen by the kernel. */
export async function tcpPair(): Promise<SocketPair> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  const accepted = new Promise<Socket>((resolve) => server.once('connection', resolve));
  const client = connect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => client.once('connect', resolve).once('error', reject));
  const serverSocket = await accepted;
  server.close();
  return { client, server: serverSocket };
}

/** A throwaway self-signed certificate and key (P-256), made with openssl. */
export function selfSignedCertificate(): { cert: string; key: string } {
  const dir = mkdtempSync(join(tmpdir(), 'trellis-mux-test-'));
  try {
    const keyPath = join(dir, 'key.pem');
    const certPath = join(dir, 'cert.pem');
    execFileSync(
      'openssl',
      ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyPath, '-out', certPath,
        '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost'],
      { stdio: 'ignore' },
    );
    return { cert: readFileSync(certPath, 'utf8'), key: readFileSync(keyPath, 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A mutually authenticated TLS 1.3 connection on 127.0.0.1 (both ends present the same cert). */
export async function tlsPair(): Promise<SocketPair> {
  const { cert, key } = selfSignedCertificate();
  const options = { cert, key, ca: [cert], minVersion: 'TLSv1.3' as const };
  const server = createTlsServer({ ...options, requestCert: true, rejectUnauthorized: true });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  const accepted = new Promise<Socket>((resolve) => server.once('secureConnection', resolve));
  const client = tlsConnect({ ...options, port, host: '127.0.0.1', servername: 'localhost' });
  await new Promise<void>((resolve, reject) => client.once('secureConnect', resolve).once('error', reject));
  const serverSocket = await accepted;
  server.close();
  return { client, server: serverSocket };
}

/** A dialer session on the client end and an acceptor on the server end. */
export function sessionPair(
  sockets: SocketPair,
  dialerInit: Partial<SessionInit> = {},
  acceptorInit: Partial<SessionInit> = {},
): { dialer: Session; acceptor: Session } {
  return {
    dialer: new Session(sockets.client, { ...dialerInit, role: 'dialer' }),
    acceptor: new Session(sockets.server, { ...acceptorInit, role: 'acceptor' }),
  };
}

/** Resolves with the arguments of the next `event` of `emitter`; rejects if `failEvent` comes first. */
export function next<T extends unknown[]>(
  emitter: NodeJS.EventEmitter,
  event: string,
  failEvent?: string,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onEvent = (...args: unknown[]): void => {
      if (failEvent !== undefined) emitter.off(failEvent, onFail);
      resolve(args as T);
    };
    const onFail = (...args: unknown[]): void => {
      emitter.off(event, onEvent);
      reject(new Error(`${failEvent} before ${event}: ${args.map(String).join(' ')}`));
    };
    emitter.once(event, onEvent);
    if (failEvent !== undefined) emitter.once(failEvent, onFail);
  });
}

/** Writes `data` in `chunkBytes` pieces, waiting for 'drain' whenever write() says so, then ends. */
export async function sendAll(stream: MuxStream, data: Buffer, chunkBytes = 64 * 1024): Promise<void> {
  for (let offset = 0; offset < data.length; offset += chunkBytes) {
    if (!stream.write(data.subarray(offset, offset + chunkBytes))) await next(stream, 'drain', 'reset');
  }
  stream.end();
}

/** What a stream delivered up to its 'end'. */
export interface Received {
  bytes: number;
  sha256: string;
}

/** Consumes everything a stream delivers until its 'end'; rejects on 'reset'. */
export function receiveAll(stream: MuxStream): Promise<Received> {
  const hash = createHash('sha256');
  let bytes = 0;
  stream.on('data', (payload: Buffer) => {
    hash.update(payload);
    bytes += payload.length;
    stream.consumed(payload.length);
  });
  return next(stream, 'end', 'reset').then(() => ({ bytes, sha256: hash.digest('hex') }));
}

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Sends back everything the stream delivers, returning credit only once it is sent on. */
export function echo(stream: MuxStream): void {
  let heldBytes = 0;
  stream.on('data', (payload: Buffer) => {
    if (stream.write(payload)) stream.consumed(payload.length);
    else heldBytes += payload.length;
  });
  stream.on('drain', () => {
    stream.consumed(heldBytes);
    heldBytes = 0;
  });
  stream.on('end', () => stream.end());
}

/** A peer that writes hand-made frames and records the frames it reads. */
export class RawPeer {
  readonly frames: Frame[] = [];
  /** Resolves when the other end ends or closes the connection. */
  readonly closed: Promise<void>;
  readonly #encoder = new FrameEncoder();
  readonly #decoder = new FrameDecoder();
  readonly #waiters: { predicate: (frame: Frame) => boolean; resolve: (frame: Frame) => void }[] = [];

  constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) =>
      this.#decoder.push(chunk, (frame) => {
        this.frames.push(frame);
        for (const waiter of this.#waiters.filter((w) => w.predicate(frame))) {
          this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
          waiter.resolve(frame);
        }
      }),
    );
    socket.on('error', () => {});
    this.closed = new Promise((resolve) => {
      socket.once('end', resolve);
      socket.once('close', resolve);
    });
  }

  send(...frames: Frame[]): void {
    for (const frame of frames) for (const buffer of this.#encoder.encode(frame)) this.socket.write(buffer);
  }

  /** The first frame, already read or still to come, of which `predicate` holds. */
  waitFor(predicate: (frame: Frame) => boolean): Promise<Frame> {
    const seen = this.frames.find(predicate);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve) => this.#waiters.push({ predicate, resolve }));
  }
}

/** A stream the peer opened, with its incoming bytes already being collected. */
export interface Accepted {
  stream: MuxStream;
  received: Promise<Received>;
}

/**
 * An `onStream` that starts {@link receiveAll} on each of the peer's streams at once (before
 * any of its frames can be missed) and queues them, and a way to await the next one.
 */
export function streamInbox(): { onStream: (stream: MuxStream) => void; nextStream: () => Promise<Accepted> } {
  const arrived: Accepted[] = [];
  const waiting: ((accepted: Accepted) => void)[] = [];
  return {
    onStream: (stream) => {
      const accepted = { stream, received: receiveAll(stream) };
      // Tests that reset the stream never await this: keep its rejection from going unhandled.
      accepted.received.catch(() => {});
      const waiter = waiting.shift();
      if (waiter !== undefined) waiter(accepted);
      else arrived.push(accepted);
    },
    nextStream: () => {
      const accepted = arrived.shift();
      if (accepted !== undefined) return Promise.resolve(accepted);
      return new Promise((resolve) => waiting.push(resolve));
    },
  };
}
