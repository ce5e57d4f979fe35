// Link listeners under unauthenticated abuse, on real loopback sockets: connections that never
// start TLS or stop mid-handshake are closed on time, the pending caps refuse the excess at once,
// link caps hold per identity and in all, and a legitimate link keeps working meanwhile.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { Credentials } from '../../sidecar/identity/credentials.js';
import type { LinkRefusalReason, ListenerLimits } from '../../sidecar/links/listener-guard.js';
import { ListenerGuard } from '../../sidecar/links/listener-guard.js';
import { parseLinkUrl } from '../../sidecar/links/link-url.js';
import { TlsLinkTransport } from '../../sidecar/links/tls-transport.js';
import type { AuthenticatedLink, LinkListener, LinkTransport } from '../../sidecar/links/transport.js';
import { WsLinkTransport } from '../../sidecar/links/ws-transport.js';
import { PrometheusSidecarMetrics } from '../../sidecar/metrics/index.js';
import type { MuxStream } from '../../sidecar/mux/index.js';
import { Session } from '../../sidecar/mux/index.js';
import { echo, sha256 } from '../mux/helpers.js';
import type { TestCa } from '../support/link-credentials.js';
import { createTestCa, credentialsFor } from '../support/link-credentials.js';

const TRUST_DOMAIN = 'guard.test';
/** Short, yet long enough that the whole flood is open before its first connection times out. */
const HANDSHAKE_TIMEOUT_MS = 1500;
/** How late after the timeout a pending connection may still be closed (a loaded CI host). */
const CLOSE_MARGIN_MS = 2000;
/** A refused connection is closed well before any timeout could have done it. */
const REFUSED_WITHIN_MS = 250;
const SILENT = 300;
const PARTIAL = 100;
const API = { kind: 'service', service: 'api' } as const;

/** The first bytes of a TLS ClientHello record that announces 512 bytes and never sends the rest. */
const PARTIAL_CLIENT_HELLO = Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]), randomBytes(40)]);

interface RawConnection {
  socket: net.Socket;
  openedAtMs: number;
  /** Ms from the connect to the close, once closed. */
  lifetimeMs: Promise<number>;
}

/** A TCP connection from `localAddress` (any of 127/8 on Linux) that sends nothing, or a partial ClientHello. */
async function rawConnection(port: number, localAddress: string, partial: boolean): Promise<RawConnection> {
  const socket = net.connect({ host: '127.0.0.1', port, localAddress });
  socket.on('error', () => undefined);
  const openedAtMs = Date.now();
  // Not events.once: it would reject on the 'error' of a reset.
  const lifetimeMs = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now() - openedAtMs)));
  // A refused connection may be reset before its first write: 'close' ends the wait too.
  await new Promise((resolve) => socket.once('connect', resolve).once('close', resolve));
  if (partial && !socket.destroyed) socket.write(PARTIAL_CLIENT_HELLO);
  return { socket, openedAtMs, lifetimeMs };
}

function connections(count: number, port: number, localAddress: string, partial = false): Promise<RawConnection[]> {
  return Promise.all(Array.from({ length: count }, () => rawConnection(port, localAddress, partial)));
}

/** Resolves once `probe` holds, checking every turn of the event loop; fails after `timeoutMs`. */
async function until(probe: () => boolean, what: string | (() => string), timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${typeof what === 'string' ? what : what()}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** `trellis_link_refusals_total` by reason, from the metrics exposition. */
async function refusals(metrics: PrometheusSidecarMetrics): Promise<Partial<Record<LinkRefusalReason, number>>> {
  const { body } = await metrics.render();
  const counts: Partial<Record<LinkRefusalReason, number>> = {};
  for (const match of body.matchAll(/^trellis_link_refusals_total\{[^}]*reason="([^"]+)"[^}]*\} (\d+)$/gm)) {
    counts[match[1] as LinkRefusalReason] = Number(match[2]);
  }
  return counts;
}

