import { randomBytes } from 'node:crypto';
import type net from 'node:net';
import { connect, readAll, sha256 } from './apps.js';

/** What a {@link TrafficLoad} saw: streams that ended byte-exact, and every one that did not. */
export interface TrafficResult {
  longStreamsOk: number;
  shortStreamsOk: number;
  failures: string[];
}

/**
 * Continuous traffic through an upstream port to a sink-source app (`startSinkSourceApp`):
 * `longStreams` connections that trickle data until stopped (they span whatever happens in
 * between), and short connections one after another. Every stream is checked byte for byte
 * in both directions. Bounded: at most `maxShortStreams` short ones, and nothing after stop().
 */
export class TrafficLoad {
  readonly #port: number;
  readonly #appBytes: Buffer;
  readonly #failures: string[] = [];
  #stopped = false;
  #longOk = 0;
  #shortOk = 0;
  readonly #running: Promise<void>[] = [];

  constructor(init: { port: number; appBytes: Buffer; longStreams?: number; maxShortStreams?: number }) {
    this.#port = init.port;
    this.#appBytes = init.appBytes;
    for (let i = 0; i < (init.longStreams ?? 4); i += 1) this.#running.push(this.#longStream(i));
    this.#running.push(this.#shortStreams(init.maxShortStreams ?? 5000));
  }

  /** Short streams completed byte-exact so far. */
  get shortStreamsOk(): number {
    return this.#shortOk;
  }

  get failures(): readonly string[] {
    return this.#failures;
  }

  /** Ends the long streams (half-close), stops starting short ones, and waits for all to finish. */
  async stop(): Promise<TrafficResult> {
    this.#stopped = true;
    await Promise.all(this.#running);
    return { longStreamsOk: this.#longOk, shortStreamsOk: this.#shortOk, failures: [...this.#failures] };
  }

  async #longStream(index: number): Promise<void> {
    try {
      const socket = await connect(this.#port);
      const reply = readAll(socket);
      const sent: Buffer[] = [];
      while (!this.#stopped) {
        const chunk = randomBytes(8 * 1024);
        sent.push(chunk);
        if (!socket.write(chunk)) await drained(socket);
        await pause(50);
      }
      socket.end();
      if (this.#check(`long stream ${index}`, await reply, Buffer.concat(sent))) this.#longOk += 1;
    } catch (error) {
      this.#failures.push(`long stream ${index}: ${(error as Error).message}`);
    }
  }

  async #shortStreams(max: number): Promise<void> {
    for (let i = 0; i < max && !this.#stopped; i += 1) {
      try {
        const socket = await connect(this.#port);
        const reply = readAll(socket);
        const sent = randomBytes(32 * 1024);
        socket.end(sent);
        if (this.#check(`short stream ${i}`, await reply, sent)) this.#shortOk += 1;
      } catch (error) {
        this.#failures.push(`short stream ${i}: ${(error as Error).message}`);
      }
      await pause(20);
    }
  }

  /** The app sends its bytes, then the sha256 (hex) of all it received. */
  #check(what: string, reply: Buffer, sent: Buffer): boolean {
    const expected = Buffer.concat([this.#appBytes, Buffer.from(sha256(sent))]);
    if (reply.length === expected.length && sha256(reply) === sha256(expected)) return true;
    this.#failures.push(`${what}: got ${reply.length} bytes, expected ${expected.length}, not byte-exact`);
    return false;
  }
}

function drained(socket: net.Socket): Promise<void> {
  return new Promise((resolve, reject) => {
    socket.once('drain', resolve);
    socket.once('close', () => reject(new Error('closed while writing')));
  });
}

/** Pacing of the load generator (not a wait for an event). */
function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The sum of every sample of `name` (all label sets) in a sidecar's /metrics, 0 when absent. */
export async function sumMetric(sidecar: { adminUrl: string }, name: string): Promise<number> {
  const text = await (await fetch(`${sidecar.adminUrl}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith(`${name}{`) || line.startsWith(`${name} `)) sum += Number(line.split(' ').at(-1));
  }
  return sum;
}
