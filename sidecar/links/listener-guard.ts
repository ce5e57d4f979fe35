/**
 * Caps on what a link listener holds for peers: connections still in their handshake (not
 * authenticated yet: anyone can open them) and authenticated links. Shared by every listener of
 * a process, so that a sidecar's or gateway's descriptors stay bounded whatever arrives.
 */

import { once } from 'node:events';
import { createServer } from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';
import { ValidationError } from '../../proto/errors.js';
import type { PeerIdentity } from '../../proto/spiffe.js';

/** Why a listener turned a connection away or closed it before it became a link. */
export type LinkRefusalReason =
  /** The handshake (TLS; for WebSocket links also the upgrade and the inner TLS) did not finish in time. */
  | 'handshake-timeout'
  /** The handshake failed: no or wrong certificate, not TLS 1.3, garbage. */
  | 'handshake-failed'
  /** The certificate chains to the bundle but names no mesh identity. */
  | 'no-mesh-identity'
  /** {@link ListenerLimits.maxPendingHandshakes} connections were in their handshake already. */
  | 'too-many-pending'
  /** {@link ListenerLimits.maxPendingHandshakesPerSource} from this source address were in their handshake already. */
  | 'too-many-pending-from-source'
  /** {@link ListenerLimits.maxLinks} links were open already. */
  | 'too-many-links'
  /** {@link ListenerLimits.maxLinksPerPeer} links of this peer identity were open already. */
  | 'too-many-links-from-peer'
  /** The peer's certificate is revoked (see `RevokedPeers`). */
  | 'revoked';

/** Limits of a {@link ListenerGuard}. */
export interface ListenerLimits {
  /**
   * Time from the TCP connection to an authenticated link: TLS, and for WebSocket links the
   * HTTP upgrade and the link's own TLS too. Late ones are closed.
   * @default 5000
   */
  handshakeTimeoutMs?: number;
  /** Connections in their handshake at once, from anywhere; more are closed at once. @default 1024 */
  maxPendingHandshakes?: number;
  /** Connections in their handshake at once from one source address; more are closed at once. @default 128 */
  maxPendingHandshakesPerSource?: number;
  /** Authenticated links open at once; more are closed right after their handshake. @default 4096 */
  maxLinks?: number;
  /**
   * Authenticated links of one peer identity open at once. Every instance of a service shares
   * its identity and holds one link here, so this bounds a caller service's instances too.
   * @default 256
   */
  maxLinksPerPeer?: number;
}

export const DEFAULT_LINK_HANDSHAKE_TIMEOUT_MS = 5000;
export const DEFAULT_MAX_PENDING_HANDSHAKES = 1024;
export const DEFAULT_MAX_PENDING_HANDSHAKES_PER_SOURCE = 128;
export const DEFAULT_MAX_LINKS = 4096;
export const DEFAULT_MAX_LINKS_PER_PEER = 256;

/** A connection admitted to its handshake: it holds one pending slot until it ends either way. */
export interface PendingHandshake {
  /** The peer is authenticated: frees the slot and stops the handshake timer. */
  authenticated(): void;
  /** The handshake failed: counts `reason` (once) and closes the connection. */
  fail(reason: LinkRefusalReason): void;
}

/** Counts per key, forgetting keys that drop to zero (so that the map stays as small as what is held). */
class Tally {
  readonly #counts = new Map<string, number>();
  total = 0;

  count(key: string): number {
    return this.#counts.get(key) ?? 0;
  }

  add(key: string): void {
    this.#counts.set(key, this.count(key) + 1);
    this.total += 1;
  }

  remove(key: string): void {
    const left = this.count(key) - 1;
    if (left > 0) this.#counts.set(key, left);
    else this.#counts.delete(key);
    this.total -= 1;
  }
}

/**
 * Admits connections to a listener and authenticated links, within {@link ListenerLimits}.
 * A connection refused here is destroyed at once, before any TLS work; every refusal is
 * reported by reason to `onRefused` (the `trellis_link_refusals_total` counter).
 */
export class ListenerGuard {
  readonly handshakeTimeoutMs: number;
  readonly #limits: Required<Omit<ListenerLimits, 'handshakeTimeoutMs'>>;
  readonly #onRefused: (reason: LinkRefusalReason) => void;
  readonly #pending = new Tally();
  readonly #links = new Tally();

