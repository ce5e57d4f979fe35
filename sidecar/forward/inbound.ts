import net from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { ErrorCode, errorCodeName } from '../../proto/errors.js';
import { peerKeyOf } from '../links/listener-guard.js';
import type { RevokedPeers } from '../links/revoked-peers.js';
import type { AuthenticatedLink } from '../links/transport.js';
import type { TunnelAcceptor } from '../tunnel/tunnel-acceptor.js';
import type { SidecarMetrics } from '../metrics/metrics.js';
import type { MuxStream } from '../mux/index.js';
import { isPeerViolation } from '../mux/errors.js';
import { Session } from '../mux/index.js';
import type { HostPort } from '../net/address.js';
import { ActiveSet } from './active-set.js';
import { joinSocketToStream } from './join.js';
import { StreamQuota } from './stream-quota.js';
import { countReadPauses } from '../links/read-pauses.js';

export interface InboundInit {
  /** The service this sidecar serves. */
  service: string;
  /** The local app; without it the sidecar serves no inbound streams. */
  app: HostPort | undefined;
  /** Asked per stream, with the caller's service from its certificate. */
  isAllowed(from: string, to: string): boolean;
  /** Asked of every open stream by {@link InboundHandler.resetDenied}: whether the policy now closes it. @default never */
  closesOpen?: (from: string, to: string) => boolean;
  /** Refuses links of revoked peers and closes them once revoked. @default none revoked */
  revokedPeers?: RevokedPeers;
  metrics: SidecarMetrics;
  logger: Logger;
  initialWindowBytes?: number;
  /** Takes tunnels that gateways bring to this sidecar; without it they are refused. */
  tunnels?: TunnelAcceptor;
  /** Caps inbound streams per peer identity (across its links) and in total. @default new StreamQuota() (10,000 per peer, 16,000 in all) */
  streamQuota?: StreamQuota;
}

/** How long a caller told of a draining gateway has to send GOAWAY on its tunnelled link before this end does. */
const CARRIER_DRAIN_GRACE_MS = 2000;

/**
 * The destination side: every stream a peer opens is checked (service, then policy for the
 * peer's identity), then joined to a fresh connection to the local app.
 */
export class InboundHandler {
  readonly #init: InboundInit;
  readonly #sessions = new ActiveSet<Session>();
  /** Every link's socket until it has closed: a session that ended gracefully may still be sending its last frames. */
  readonly #sockets = new ActiveSet<Duplex>();
  readonly #quota: StreamQuota;
  /** Inbound streams joined to the app, with the caller's service. */
  readonly #open = new Map<MuxStream, string>();

  constructor(init: InboundInit) {
    this.#init = init;
    this.#quota = init.streamQuota ?? new StreamQuota();
  }

