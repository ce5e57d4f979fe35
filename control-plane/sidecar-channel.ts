/**
 * The sidecar channel: WebSocket upgrades at `/v1/sidecar` on the HTTPS listener, accepted
 * only from TLS clients whose certificate chains to the CA and names a sidecar or a gateway.
 * Refusals are plain HTTP answers sent before any upgrade, so a sidecar sees why.
 */
import type { IncomingMessage } from 'node:http';
import type { Server } from 'node:https';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { WebSocketServer } from 'ws';
import type { ApiErrorBody } from '../proto/control.js';
import { ControlErrorCode, MAX_CONTROL_MESSAGE_BYTES, SIDECAR_CHANNEL_PATH } from '../proto/control.js';
import { CHANNEL_VERSION, CHANNEL_VERSION_HEADER, REPORT_INTERVAL_HEADER } from '../proto/control.js';
import { channelIdentityOf } from './peer-identity.js';
import type { RevocationService } from './revocations.js';
import type { SidecarSessionComponents } from './sidecar-session.js';
import { SidecarSession } from './sidecar-session.js';

/** Default interval between server pings; a session that misses one pong is terminated. */
export const DEFAULT_PING_INTERVAL_MS = 10_000;
/** WebSocket close code for a server going away (RFC 6455). */
const CLOSE_GOING_AWAY = 1001;
/** Private-use close code: a newer session of the same sidecar (or gateway) registered. */
export const CLOSE_REPLACED = 4000;
/** Private-use close code: the session's certificate was revoked. */
export const CLOSE_REVOKED = 4003;

/** What a {@link SidecarChannel} works with: what its sessions need, and the revocations. */
type SidecarChannelComponents = SidecarSessionComponents & {
  /** Refuses revoked certificates and closes their sessions (4003), which also ends their renewals. @default none revoked */
  revocations?: RevocationService;
};

/** Accepts sidecar sessions and keeps them alive. */
export class SidecarChannel {
  readonly #wss = new WebSocketServer({ noServer: true, maxPayload: MAX_CONTROL_MESSAGE_BYTES });
  readonly #sessions = new Set<SidecarSession>();
  /** The registered session of each owner key (sidecar id, or gateway zone and name). */
  readonly #sessionByOwner = new Map<string, SidecarSession>();
  readonly #pingTimer: NodeJS.Timeout;
  readonly #logger: Logger;
  readonly #components: SidecarChannelComponents;

