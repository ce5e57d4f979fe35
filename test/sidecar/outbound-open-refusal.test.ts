// A connection whose stream a draining endpoint refuses at open (its OPEN crossed the
// endpoint's GOAWAY: RESET GOING_AWAY, no byte reached the endpoint's app) is sent to another
// endpoint with every byte the app had sent, so the app never hears of the drain. The crossing
// is made exact: a gate in front of the endpoint's session holds the OPEN and its DATA until
// the endpoint has sent GOAWAY.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { connect, createServer } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { afterEach, describe, it } from 'node:test';
import { pino } from 'pino';
import { ErrorCode, FrameDecoder, FrameType } from '../../proto/index.js';
import type { Frame } from '../../proto/index.js';
import { HashRingBalancer } from '../../sidecar/balancer/index.js';
import { OutboundForwarder } from '../../sidecar/forward/outbound.js';
import { OpenReplay } from '../../sidecar/forward/open-replay.js';
import { LinkManager } from '../../sidecar/links/link-manager.js';
import type { AuthenticatedLink, LinkTarget } from '../../sidecar/links/transport.js';
import { PrometheusSidecarMetrics } from '../../sidecar/metrics/index.js';
import type { MuxStream } from '../../sidecar/mux/index.js';
import { Session } from '../../sidecar/mux/index.js';
import { echo, tcpPair } from '../mux/helpers.js';

const SERVICE = 'api';
const KEY = '10.0.0.1:40000';

/** Passes a socket's bytes to a session, or holds them (decoding what it holds) until released. */
class Gate extends Duplex {
  readonly #socket: Socket;
  #held: Buffer[] | undefined;
  #decoder = new FrameDecoder();
  #heldDataBytes = 0;

  constructor(socket: Socket) {
    super();
    this.#socket = socket;
    socket.on('data', (chunk: Buffer) => {
      if (this.#held === undefined) {
        this.push(chunk);
        return;
      }
      this.#held.push(chunk);
      this.#decoder.push(chunk, (frame) => {
        if (frame.type === FrameType.DATA) this.#heldDataBytes += frame.payload.length;
        this.emit('held', frame, this.#heldDataBytes);
      });
    });
    socket.on('end', () => this.push(null));
    socket.on('close', () => this.destroy());
    socket.on('error', () => undefined);
  }

  /** From now on, bytes wait here (the link must be between frames: idle, pings off). */
  hold(): void {
    this.#held = [];
    this.#decoder = new FrameDecoder();
    this.#heldDataBytes = 0;
  }

  /** Resolves once the held frames satisfy `predicate` (given each frame and the DATA bytes so far). */
  heldUntil(predicate: (frame: Frame, dataBytes: number) => boolean): Promise<void> {
    return new Promise((resolve) => {
      const onHeld = (frame: Frame, dataBytes: number): void => {
        if (!predicate(frame, dataBytes)) return;
        this.off('held', onHeld);
        resolve();
      };
      this.on('held', onHeld);
    });
  }

  release(): void {
    const held = this.#held ?? [];
    this.#held = undefined;
    for (const chunk of held) this.push(chunk);
  }

  override _read(): void {}
  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.#socket.write(chunk, callback);
  }
  override _final(callback: (error?: Error | null) => void): void {
    this.#socket.end();
    callback();
  }
  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#socket.destroy();
    callback(error);
  }
}

/** One endpoint's far end: its accepting session behind a gate, and the streams its app got. */
interface FarEnd {
  session: Session;
  gate: Gate;
  streams: MuxStream[];
}

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

/** A forwarder over a real link manager whose dials reach in-process sessions that echo. */
function mesh(endpoints: readonly string[], { othersUnreachable = false, maxDialAttempts = undefined as number | undefined } = {}) {
  const metrics = new PrometheusSidecarMetrics({ service: 'web' });
  const logger = pino({ level: process.env.TEST_LOG ?? 'silent' });
  const farEnds = new Map<string, FarEnd>();
  const balancer = new HashRingBalancer();
  balancer.update(SERVICE, endpoints.map((address) => ({ sidecarId: address, address, weight: 1 })));
  /** The endpoint the connection's key goes to first. */
  const [first = '', second = ''] = balancer.candidates(SERVICE, KEY).map((endpoint) => endpoint.address);
  const links = new LinkManager({
    metrics,
    logger,
    // No PINGs: a gate starts holding between two frames.
    pingIntervalMs: 600_000,
    dialer: {
      dial: async (target: LinkTarget): Promise<AuthenticatedLink> => {
        if (othersUnreachable && target.address !== first) throw Object.assign(new Error(`connect ECONNREFUSED ${target.address}`), { code: 'ECONNREFUSED' });
        const { client, server } = await tcpPair();
        const gate = new Gate(server);
        const streams: MuxStream[] = [];
        const session = new Session(gate, {
          role: 'acceptor',
          onStream: (stream) => {
            streams.push(stream);
            echo(stream);
            gate.emit('appStream');
          },
        });
        farEnds.set(target.address, { session, gate, streams });
        cleanups.push(() => {
          session.close();
          client.destroy();
        });
        return { socket: client, peer: { kind: 'service', service: SERVICE }, peerId: target.address, peerAddress: target.address };
      },
    },
  });
  const forwarder = new OutboundForwarder({ balancer, links, metrics, logger, ...(maxDialAttempts === undefined ? {} : { maxDialAttempts }) });
  cleanups.push(() => {
    forwarder.close();
    void links.close();
  });
  return { metrics, links, forwarder, farEnds, first, second };
}

