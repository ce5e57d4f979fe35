import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { ErrorCode } from '../../proto/errors.js';
import { gatewayKey } from '../../proto/names.js';
import type { MeshConfig } from '../config/mesh-config.js';
import { StreamQuota } from '../forward/stream-quota.js';
import { keepAlive } from '../links/keepalive.js';
import { peerKeyOf } from '../links/listener-guard.js';
import type { AuthenticatedLink, LinkTransport } from '../links/transport.js';
import type { SidecarMetrics } from '../metrics/metrics.js';
import { isPeerViolation } from '../mux/errors.js';
import { Session } from '../mux/index.js';
import type { Relay } from './relay.js';
import { countReadPauses } from '../links/read-pauses.js';
import { ActiveSet } from '../forward/active-set.js';

export interface PeerLinksInit {
  /** This gateway's zone and key. */
  zone: string;
  self: string;
  config: MeshConfig;
  /** Dials other gateways (through the egress proxy when there is one). */
  transport: LinkTransport;
  relay: () => Relay;
  metrics: SidecarMetrics;
  logger: Logger;
  /** The set of gateways this one holds links to changed. */
  onPeersChanged(peers: string[]): void;
  /** @default 1000 */
  pingIntervalMs?: number;
  /** Time between attempts to reach a gateway that could not be dialled. @default 1000, doubling to 30 s */
  retryMs?: number;
  /** Caps tunnel streams opened by peers, per peer identity (across its links) and in total. @default new StreamQuota() */
  streamQuota?: StreamQuota;
}

const MAX_RETRY_MS = 30_000;

/**
 * The links of a gateway: to every gateway of the other zones (dialled by whichever end can
 * reach the other; both ends open tunnels on them), and from this zone's sidecars. A gateway
 * that nobody can reach still gets its traffic, over the links it dialled out.
 */
export class PeerLinks {
  readonly #init: PeerLinksInit;
  /** The link to each peer gateway, by key; inbound or outbound. */
  readonly #peers = new Map<string, Session>();
  readonly #dialing = new Set<string>();
  readonly #retry = new Map<string, { atMs: number; delayMs: number }>();
  readonly #sessions = new Set<Session>();
  /** Every link's socket until it has closed: a drained link may still be sending its last frames. */
  readonly #sockets = new ActiveSet<Duplex>();
  readonly #timer: NodeJS.Timeout;
  readonly #quota: StreamQuota;
  #closed = false;
  #draining = false;

