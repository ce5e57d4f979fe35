// A sidecar process under abuse of its link listener: handshakes that never finish, an
// authenticated peer that floods PINGs and reads nothing, and one identity opening more streams
// than its quota across two links. Each is refused and counted; other callers keep working.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import type { Frame, GoAwayFrame } from '../../proto/index.js';
import { ErrorCode, FrameEncoder, FrameType } from '../../proto/index.js';
import { parseJoinToken } from '../../proto/tokens.js';
import type { CredentialsInit } from '../../sidecar/identity/credentials.js';
import { joinMesh } from '../../sidecar/join.js';
import { RawPeer } from '../mux/helpers.js';
import type { TestApp } from '../support/apps.js';
import { connect, sha256, startEchoApp } from '../support/apps.js';
import type { ControlPlaneProcess, SidecarProcess } from '../support/mesh.js';
import { createToken, eventually, removeDirs, scrapeMetric, startControlPlane, startSidecar } from '../support/mesh.js';

const PER_PEER_STREAMS = 50;
/** The sidecar's default handshake timeout (ListenerLimits), and how late a close may come. */
const HANDSHAKE_TIMEOUT_MS = 5000;
const CLOSE_MARGIN_MS = 2000;
/** The asserted bound on the sidecar's RSS growth under the PING flood. */
const MAX_RSS_GROWTH_BYTES = 64 * 1024 * 1024;
const PINGS_PER_BATCH = 8192;
/** 2048 batches of 8192 PINGs: 150 MB, far beyond kernel buffers plus 4 MiB of queue. */
const MAX_BATCHES = 2048;

/** Resident set size of process `pid`, in bytes, and its peak so far. */
async function memoryOf(pid: number): Promise<{ rssBytes: number; peakBytes: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? Number.NaN) * 1024;
  return { rssBytes: kib('VmRSS'), peakBytes: kib('VmHWM') };
}

/** Sends bytes through `socket` and resolves with as many bytes back. */
function echoRoundTrip(socket: net.Socket, data: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const pieces: Buffer[] = [];
    let received = 0;
    const onData = (chunk: Buffer): void => {
      pieces.push(chunk);
      received += chunk.length;
      if (received < data.length) return;
      socket.off('data', onData).off('close', onClose);
      resolve(Buffer.concat(pieces));
    };
    const onClose = (): void => reject(new Error('the connection closed mid round trip'));
    socket.on('data', onData).once('close', onClose);
    socket.write(data);
  });
}