/** Sends `data` on `stream` and resolves with what comes back, once as many bytes came back. */
function roundTrip(stream: MuxStream, data: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const pieces: Buffer[] = [];
    let received = 0;
    const onData = (payload: Buffer): void => {
      pieces.push(payload);
      received += payload.length;
      stream.consumed(payload.length);
      if (received < data.length) return;
      stream.off('data', onData);
      stream.off('reset', onReset);
      resolve(Buffer.concat(pieces));
    };
    const onReset = (code: number): void => reject(new Error(`stream reset with ${code}`));
    stream.on('data', onData);
    stream.once('reset', onReset);
    stream.write(data);
  });
}

interface Transport {
  name: string;
  listenUrl: string;
  make(credentials: Credentials, listenerGuard?: ListenerGuard): LinkTransport;
}

const transports: Transport[] = [
  { name: 'TLS', listenUrl: 'tls://127.0.0.1:0', make: (credentials, listenerGuard) => new TlsLinkTransport(credentials, { listenerGuard }) },
  { name: 'WebSocket', listenUrl: 'wss://127.0.0.1:0', make: (credentials, listenerGuard) => new WsLinkTransport(credentials, { listenerGuard }) },
];

for (const kind of transports) {
  describe(`link listener guard: ${kind.name}`, () => {
    let mesh: TestCa;
    const creds = {} as Record<'api' | 'caller' | 'other' | 'third', Credentials>;
    const cleanups: (() => unknown)[] = [];

    before(async () => {
      mesh = await createTestCa(TRUST_DOMAIN);
      for (const service of ['api', 'caller', 'other', 'third'] as const) creds[service] = await credentialsFor(mesh.ca, service);
    });

    after(async () => {
      for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
      await mesh?.remove();
    });

    /** A listener of `api` whose links echo every stream, with its guard and metrics. */
    async function echoListener(limits: ListenerLimits): Promise<{ listener: LinkListener; port: number; guard: ListenerGuard; metrics: PrometheusSidecarMetrics; links: AuthenticatedLink[] }> {
      const metrics = new PrometheusSidecarMetrics({ service: 'api' });
      const guard = new ListenerGuard(limits, (reason) => metrics.linkRefused(reason));
      const links: AuthenticatedLink[] = [];
      const listener = await kind.make(creds.api, guard).listen(parseLinkUrl(kind.listenUrl), (link) => {
        links.push(link);
        cleanups.push(() => link.socket.destroy());
        new Session(link.socket, { role: 'acceptor', onStream: echo });
      });
      cleanups.push(() => listener.close());
      return { listener, port: parseLinkUrl(listener.url).port, guard, metrics, links };
    }

    async function dialSession(credentials: Credentials, address: string): Promise<Session> {
      const link = await kind.make(credentials).dial({ address, peer: API });
      const session = new Session(link.socket, { role: 'dialer' });
      cleanups.push(() => session.close());
      await session.whenReady();
      return session;
    }

    it('closes silent and half-handshaken connections on time, refuses the excess at once, and keeps a legitimate link working', { timeout: 60_000 }, async () => {
      const { listener, port, guard, metrics } = await echoListener({
        handshakeTimeoutMs: HANDSHAKE_TIMEOUT_MS,
        maxPendingHandshakesPerSource: SILENT,
        maxPendingHandshakes: SILENT + PARTIAL + 20,
      });
      // A legitimate stream, established first, kept busy with round trips through the flood.
      const established = (await dialSession(creds.caller, listener.url)).openStream('echo');
      let flooding = true;
      let roundTripsDuringFlood = 0;
      const traffic = (async () => {
        for (let i = 0; i < 100_000 && flooding; i += 1) {
          const chunk = randomBytes(16 * 1024);
          assert.equal(sha256(await roundTrip(established, chunk)), sha256(chunk), 'the legitimate stream echoes byte for byte');
          if (flooding) roundTripsDuringFlood += 1;
        }
      })();

      const floodStartedMs = Date.now();
      const silent = await connections(SILENT, port, '127.0.0.2');
      const partial = await connections(PARTIAL, port, '127.0.0.3', true);
      await until(() => guard.stats.pendingHandshakes === SILENT + PARTIAL, () => `the flood to be pending (${JSON.stringify(guard.stats)})`, HANDSHAKE_TIMEOUT_MS);
      const floodOpenMs = Date.now() - floodStartedMs;

      // A new legitimate link still gets in: the source cap kept the flood below the total cap.
      const fresh = (await dialSession(creds.caller, listener.url)).openStream('echo');
      const hello = randomBytes(100_000);
      assert.equal(sha256(await roundTrip(fresh, hello)), sha256(hello));

      const overSource = await connections(50, port, '127.0.0.2');
      const filling = await connections(20, port, '127.0.0.4');
      await until(() => guard.stats.pendingHandshakes === SILENT + PARTIAL + 20, () => `the total cap to be reached (${JSON.stringify(guard.stats)})`, HANDSHAKE_TIMEOUT_MS);
      const overTotal = await connections(10, port, '127.0.0.5', true);

      const refusedLifetimes = await Promise.all([...overSource, ...overTotal].map((connection) => connection.lifetimeMs));
      const pendingLifetimes = await Promise.all([...silent, ...partial, ...filling].map((connection) => connection.lifetimeMs));
      flooding = false;
      await traffic;

      assert.equal(refusedLifetimes.length, 60);
      assert.ok(Math.max(...refusedLifetimes) < REFUSED_WITHIN_MS, `refused connections closed within ${Math.max(...refusedLifetimes)} ms`);
      assert.equal(pendingLifetimes.length, SILENT + PARTIAL + 20, 'every pending connection was closed by the listener');
      assert.ok(Math.min(...pendingLifetimes) >= HANDSHAKE_TIMEOUT_MS - 50, `none before the timeout (first at ${Math.min(...pendingLifetimes)} ms)`);
      assert.ok(Math.max(...pendingLifetimes) < HANDSHAKE_TIMEOUT_MS + CLOSE_MARGIN_MS, `all by timeout + margin (last at ${Math.max(...pendingLifetimes)} ms)`);
      assert.ok(roundTripsDuringFlood > 0, 'the established stream kept flowing during the flood');
      assert.deepEqual(await refusals(metrics), {
        'handshake-timeout': SILENT + PARTIAL + 20,
        'too-many-pending-from-source': 50,
        'too-many-pending': 10,
      });
      assert.deepEqual(guard.stats, { pendingHandshakes: 0, links: 2 });
      const after = randomBytes(100_000);
      assert.equal(sha256(await roundTrip(established, after)), sha256(after), 'the established stream still works');
      process.stdout.write(
        `${kind.name}: ${SILENT + PARTIAL + 20} pending closed in ${Math.min(...pendingLifetimes)}..${Math.max(...pendingLifetimes)} ms ` +
          `(timeout ${HANDSHAKE_TIMEOUT_MS} ms; the first ${SILENT + PARTIAL} opened in ${floodOpenMs} ms); 60 refused in <= ${Math.max(...refusedLifetimes)} ms; ${roundTripsDuringFlood} round trips during the flood\n`,
      );
    });

    it('caps authenticated links per peer identity and in all', { timeout: 30_000 }, async () => {
      const { listener, guard, metrics, links } = await echoListener({ maxLinksPerPeer: 2, maxLinks: 3 });
      const closedUnused = async (credentials: Credentials): Promise<void> => {
        // TLS 1.3 lets the client finish before the listener has looked at its certificate.
        const link = await kind.make(credentials).dial({ address: listener.url, peer: API });
        link.socket.on('error', () => undefined);
        link.socket.resume();
        await once(link.socket, 'close');
      };
      await dialSession(creds.caller, listener.url);
      await dialSession(creds.caller, listener.url);
      await closedUnused(creds.caller);
      assert.deepEqual(await refusals(metrics), { 'too-many-links-from-peer': 1 });
      const other = (await dialSession(creds.other, listener.url)).openStream('echo');
      const data = randomBytes(10_000);
      assert.equal(sha256(await roundTrip(other, data)), sha256(data), 'another identity still links');
      await closedUnused(creds.third);
      assert.deepEqual(await refusals(metrics), { 'too-many-links-from-peer': 1, 'too-many-links': 1 });
      assert.equal(links.length, 3);
      assert.equal(guard.stats.links, 3);
      // A link that closes gives its slot back.
      links[0]?.socket.destroy();
      await until(() => guard.stats.links === 2, 'the slot to be free');
      await dialSession(creds.third, listener.url);
      assert.equal(links.length, 4);
    });
  });
}