  constructor(
    server: Server,
    components: SidecarChannelComponents,
    pingIntervalMs = DEFAULT_PING_INTERVAL_MS,
  ) {
    this.#components = components;
    this.#logger = components.logger.child({ component: 'sidecar-channel' });
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.#onUpgrade(req, socket, head));
    // Channel version 2 (reports) is announced in the upgrade answer, where older sidecars ignore it.
    const reports = components.reports;
    if (reports !== undefined) this.#wss.on('headers', (headers) => headers.push(`${CHANNEL_VERSION_HEADER}: ${CHANNEL_VERSION}`, `${REPORT_INTERVAL_HEADER}: ${reports.intervalMs}`));
    this.#pingTimer = setInterval(() => {
      for (const session of this.#sessions) session.heartbeat();
    }, pingIntervalMs);
    this.#pingTimer.unref();
    components.revocations?.onChange(() => this.closeRevoked());
  }

  /** Closes (4003) every session whose certificate a revocation now covers. */
  closeRevoked(): void {
    const revocations = this.#components.revocations;
    if (revocations === undefined) return;
    for (const session of this.#sessions) {
      const refusal = revocations.refusalFor(session.identity);
      if (refusal === undefined) continue;
      this.#logger.warn({ ownerKey: session.ownerKey, reason: refusal }, 'closing a revoked session');
      session.close(CLOSE_REVOKED, refusal);
    }
  }

  /** Sessions currently open. */
  get connectedCount(): number {
    return this.#sessions.size;
  }

  /** The acked version of every registered session, for the lag metrics. */
  *ackedVersions(): Iterable<number> {
    for (const session of this.#sessions) if (session.isRegistered) yield session.ackedVersion;
  }

  /** The config version the registered session of `ownerKey` (a sidecar id, or `gw/<zone>/<name>`) acked last. */
  ackedVersionOf(ownerKey: string): number | undefined {
    return this.#sessionByOwner.get(ownerKey)?.ackedVersion;
  }

  /** The config version last sent to the registered session of `ownerKey`: the one it should apply and ack. */
  sentVersionOf(ownerKey: string): number | undefined {
    const session = this.#sessionByOwner.get(ownerKey);
    return session === undefined ? undefined : this.#components.publisher.sentVersionOf(session);
  }

  /** Closes every session (1001) and stops accepting; resolves once all have closed. */
  async close(): Promise<void> {
    clearInterval(this.#pingTimer);
    const closed = [...this.#wss.clients].map((ws) => new Promise<void>((resolve) => ws.once('close', () => resolve())));
    for (const session of this.#sessions) session.close(CLOSE_GOING_AWAY, 'control plane shutting down');
    // A peer that does not answer the close handshake must not hold up shutdown.
    const forceTimer = setTimeout(() => this.#wss.clients.forEach((ws) => ws.terminate()), 1000);
    await Promise.all(closed);
    clearTimeout(forceTimer);
    await new Promise<void>((resolve) => this.#wss.close(() => resolve()));
  }

  #onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const path = new URL(req.url ?? '/', 'https://control-plane').pathname;
    if (path !== SIDECAR_CHANNEL_PATH) return refuseUpgrade(socket, 404, ControlErrorCode.NOT_FOUND, `no WebSocket endpoint at ${path}`);
    const identity = channelIdentityOf(socket as TLSSocket, this.#components.ca.trustDomain);
    if ('refused' in identity) {
      this.#logger.warn({ reason: identity.refused, remote: req.socket.remoteAddress }, 'refused sidecar channel');
      return refuseUpgrade(socket, 401, ControlErrorCode.UNAUTHORIZED, identity.refused);
    }
    const revoked = this.#components.revocations?.refusalFor(identity);
    if (revoked !== undefined) {
      this.#logger.warn({ reason: revoked, remote: req.socket.remoteAddress }, 'refused a revoked sidecar channel');
      return refuseUpgrade(socket, 403, ControlErrorCode.REVOKED, revoked);
    }
    // A leaf issued before the CA kept its ledger still counts for rotation once it is shown.
    const leaf = (socket as TLSSocket).getPeerX509Certificate();
    if (leaf !== undefined) this.#components.ca.notePresentedLeaf(identity.kind === 'sidecar' ? identity.sidecarId : identity.gatewayId, leaf);
    this.#wss.handleUpgrade(req, socket, head, (ws) => {
      const session = new SidecarSession(ws, identity, { ...this.#components, onRegistered: (s) => this.#onRegistered(s) });
      this.#sessions.add(session);
      ws.once('close', () => {
        this.#sessions.delete(session);
        if (this.#sessionByOwner.get(session.ownerKey) === session) this.#sessionByOwner.delete(session.ownerKey);
      });
    });
  }

  /** A sidecar (or gateway) has one channel: a newer registration means the older session is stale. */
  #onRegistered(session: SidecarSession): void {
    const previous = this.#sessionByOwner.get(session.ownerKey);
    this.#sessionByOwner.set(session.ownerKey, session);
    if (previous !== undefined && previous !== session) previous.close(CLOSE_REPLACED, `replaced by a newer session of this ${session.identity.kind}`);
  }
}

function refuseUpgrade(socket: Duplex, status: number, code: string, message: string): void {
  const body = JSON.stringify({ error: { code, message } } satisfies ApiErrorBody);
  const reason = status === 404 ? 'Not Found' : status === 403 ? 'Forbidden' : 'Unauthorized';
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}