/** Opens a stream on the link to `address` and waits for its far end to hold it: the link stays up through a drain. */
async function keepLinkOpen(links: LinkManager, farEnds: Map<string, FarEnd>, address: string): Promise<void> {
  const keeper = await links.openStream({ address, peer: { kind: 'service', service: SERVICE } }, SERVICE);
  keeper.write(Buffer.from('keeper'));
  const far = farEnds.get(address);
  assert.ok(far !== undefined);
  if (far.streams.length === 0) await once(far.gate, 'appStream');
}

/** An app connection handed to the forwarder; resolves with everything the app read, or its error code. */
async function appConnection(forwarder: OutboundForwarder): Promise<{ app: Socket; result: Promise<{ sha256: string; bytes: number } | { error: string }> }> {
  const { client: app, server: accepted } = await halfOpenPair();
  cleanups.push(() => {
    app.destroy();
    accepted.destroy();
  });
  const hash = createHash('sha256');
  let bytes = 0;
  app.on('data', (chunk: Buffer) => {
    hash.update(chunk);
    bytes += chunk.length;
  });
  const result = new Promise<{ sha256: string; bytes: number } | { error: string }>((resolve) => {
    app.once('error', (error: NodeJS.ErrnoException) => resolve({ error: error.code ?? error.message }));
    app.once('end', () => resolve({ sha256: hash.digest('hex'), bytes }));
  });
  forwarder.forwardConnection(SERVICE, accepted, { key: KEY });
  return { app, result };
}