describe('abuse of a sidecar link listener', () => {
  let cp: ControlPlaneProcess;
  let echo: TestApp;
  let api: SidecarProcess;
  let web: SidecarProcess;
  let intruder: CredentialsInit;

  before(async () => {
    cp = await startControlPlane();
    echo = await startEchoApp();
    api = await startSidecar({ service: 'api', token: await createToken(cp, 'api'), cp, app: echo.address, extra: ['--max-inbound-streams-per-peer', String(PER_PEER_STREAMS)] });
    web = await startSidecar({ service: 'web', token: await createToken(cp, 'web'), cp, upstreams: ['api'] });
    const token = await createToken(cp, 'intruder');
    // A genuine mesh identity: the abuse is in what it does, not in its certificate.
    intruder = await joinMesh([cp.url], parseJoinToken(token), token, 'intruder');
  });

  after(async () => {
    await Promise.all([web?.proc.stop(), api?.proc.stop()]);
    await cp?.proc.stop();
    await echo?.close();
    await removeDirs(cp?.dataDir ?? '');
  });

  /** A TLS link to `api` as the intruder, HELLO sent; paused (reading nothing) until resumed. */
  async function intruderLink(): Promise<tls.TLSSocket> {
    const [host, port] = api.linkAddress.split(':');
    const socket = tls.connect({ host, port: Number(port), key: intruder.privateKeyPem, cert: intruder.certPem, ca: intruder.caPems, checkServerIdentity: () => undefined });
    socket.on('error', () => undefined);
    socket.pause();
    await once(socket, 'secureConnect');
    for (const buffer of new FrameEncoder().encode({ type: FrameType.HELLO, minVersion: 1, maxVersion: 1, initialWindowBytes: 256 * 1024 })) socket.write(buffer);
    return socket;
  }

  /** A connection through `web` to `api`'s echo app, checked with one round trip. */
  async function webToApi(): Promise<net.Socket> {
    const socket = await connect(web.upstreams.get('api')?.port ?? 0);
    const hello = randomBytes(1000);
    assert.equal(sha256(await echoRoundTrip(socket, hello)), sha256(hello));
    return socket;
  }

  it('closes connections that never finish their handshake, and counts them', { timeout: 30_000 }, async () => {
    const [host, port] = api.linkAddress.split(':');
    const lifetimes = await Promise.all(
      Array.from({ length: 20 }, async () => {
        const socket = net.connect({ host, port: Number(port) });
        socket.on('error', () => undefined);
        const openedAtMs = Date.now();
        await new Promise<void>((resolve) => socket.once('close', () => resolve()));
        return Date.now() - openedAtMs;
      }),
    );
    assert.ok(Math.max(...lifetimes) < HANDSHAKE_TIMEOUT_MS + CLOSE_MARGIN_MS, `closed after ${Math.min(...lifetimes)}..${Math.max(...lifetimes)} ms`);
    assert.ok(Math.min(...lifetimes) >= HANDSHAKE_TIMEOUT_MS - 100);
    assert.equal(await scrapeMetric(api, 'trellis_link_refusals_total', { reason: 'handshake-timeout' }), 20);
  });

  it('closes the link of a peer that floods PINGs and reads nothing, with GOAWAY RESOURCE_EXHAUSTED, in bounded memory', { timeout: 120_000 }, async () => {
    const pid = api.proc.child.pid ?? 0;
    const before = await memoryOf(pid);
    const caller = await webToApi();
    const socket = await intruderLink();
    const encoder = new FrameEncoder();
    let peakRssBytes = before.rssBytes;
    let batches = 0;
    let roundTrips = 0;
    const startedMs = Date.now();
    for (; batches < MAX_BATCHES; batches += 1) {
      const pings: Buffer[] = [];
      for (let i = 0; i < PINGS_PER_BATCH; i += 1) pings.push(...encoder.encode({ type: FrameType.PING, nonce: batches * PINGS_PER_BATCH + i }));
      if (!socket.write(Buffer.concat(pings))) {
        await new Promise<void>((resolve) => {
          const done = (): void => {
            socket.off('drain', done).off('close', done);
            resolve();
          };
          socket.once('drain', done).once('close', done);
        });
      }
      if (socket.destroyed) break;
      if (batches % 8 !== 7) continue;
      peakRssBytes = Math.max(peakRssBytes, (await memoryOf(pid)).rssBytes);
      // Other callers are served meanwhile.
      const data = randomBytes(16 * 1024);
      assert.equal(sha256(await echoRoundTrip(caller, data)), sha256(data));
      roundTrips += 1;
      if ((await scrapeMetric(api, 'trellis_sidecar_protocol_violations_total', { code: 'TRELLIS_ERR_PEER_NOT_READING' })) === 1) break;
    }
    const floodMs = Date.now() - startedMs;
    assert.ok(batches < MAX_BATCHES, 'the sidecar gave up on the link before the flood ran out');
    // Now read what was queued: PONGs, then the GOAWAY, then the end of the link.
    const peer = new RawPeer(socket);
    socket.resume();
    const goAway = (await peer.waitFor((frame: Frame) => frame.type === FrameType.GOAWAY)) as GoAwayFrame;
    assert.equal(goAway.code, ErrorCode.RESOURCE_EXHAUSTED);
    await peer.closed;
    const pongs = peer.frames.filter((frame) => frame.type === FrameType.PONG).length;
    const afterFlood = await memoryOf(pid);
    peakRssBytes = Math.max(peakRssBytes, afterFlood.rssBytes);
    const growthBytes = peakRssBytes - before.rssBytes;
    assert.ok(growthBytes < MAX_RSS_GROWTH_BYTES, `RSS grew by ${(growthBytes / 2 ** 20).toFixed(1)} MiB`);
    const data = randomBytes(64 * 1024);
    assert.equal(sha256(await echoRoundTrip(caller, data)), sha256(data), 'the other caller still works');
    caller.destroy();
    process.stdout.write(
      `# PING flood: ${((batches + 1) * PINGS_PER_BATCH * 9 / 2 ** 20).toFixed(1)} MiB of PINGs in ${floodMs} ms, ${pongs} PONGs read back before the GOAWAY; ` +
        `sidecar RSS ${(before.rssBytes / 2 ** 20).toFixed(1)} MiB -> peak sampled ${(peakRssBytes / 2 ** 20).toFixed(1)} MiB (growth ${(growthBytes / 2 ** 20).toFixed(1)} MiB), ` +
        `VmHWM ${(before.peakBytes / 2 ** 20).toFixed(1)} -> ${(afterFlood.peakBytes / 2 ** 20).toFixed(1)} MiB; ${roundTrips} round trips of another caller meanwhile\n`,
    );
  });

  it('refuses streams of one identity beyond its quota across two links, with RESET RESOURCE_EXHAUSTED; another identity is unaffected', { timeout: 60_000 }, async () => {
    const first = new RawPeer((await intruderLink()));
    const second = new RawPeer((await intruderLink()));
    first.socket.resume();
    second.socket.resume();
    /** Opens `count` streams on `peer` (ids 1, 3, …) and says hello on each. */
    const open = (peer: RawPeer, count: number, firstId = 1): number[] => {
      const ids = Array.from({ length: count }, (_, i) => firstId + 2 * i);
      for (const streamId of ids) peer.send({ type: FrameType.OPEN, streamId, service: 'api' }, { type: FrameType.DATA, streamId, payload: Buffer.from('hi') });
      return ids;
    };
    const echoed = (peer: RawPeer, streamId: number): Promise<Frame> => peer.waitFor((frame) => frame.type === FrameType.DATA && frame.streamId === streamId);
    const resetOf = (peer: RawPeer, streamId: number): Promise<Frame> => peer.waitFor((frame) => frame.type === FrameType.RESET && frame.streamId === streamId);

    const onFirst = open(first, 40);
    await Promise.all(onFirst.map((id) => echoed(first, id)));
    const onSecond = open(second, 40);
    const accepted = onSecond.slice(0, PER_PEER_STREAMS - 40);
    const refused = onSecond.slice(PER_PEER_STREAMS - 40);
    await Promise.all(accepted.map((id) => echoed(second, id)));
    const resets = await Promise.all(refused.map((id) => resetOf(second, id)));
    for (const reset of resets) assert.equal(reset.type === FrameType.RESET && reset.code, ErrorCode.RESOURCE_EXHAUSTED);
    assert.equal(second.frames.filter((frame) => frame.type === FrameType.RESET).length, refused.length, 'only the streams beyond the quota are reset');
    assert.equal(await scrapeMetric(api, 'trellis_sidecar_stream_refusals_total', { reason: 'too-many-streams-from-peer' }), refused.length);

    // Another identity is unaffected while the intruder holds its whole quota.
    const caller = await webToApi();
    caller.destroy();

    // Streams that end give their slots back: with the first link gone, the second opens again.
    first.socket.destroy();
    await eventually(async () => (await scrapeMetric(api, 'trellis_sidecar_streams_active', { direction: 'inbound' })) <= PER_PEER_STREAMS - 40, 'the first link\'s streams to close');
    const [again] = open(second, 1, 81);
    await echoed(second, again ?? 0);
    second.socket.destroy();
  });
});