  /** @throws ValidationError `TRELLIS_ERR_INVALID` for a limit that is not a whole number >= 1. */
  constructor(limits: ListenerLimits = {}, onRefused: (reason: LinkRefusalReason) => void = () => undefined) {
    this.handshakeTimeoutMs = positive('handshakeTimeoutMs', limits.handshakeTimeoutMs, DEFAULT_LINK_HANDSHAKE_TIMEOUT_MS);
    this.#limits = {
      maxPendingHandshakes: positive('maxPendingHandshakes', limits.maxPendingHandshakes, DEFAULT_MAX_PENDING_HANDSHAKES),
      maxPendingHandshakesPerSource: positive('maxPendingHandshakesPerSource', limits.maxPendingHandshakesPerSource, DEFAULT_MAX_PENDING_HANDSHAKES_PER_SOURCE),
      maxLinks: positive('maxLinks', limits.maxLinks, DEFAULT_MAX_LINKS),
      maxLinksPerPeer: positive('maxLinksPerPeer', limits.maxLinksPerPeer, DEFAULT_MAX_LINKS_PER_PEER),
    };
    this.#onRefused = onRefused;
  }

  /** Connections in their handshake, and authenticated links, held now. */
  get stats(): { pendingHandshakes: number; links: number } {
    return { pendingHandshakes: this.#pending.total, links: this.#links.total };
  }

  /**
   * A raw TCP connection arrived. Refused (destroyed, counted, `undefined`) when a pending cap
   * is reached; otherwise it holds a slot until it is authenticated, fails or closes, and is
   * destroyed (`handshake-timeout`) if it is not authenticated within the timeout.
   */
  admitConnection(socket: Socket): PendingHandshake | undefined {
    const source = socket.remoteAddress ?? 'unknown';
    const refusal: LinkRefusalReason | undefined =
      this.#pending.count(source) >= this.#limits.maxPendingHandshakesPerSource
        ? 'too-many-pending-from-source'
        : this.#pending.total >= this.#limits.maxPendingHandshakes
          ? 'too-many-pending'
          : undefined;
    if (refusal !== undefined) {
      this.#onRefused(refusal);
      socket.destroy();
      return undefined;
    }
    this.#pending.add(source);
    let settled = false;
    const settle = (): boolean => {
      if (settled) return false;
      settled = true;
      clearTimeout(timer);
      socket.off('close', onClose);
      this.#pending.remove(source);
      return true;
    };
    const fail = (reason: LinkRefusalReason): void => {
      if (!settle()) return;
      this.#onRefused(reason);
      socket.destroy();
    };
    // A client that hangs up mid-handshake is nothing to count: it only frees its slot.
    const onClose = (): void => void settle();
    const timer = setTimeout(() => fail('handshake-timeout'), this.handshakeTimeoutMs);
    timer.unref();
    socket.once('close', onClose);
    return { authenticated: () => void settle(), fail };
  }

  /**
   * A peer proved `peer`. Returns the function that frees its slot when the link closes, or
   * `undefined` (counted) when a link cap is reached: the caller then closes the link.
   */
  admitLink(peer: PeerIdentity): (() => void) | undefined {
    const key = peerKeyOf(peer);
    const refusal: LinkRefusalReason | undefined =
      this.#links.count(key) >= this.#limits.maxLinksPerPeer ? 'too-many-links-from-peer' : this.#links.total >= this.#limits.maxLinks ? 'too-many-links' : undefined;
    if (refusal !== undefined) {
      this.#onRefused(refusal);
      return undefined;
    }
    this.#links.add(key);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#links.remove(key);
    };
  }

  /** Counts a refusal made by a listener itself (a failed handshake, no mesh identity). */
  refused(reason: LinkRefusalReason): void {
    this.#onRefused(reason);
  }
}

/** One key per mesh identity: a service (all its instances) or a gateway. */
export function peerKeyOf(peer: PeerIdentity): string {
  return peer.kind === 'service' ? `svc/${peer.service}` : `gw/${peer.zone}/${peer.name}`;
}

function positive(name: string, value: number | undefined, fallback: number): number {
  const resolved = value ?? fallback;
  if (!Number.isInteger(resolved) || resolved < 1) throw new ValidationError(`${name} must be a whole number >= 1, got ${resolved}`);
  return resolved;
}

/** A TCP listener in front of a TLS or HTTPS server, letting through only what the guard admits. */
export interface FrontDoor {
  /** The TCP server to listen with. */
  readonly server: Server;
  /** The admission of a connection still in its handshake (its TLS socket shows its TCP socket's address). */
  readonly pendingOf: (socket: Socket) => PendingHandshake | undefined;
  /** Binds `url`'s host and port; resolves with the port really bound. */
  readonly listen: (host: string, port: number) => Promise<number>;
}

/**
 * Accepts TCP for `inner` (a tls.Server or https.Server that never listens itself): only
 * connections `guard` admits reach it, so a refused one costs no TLS state and is closed at once.
 */
export function frontDoor(guard: ListenerGuard, inner: Server): FrontDoor {
  const pending = new Map<string, PendingHandshake>();
  const keyOf = (socket: Socket): string => `${socket.remoteAddress}:${socket.remotePort}`;
  const server = createServer((socket) => {
    const admitted = guard.admitConnection(socket);
    if (admitted === undefined) return;
    const key = keyOf(socket);
    pending.set(key, admitted);
    socket.once('close', () => pending.delete(key));
    socket.setNoDelay(true);
    inner.emit('connection', socket);
  });
  return {
    server,
    pendingOf: (socket) => pending.get(keyOf(socket)),
    listen: async (host, port) => {
      server.listen(port, host);
      await Promise.race([once(server, 'listening'), once(server, 'error').then(([error]) => Promise.reject(error as Error))]);
      return (server.address() as AddressInfo).port;
    },
  };
}