/** A loopback connection whose accepted end, like an upstream port's, stays open after the app's FIN and starts paused. */
async function halfOpenPair(): Promise<{ client: Socket; server: Socket }> {
  const server = createServer({ allowHalfOpen: true, pauseOnConnect: true });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const accepted = once(server, 'connection') as Promise<[Socket]>;
  const client = connect(port, '127.0.0.1');
  await once(client, 'connect');
  const [socket] = await accepted;
  server.close();
  return { client, server: socket };
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

async function counter(metrics: PrometheusSidecarMetrics, name: string, labels: string): Promise<number> {
  const { body } = await metrics.render();
  const line = body.split('\n').find((l) => l.startsWith(`${name}{${labels},service="web"} `));
  return line === undefined ? 0 : Number(line.split(' ').at(-1));
}

/**
 * An app connection to the endpoint its key picks first, whose link stays up (a keeper stream)
 * and whose far end holds, unread, everything from now on (see {@link drainCrossing}).
 */
async function connectionToDrainingEndpoint(setup: ReturnType<typeof mesh>) {
  const { links, forwarder, farEnds, first } = setup;
  await keepLinkOpen(links, farEnds, first);
  const draining = farEnds.get(first);
  assert.ok(draining !== undefined);
  draining.gate.hold();
  return { ...setup, draining, ...(await appConnection(forwarder)) };
}

/** The far end sends GOAWAY while it holds, unread, whatever came since `hold()`; then reads it. */
function drainCrossing(far: FarEnd): void {
  far.session.goAway(ErrorCode.NONE, 'draining');
  far.gate.release();
}

describe('outbound: a stream refused at open by a draining endpoint', () => {
  it('goes to the next endpoint with every byte the app sent, and the app sees an unbroken echo', async () => {
    const { metrics, farEnds, first, draining, app, result } = await connectionToDrainingEndpoint(mesh(['a', 'b']));
    const before = Buffer.alloc(10_000, 1);
    const after = Buffer.alloc(10_000, 2);
    app.write(before);
    await draining.gate.heldUntil((_frame, dataBytes) => dataBytes >= before.length);
    drainCrossing(draining);
    app.end(after);
    assert.deepEqual(await result, { sha256: sha256(Buffer.concat([before, after])), bytes: 20_000 });
    // The draining endpoint's app got only the link's keeper stream.
    assert.equal(draining.streams.length, 1);
    const other = [...farEnds.entries()].find(([address]) => address !== first)?.[1];
    assert.equal(other?.streams.length, 1);
    assert.equal(await counter(metrics, 'trellis_sidecar_upstream_stream_retries_total', 'upstream="api"'), 1);
    assert.equal(await counter(metrics, 'trellis_sidecar_upstream_stream_failures_total', 'upstream="api",code="GOING_AWAY"'), 0);
  });

  it('replays the app\'s FIN too when the app had finished before the refusal', async () => {
    const { draining, app, result } = await connectionToDrainingEndpoint(mesh(['a', 'b']));
    const request = Buffer.alloc(3_000, 7);
    app.end(request);
    await draining.gate.heldUntil((frame) => frame.type === FrameType.FIN);
    drainCrossing(draining);
    assert.deepEqual(await result, { sha256: sha256(request), bytes: request.length });
  });

  it('resets the connection when the app had sent more than can be kept before the refusal', async () => {
    const { metrics, draining, app, result } = await connectionToDrainingEndpoint(mesh(['a', 'b']));
    const upload = Buffer.alloc(100 * 1024, 3);
    app.write(upload);
    await draining.gate.heldUntil((_frame, dataBytes) => dataBytes >= upload.length);
    drainCrossing(draining);
    assert.deepEqual(await result, { error: 'ECONNRESET' });
    assert.equal(await counter(metrics, 'trellis_sidecar_upstream_stream_failures_total', 'upstream="api",code="GOING_AWAY"'), 1);
    assert.equal(await counter(metrics, 'trellis_sidecar_upstream_stream_retries_total', 'upstream="api"'), 0);
  });

  it('does not send it back to the endpoint that refused it: with no other endpoint reachable, the connection is reset', async () => {
    const { metrics, draining, app, result } = await connectionToDrainingEndpoint(mesh(['a', 'b'], { othersUnreachable: true }));
    app.write(Buffer.alloc(1_000, 4));
    await draining.gate.heldUntil((_frame, dataBytes) => dataBytes >= 1_000);
    drainCrossing(draining);
    assert.deepEqual(await result, { error: 'ECONNRESET' });
    assert.equal(draining.streams.length, 1);
    assert.equal(await counter(metrics, 'trellis_sidecar_upstream_stream_retries_total', 'upstream="api"'), 1);
    assert.equal(await counter(metrics, 'trellis_sidecar_upstream_stream_failures_total', 'upstream="api",code="APP_UNREACHABLE"'), 1);
  });
});

describe('outbound: a stream refused at open by every endpoint it tries', () => {
  it('is reset once it has been refused more times than it may dial, though an endpoint is left', async () => {
    const setup = mesh(['a', 'b', 'c'], { maxDialAttempts: 1 });
    const { links, farEnds, second } = setup;
    await keepLinkOpen(links, farEnds, second);
    const next = farEnds.get(second);
    assert.ok(next !== undefined);
    next.gate.hold();
    const { metrics, draining, app, result } = await connectionToDrainingEndpoint(setup);
    // A whole request: were the third endpoint tried, the app would read its echo and an end.
    app.end(Buffer.alloc(1_000, 5));
    await draining.gate.heldUntil((frame) => frame.type === FrameType.FIN);
    drainCrossing(draining);
    // The replayed request reaches the second endpoint, which is draining too.
    await next.gate.heldUntil((frame) => frame.type === FrameType.FIN);
    drainCrossing(next);
    assert.deepEqual(await result, { error: 'ECONNRESET' });
    assert.deepEqual([draining.streams.length, next.streams.length], [1, 1]);
    assert.equal(await counter(metrics, 'trellis_sidecar_upstream_stream_retries_total', 'upstream="api"'), 1);
    assert.equal(await counter(metrics, 'trellis_sidecar_upstream_stream_failures_total', 'upstream="api",code="GOING_AWAY"'), 1);
  });
});

describe('OpenReplay', () => {
  it('keeps chunks up to its limit, then none; refusals other than a remote GOING_AWAY are not its to undo', () => {
    const replay = new OpenReplay(undefined, 10);
    replay.record(Buffer.alloc(6));
    assert.equal(replay.refusedAtOpen(ErrorCode.GOING_AWAY, false), true);
    assert.equal(replay.refusedAtOpen(ErrorCode.GOING_AWAY, true), false);
    assert.equal(replay.refusedAtOpen(ErrorCode.RESOURCE_EXHAUSTED, false), false);
    replay.record(Buffer.alloc(5));
    assert.equal(replay.replayable, false);
    assert.equal(replay.refusedAtOpen(ErrorCode.GOING_AWAY, false), false);
  });

  it('hands over what it holds once, and is settled after', () => {
    const replay = new OpenReplay({ chunks: [Buffer.from('ab')], appEnded: false });
    replay.record(Buffer.from('c'));
    replay.recordAppEnd();
    const taken = replay.take();
    assert.deepEqual({ text: Buffer.concat(taken.chunks).toString(), appEnded: taken.appEnded }, { text: 'abc', appEnded: true });
    assert.equal(replay.handedOver, true);
    assert.equal(replay.replayable, false);
  });
});