  /**
   * Takes a newly accepted, authenticated link: from a sidecar (streams to this sidecar's
   * service), from a gateway (tunnels only), or from inside a tunnel (the source sidecar's
   * own link, end to end).
   */
  accept(link: AuthenticatedLink): void {
    const { peer } = link;
    const tunnels = this.#init.tunnels;
    if (this.#init.revokedPeers?.admit(link, () => session.close()) === false) return;
    const session = new Session(link.socket, {
      role: 'acceptor',
      initialWindowBytes: this.#init.initialWindowBytes,
      onStream:
        peer.kind === 'service'
          ? (stream, service) => this.#onStream(stream, service, peer.service)
          : (stream) => this.#refuse(stream, ErrorCode.POLICY_DENIED, 'a gateway opens tunnels, not streams'),
      onTunnel: peer.kind === 'gateway' && tunnels !== undefined ? (stream, tunnel) => tunnels.onTunnel(stream, tunnel, peer) : undefined,
    });
    this.#sessions.add(session);
    // A tunnel's gateway is draining. The caller, told too, sends GOAWAY and opens its new
    // streams elsewhere; a GOAWAY from this end could cross an OPEN it sent meanwhile and
    // refuse a connection. So this end goes away itself only if the caller has not after a grace.
    link.onCarrierDrain?.((gateway) => {
      setTimeout(() => session.goAway(ErrorCode.NONE, `gateway ${gateway} is draining`), CARRIER_DRAIN_GRACE_MS).unref();
    });
    const socket = link.socket;
    this.#sockets.add(socket);
    socket.once('close', () => this.#sockets.delete(socket));
    countReadPauses(session, this.#init.metrics, this.#init.logger, link.peerAddress);
    session.on('close', (error?: Error & { code: string }) => {
      this.#sessions.delete(session);
      if (isPeerViolation(error)) {
        this.#init.metrics.protocolViolation(error.code);
        this.#init.logger.warn({ peer: link.peerAddress, code: error.code, err: error.message }, 'peer broke the protocol');
      }
    });
  }

  /** Sends GOAWAY on every inbound link. */
  drain(): void {
    for (const session of this.#sessions) session.goAway();
  }

  /** Inbound links open now. */
  get activeLinks(): number {
    return this.#sessions.size;
  }

  /**
   * Resolves once every inbound link has closed (after a drain: once their streams are done)
   * and its socket with it: until then the socket may still hold the streams' last frames.
   */
  async whenIdle(): Promise<void> {
    await this.#sessions.whenEmpty();
    await this.#sockets.whenEmpty();
  }

  close(): void {
    for (const session of [...this.#sessions]) session.close();
  }

  /**
   * Resets (POLICY_DENIED, on both ends: the peer gets the RESET, the app a TCP reset) every
   * open stream that the policy now closes. Call after each policy change.
   */
  resetDenied(): number {
    const closesOpen = this.#init.closesOpen;
    if (closesOpen === undefined) return 0;
    let reset = 0;
    for (const [stream, peerService] of [...this.#open]) {
      if (!closesOpen(peerService, this.#init.service)) continue;
      this.#init.metrics.policyDenied(peerService, this.#init.service);
      this.#refuse(stream, ErrorCode.POLICY_DENIED, `policy now denies ${peerService} -> ${this.#init.service}`);
      reset += 1;
    }
    if (reset > 0) this.#init.logger.info({ reset }, 'reset open streams the policy now denies');
    return reset;
  }

  #onStream(stream: MuxStream, service: string, peerService: string): void {
    const { app, metrics, logger } = this.#init;
    if (service !== this.#init.service || app === undefined) {
      this.#refuse(stream, ErrorCode.UNKNOWN_SERVICE, `this sidecar does not serve "${service}"`);
      return;
    }
    if (!this.#init.isAllowed(peerService, service)) {
      metrics.policyDenied(peerService, service);
      logger.info({ from: peerService, to: service }, 'stream denied by policy');
      this.#refuse(stream, ErrorCode.POLICY_DENIED, `policy denies ${peerService} -> ${service}`);
      return;
    }
    // Before the app is dialled: a refused stream costs no descriptor.
    const grant = this.#quota.acquire(peerKeyOf({ kind: 'service', service: peerService }));
    if (!grant.granted) {
      metrics.streamRefused(grant.reason);
      this.#refuse(stream, ErrorCode.RESOURCE_EXHAUSTED, grant.reason === 'too-many-streams' ? `at most ${this.#quota.maxStreams} inbound streams at once` : `at most ${this.#quota.maxStreamsPerPeer} inbound streams at once from ${peerService}`);
      return;
    }
    metrics.streamOpened('inbound');
    this.#open.set(stream, peerService);
    // `on`: these come at most once, and a `once` wrapper per open stream adds up (see outbound.ts).
    stream.on('close', () => {
      this.#open.delete(stream);
      grant.release();
      metrics.streamClosed('inbound');
    });
    stream.on('reset', (code: number, _message: string, local: boolean) => {
      if (local) metrics.streamError(errorCodeName(code));
    });
    const socket = net.connect({ host: app.host, port: app.port, allowHalfOpen: true, noDelay: true });
    joinSocketToStream(socket, stream, metrics, { appConnecting: true });
  }

  #refuse(stream: MuxStream, code: ErrorCode, message: string): void {
    this.#init.metrics.streamError(errorCodeName(code));
    stream.reset(code, message);
  }
}