  constructor(init: PeerLinksInit) {
    this.#init = init;
    this.#quota = init.streamQuota ?? new StreamQuota();
    init.config.on('gateways', () => this.#dialMissing());
    this.#timer = setInterval(() => this.#dialMissing(), init.retryMs ?? 1000);
    this.#timer.unref();
  }

  /** The live link to gateway `key`, if any. */
  session(key: string): Session | undefined {
    return this.#peers.get(key);
  }

  /** Gateways this one holds a link to now (none once draining: no route may cross it). */
  peers(): string[] {
    return this.#draining ? [] : [...this.#peers.keys()].sort();
  }

  /** A link accepted on a listener: from a gateway of another zone, or a sidecar of this one. */
  accept(link: AuthenticatedLink): void {
    const { peer } = link;
    // Accepted just before the listeners closed: a draining gateway takes no new link.
    if (this.#draining || this.#closed) {
      link.socket.destroy();
      return;
    }
    if (peer.kind === 'gateway') {
      if (peer.zone === this.#init.zone) {
        // Gateways of one zone have nothing to relay to each other.
        link.socket.destroy();
        return;
      }
      this.#adopt(gatewayKey(peer.zone, peer.name), this.#session(link, 'acceptor'));
      return;
    }
    this.#session(link, 'acceptor');
  }

  /** Tries every gateway of another zone that has no link yet. */
  #dialMissing(): void {
    if (this.#closed || this.#draining) return;
    for (const gateway of this.#init.config.gateways()) {
      const key = gatewayKey(gateway.zone, gateway.name);
      if (gateway.zone === this.#init.zone || gateway.addresses.length === 0) continue;
      if (this.#peers.has(key) || this.#dialing.has(key)) continue;
      const retry = this.#retry.get(key);
      if (retry !== undefined && Date.now() < retry.atMs) continue;
      this.#dialing.add(key);
      void this.#dial(key, gateway.zone, gateway.name, gateway.addresses).finally(() => this.#dialing.delete(key));
    }
  }

  async #dial(key: string, zone: string, name: string, addresses: readonly string[]): Promise<void> {
    for (const address of addresses) {
      try {
        const link = await this.#init.transport.dial({ address, peer: { kind: 'gateway', zone, name } });
        if (this.#closed || this.#draining) {
          link.socket.destroy();
          return;
        }
        this.#retry.delete(key);
        this.#init.logger.info({ peer: key, address }, 'gateway link up');
        this.#adopt(key, this.#session(link, 'dialer'));
        return;
      } catch (error) {
        this.#init.logger.debug({ peer: key, address, err: (error as Error).message }, 'gateway unreachable at this address');
      }
    }
    const previous = this.#retry.get(key)?.delayMs ?? this.#init.retryMs ?? 1000;
    const delayMs = Math.min(MAX_RETRY_MS, previous * 2);
    this.#retry.set(key, { atMs: Date.now() + delayMs, delayMs });
  }

  #session(link: AuthenticatedLink, role: 'dialer' | 'acceptor'): Session {
    const { metrics, logger } = this.#init;
    const from = link.peer;
    const socket = link.socket;
    this.#sockets.add(socket);
    socket.once('close', () => this.#sockets.delete(socket));
    const session = new Session(link.socket, {
      role,
      onTunnel: (stream, tunnel) => {
        const grant = this.#quota.acquire(peerKeyOf(from));
        if (!grant.granted) {
          metrics.streamRefused(grant.reason);
          stream.reset(ErrorCode.RESOURCE_EXHAUSTED, `too many tunnel streams (${grant.reason})`);
          return;
        }
        stream.once('close', grant.release);
        this.#init.relay().onTunnel(stream, tunnel, from, link.peerId);
      },
      onStream: (stream) => {
        metrics.tunnelRefused('plain-stream');
        stream.reset(ErrorCode.UNKNOWN_SERVICE, 'a gateway serves no service: open a tunnel');
      },
    });
    this.#sessions.add(session);
    countReadPauses(session, metrics, logger, link.peerAddress);
    keepAlive(session, { intervalMs: this.#init.pingIntervalMs ?? 1000, onRtt: (rttMs) => metrics.linkRtt(link.peerAddress, rttMs) });
    session.on('close', (error?: Error & { code: string }) => {
      this.#sessions.delete(session);
      if (isPeerViolation(error)) {
        metrics.protocolViolation(error.code);
        logger.warn({ peer: link.peerAddress, code: error.code, err: error.message }, 'peer broke the protocol');
      }
    });
    return session;
  }

  #adopt(key: string, session: Session): void {
    if (!this.#peers.has(key)) this.#init.metrics.linkOpened();
    this.#peers.set(key, session);
    this.#changed();
    const forget = (): void => {
      if (this.#peers.get(key) !== session) return;
      this.#peers.delete(key);
      this.#init.metrics.linkClosed();
      this.#init.logger.warn({ peer: key }, 'gateway link down');
      this.#changed();
      // Try again at once: a peer that restarted is back within a retry.
      setImmediate(() => this.#dialMissing());
    };
    session.once('close', forget);
    session.once('goaway', forget);
  }

  #changed(): void {
    this.#init.onPeersChanged(this.peers());
  }

  /**
   * Sends GOAWAY on every link and dials no more: each closes once its tunnels are done. The
   * control plane hears that this gateway links to none, and routes around it.
   */
  drain(): void {
    this.#draining = true;
    this.#changed();
    for (const session of this.#sessions) session.goAway();
  }

  /** Resolves once every link's socket has closed (at once if none is open). */
  whenClosed(): Promise<void> {
    return this.#sockets.whenEmpty();
  }

  close(): void {
    this.#closed = true;
    clearInterval(this.#timer);
    for (const session of [...this.#sessions]) session.close();
  }
}
