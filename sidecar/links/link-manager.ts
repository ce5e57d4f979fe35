import { performance } from 'node:perf_hooks';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { ErrorCode, TrellisError } from '../../proto/errors.js';
import { isPeerViolation } from '../mux/errors.js';
import type { SidecarMetrics } from '../metrics/metrics.js';
import type { MuxStream } from '../mux/index.js';
import { Session } from '../mux/index.js';
import { keepAlive } from './keepalive.js';
import type { RevokedPeers } from './revoked-peers.js';
import type { LinkTarget, LinkTransport } from './transport.js';
import { countReadPauses } from './read-pauses.js';
import { ActiveSet } from '../forward/active-set.js';

/** What makes links: a transport, or a router over several (direct, through gateways). */
export type LinkDialer = Pick<LinkTransport, 'dial'>;

export interface LinkManagerInit {
  dialer: LinkDialer;
  metrics: SidecarMetrics;
  logger: Logger;
  /** Passed to every session: credit per stream, per direction. */
  initialWindowBytes?: number;
  /** PING every link this often; a link whose PONG is 3 intervals late is closed. @default 5000 */
  pingIntervalMs?: number;
  /** Each RTT measured on the link to `target`. */
  onRtt?: (target: LinkTarget, rttMs: number) => void;
  /** Called for each link that goes down (closed with an error or lost). */
  onLinkDown?: (target: LinkTarget) => void;
  /** Called for each link whose peer sent GOAWAY (it is draining). */
  onGoAway?: (target: LinkTarget) => void;
  /** Refuses revoked peers and closes links to peers revoked later. @default none revoked */
  revokedPeers?: RevokedPeers;
}

/** @default 5000 */
const DEFAULT_PING_INTERVAL_MS = 5000;

/**
 * Keeps one long-lived outbound link per peer sidecar, dialled on first use and reused by
 * every later stream. Concurrent first uses share one dial.
 */
export class LinkManager {
  readonly #init: LinkManagerInit;
  readonly #sessions = new Map<string, Session>();
  /** Every link open now, also those that are going away (no longer in #sessions). */
  readonly #live = new Set<Session>();
  readonly #dialing = new Map<string, Promise<Session>>();
  /** Every link's socket until it has closed: a link that ended gracefully may still be sending its last frames. */
  readonly #sockets = new ActiveSet<Duplex>();
  #closed = false;

  constructor(init: LinkManagerInit) {
    this.#init = init;
  }

  /** Opens a stream to `service` on the link to `target`, dialling the link if needed. */
  async openStream(target: LinkTarget, service: string): Promise<MuxStream> {
    const session = await this.sessionFor(target);
    return session.openStream(service);
  }

  /** Number of outbound links open now. */
  get size(): number {
    return this.#sessions.size;
  }

  /** Sends GOAWAY on every link; they close once their streams are done. */
  drain(): void {
    this.#closed = true;
    for (const session of this.#live) session.goAway();
  }

  close(): void {
    this.#closed = true;
    for (const session of [...this.#live]) session.close();
    this.#sessions.clear();
  }

  /**
   * Resolves once every link's socket has closed (at once if none is open). After a drain, a
   * link ends once its streams are done, but its socket still holds their last frames; a
   * process that exits before then loses them (the peer sees the link end with streams open).
   */
  whenClosed(): Promise<void> {
    return this.#sockets.whenEmpty();
  }

  /** The link to `target`, dialled on first use; concurrent first uses share one dial. */
  sessionFor(target: LinkTarget): Promise<Session> {
    if (this.#closed) return Promise.reject(new TrellisError('TRELLIS_ERR_GOING_AWAY', 'sidecar is shutting down'));
    const key = linkKeyOf(target);
    const existing = this.#sessions.get(key);
    // A link that is going away (either end sent GOAWAY) finishes its streams; new ones need a new link.
    if (existing !== undefined && existing.accepting) return Promise.resolve(existing);
    if (existing !== undefined) this.#sessions.delete(key);
    let dialing = this.#dialing.get(key);
    if (dialing === undefined) {
      dialing = this.#dial(key, target).finally(() => this.#dialing.delete(key));
      this.#dialing.set(key, dialing);
    }
    return dialing;
  }

  async #dial(key: string, target: LinkTarget): Promise<Session> {
    const { dialer, metrics, logger, revokedPeers } = this.#init;
    const endpointId = target.endpoint?.sidecarId;
    if (endpointId !== undefined && revokedPeers?.isRevokedId(endpointId) === true) {
      throw new TrellisError('TRELLIS_ERR_PEER_REVOKED', `${endpointId} is revoked`);
    }
    const started = performance.now();
    let link;
    try {
      link = await dialer.dial(target);
    } catch (error) {
      metrics.linkDialed((performance.now() - started) / 1000, false);
      throw error;
    }
    metrics.linkDialed((performance.now() - started) / 1000, true);
    let revokedLater = (): void => void link.socket.destroy();
    if (revokedPeers !== undefined && !revokedPeers.admit(link, () => revokedLater())) {
      throw new TrellisError('TRELLIS_ERR_PEER_REVOKED', `${target.address} shows a revoked certificate`);
    }
    const socket = link.socket;
    this.#sockets.add(socket);
    socket.once('close', () => this.#sockets.delete(socket));
    const session = new Session(socket, {
      role: 'dialer',
      initialWindowBytes: this.#init.initialWindowBytes,
      // Peers do not open streams on links we dialled; refuse politely if one tries.
      onStream: (stream) => stream.reset(ErrorCode.PROTOCOL_ERROR, 'streams are opened by the dialling side only'),
    });
    revokedLater = () => session.close(new TrellisError('TRELLIS_ERR_PEER_REVOKED', `${target.address} was revoked`));
    // Counted per link, not per key: a link that went away may still be open beside its successor.
    metrics.linkOpened();
    this.#sessions.set(key, session);
    this.#live.add(session);
    countReadPauses(session, metrics, logger, target.address);
    keepAlive(session, {
      intervalMs: this.#init.pingIntervalMs ?? DEFAULT_PING_INTERVAL_MS,
      onRtt: (rttMs) => {
        metrics.linkRtt(target.address, rttMs);
        this.#init.onRtt?.(target, rttMs);
      },
    });
    session.on('close', (error?: TrellisError) => {
      metrics.linkClosed();
      this.#live.delete(session);
      if (this.#sessions.get(key) === session) this.#sessions.delete(key);
      if (error !== undefined) {
        this.#init.onLinkDown?.(target);
        if (isPeerViolation(error)) metrics.protocolViolation(error.code);
        logger.warn({ peer: target.address, code: error.code, err: error.message }, 'link closed with an error');
      } else {
        logger.debug({ peer: target.address }, 'link closed');
      }
    });
    session.on('goaway', () => {
      // The peer is draining: new streams must go to a new link (or another endpoint).
      if (this.#sessions.get(key) === session) this.#sessions.delete(key);
      this.#init.onGoAway?.(target);
    });
    link.onCarrierDrain?.((gateway) => {
      logger.info({ peer: target.address, gateway }, 'a gateway of the tunnel is draining: new streams take a new tunnel');
      session.goAway(ErrorCode.NONE, `gateway ${gateway} is draining`);
    });
    logger.info({ peer: target.address, identity: target.peer }, 'link up');
    return session;
  }
}

/** One link per peer identity and address. */
function linkKeyOf(target: LinkTarget): string {
  const { peer } = target;
  return `${peer.kind === 'service' ? peer.service : `gw/${peer.zone}/${peer.name}`}@${target.address}`;
}
