/**
 * One sidecar's (or gateway's) channel session: msgpack messages over a WebSocket whose TLS
 * client certificate fixed the identity. The peer registers first; after that it acks config
 * versions, renews its certificate, and sends what its role allows (see session-roles.ts).
 */
import type { Logger } from 'pino';
import { WebSocket } from 'ws';
import type { RawData } from 'ws';
import type { ControlPlaneMessage, SidecarMessage } from '../proto/control.js';
import { CHANNEL_VERSION, ControlErrorCode, decodeSidecarMessage, encodeControlMessage, MAX_SUBSCRIPTIONS } from '../proto/control.js';
import { TrellisError } from '../proto/errors.js';
import type { ConfigPublisher, PushTarget } from './config-publisher.js';
import type { ControlPlaneMetrics } from './metrics.js';
import type { ReportStore } from './reports.js';
import type { ChannelIdentity } from './peer-identity.js';
import type { SessionRole, SessionRoleComponents } from './session-roles.js';
import { sessionRoleFor } from './session-roles.js';

/** A session whose unsent bytes exceed this is too slow to keep; it reconnects and resyncs. */
export const MAX_SESSION_BUFFERED_BYTES = 16 * 1024 * 1024;
/** WebSocket close code for a message that breaks the channel's rules (RFC 6455). */
export const CLOSE_POLICY_VIOLATION = 1008;
const MAX_CLOSE_REASON_BYTES = 123;
/** Messages about the config push, which wait for the push to start. */
const PUSH_MESSAGES: ReadonlySet<SidecarMessage['type']> = new Set(['ack', 'nack', 'subscribe', 'unsubscribe']);

/** What a session needs from the rest of the control plane. */
export interface SidecarSessionComponents extends SessionRoleComponents {
  publisher: ConfigPublisher;
  metrics: ControlPlaneMetrics;
  logger: Logger;
  /** Keeps the sessions' reports; without it reports are not announced (channel version 1). */
  reports?: { store: ReportStore; intervalMs: number };
  /** Called when the session registers, so that an older session of the same owner can go. */
  onRegistered?: (session: SidecarSession) => void;
}

/** The control plane's end of one sidecar (or gateway) channel. */
export class SidecarSession implements PushTarget {
  /** The last config version the sidecar acknowledged. */
  ackedVersion = 0;
  /** Cleared at each ping, set by the pong; a session still clear at the next ping is dead. */
  alive = true;
  #registered = false;
  /** Push messages that arrived before the push started (see handle), in order; undefined once it runs. */
  #pendingPushMessages: SidecarMessage[] | undefined;
  /** Settles once the registration has reached the config (or failed to). */
  #registeredInConfig: Promise<void> = Promise.resolve();
  readonly #logger: Logger;
  readonly #role: SessionRole;
  readonly #ws: WebSocket;
  readonly #components: SidecarSessionComponents;

  constructor(
    ws: WebSocket,
    readonly identity: ChannelIdentity,
    components: SidecarSessionComponents,
  ) {
    this.#ws = ws;
    this.#components = components;
    const logger = components.logger.child({ identityKind: identity.kind });
    this.#role = sessionRoleFor(identity, components, logger);
    this.#logger = logger.child(this.#role.logFields);
    ws.on('message', (data, isBinary) => this.#onFrame(data, isBinary));
    ws.on('pong', () => {
      this.alive = true;
    });
    ws.on('error', (err) => this.#logger.warn({ err }, 'sidecar channel error'));
    ws.on('close', () => this.#onClose());
  }

  /** Whether the sidecar has registered (only registered sessions get config). */
  get isRegistered(): boolean {
    return this.#registered;
  }

  /** The channel keeps one registered session per owner key (sidecar id, or gateway zone and name). */
  get ownerKey(): string {
    return this.#role.ownerKey;
  }

  /** Bytes queued on the WebSocket and not yet written to its socket. */
  get bufferedBytes(): number {
    return this.#ws.bufferedAmount;
  }

  sendEncoded(bytes: Uint8Array): void {
    if (this.#ws.readyState !== WebSocket.OPEN) return;
    if (this.#ws.bufferedAmount > MAX_SESSION_BUFFERED_BYTES) {
      this.#logger.warn({ bufferedBytes: this.#ws.bufferedAmount }, 'sidecar too slow to read its config; dropping the session');
      this.#ws.terminate();
      return;
    }
    this.#ws.send(bytes, { binary: true });
  }

  /** Sends a ping, or ends the session if the last ping went unanswered. */
  heartbeat(): void {
    if (!this.alive) {
      this.#logger.warn('sidecar missed a heartbeat; terminating the session');
      this.#ws.terminate();
      return;
    }
    this.alive = false;
    this.#ws.ping();
  }

  /** Closes the session with a WebSocket close code. */
  close(code: number, reason: string): void {
    this.#ws.close(code, truncateUtf8(reason, MAX_CLOSE_REASON_BYTES));
  }

  #onFrame(data: RawData, isBinary: boolean): void {
    // After a refusal the close handshake is under way; whatever else arrives is moot.
    if (this.#ws.readyState !== WebSocket.OPEN) return;
    if (!isBinary) return this.#refuse(ControlErrorCode.INVALID, 'messages must be binary msgpack frames');
    let message: SidecarMessage;
    try {
      message = decodeSidecarMessage(toBuffer(data));
    } catch (err) {
      const code = err instanceof TrellisError ? err.code : ControlErrorCode.INVALID;
      return this.#refuse(code, (err as Error).message);
    }
    // Another kind's message first, so that a gateway sending `register` hears it may not,
    // rather than that it has not registered.
    if (!this.#role.accepts(message.type)) {
      return this.#refuse(ControlErrorCode.INVALID, `a ${this.identity.kind} may not send "${message.type}"`);
    }
    if (!this.#registered && message.type !== this.#role.registerType) {
      return this.#refuse(ControlErrorCode.NOT_REGISTERED, `"${message.type}" before "${this.#role.registerType}"`);
    }
    this.#handle(message);
  }

  #handle(message: SidecarMessage): void {
    if (this.#pendingPushMessages !== undefined && PUSH_MESSAGES.has(message.type)) {
      this.#pendingPushMessages.push(message);
      return;
    }
    switch (message.type) {
      case 'ack':
        this.ackedVersion = Math.max(this.ackedVersion, message.version);
        this.#components.publisher.acked(this, message.version);
        return;
      case 'nack':
        this.#logger.warn({ version: message.version, haveVersion: message.haveVersion }, 'sidecar could not apply a config message; sending a snapshot');
        return this.#components.publisher.nacked(this);
      case 'subscribe':
        if (!this.#components.publisher.subscribe(this, message.services, MAX_SUBSCRIPTIONS)) {
          this.#send({ type: 'error', code: ControlErrorCode.SUBSCRIPTION_LIMIT, message: `a session may subscribe to at most ${MAX_SUBSCRIPTIONS} services` });
        }
        return;
      case 'unsubscribe':
        return this.#components.publisher.unsubscribe(this, message.services);
      case 'renew':
        return this.#renew(message.csrPem);
      case 'report':
        this.#components.reports?.store.record(this, this.ownerKey, this.identity, message);
        return;
      default: {
        const done = this.#role.handle(this, message);
        this.#track(done, message.type);
        if (message.type === this.#role.registerType && !this.#registered) this.#registeredInConfig = done.then(() => undefined, () => undefined);
      }
    }
    if (message.type !== this.#role.registerType || this.#registered) return;
    this.#registered = true;
    this.#components.onRegistered?.(this);
    // The first snapshot holds the sidecar's own registration: the push starts once it is in
    // the config (written to the store and back through its watch), or failed to get there.
    // What the sidecar says of its subscriptions meanwhile waits for it.
    this.#pendingPushMessages = [];
    void this.#registeredInConfig.then(() => {
      const pending = this.#pendingPushMessages ?? [];
      this.#pendingPushMessages = undefined;
      if (this.#ws.readyState !== WebSocket.OPEN) return;
      this.#attach(message);
      for (const queued of pending) this.#handle(queued);
    });
  }

  /** Starts the config push, scoped from channel 2 on (a gateway gets everything: it relays to any endpoint of its zone). */
  #attach(message: Extract<SidecarMessage, { type: 'register' | 'register-gateway' }>): void {
    const channel = Math.min(message.channel ?? 1, CHANNEL_VERSION);
    const scoped = channel >= 2 && this.identity.kind === 'sidecar';
    this.#components.publisher.attach(this, {
      channel,
      scope: scoped && this.identity.kind === 'sidecar' ? { kind: 'service', service: this.identity.service } : { kind: 'all' },
      services: message.type === 'register' ? (message.services ?? []) : [],
      resume: message.resume,
    });
  }

  #renew(csrPem: string): void {
    const { ca, metrics } = this.#components;
    try {
      const issued = this.#role.renew(csrPem);
      metrics.certificateIssued('renew');
      this.#send({ type: 'certificate', certPem: issued.certPem, caPems: ca.caPems(), expiresAt: issued.expiresAt });
    } catch (err) {
      // A bad CSR is the sidecar's problem to fix, not a reason to drop its config channel.
      const code = err instanceof TrellisError ? err.code : ControlErrorCode.INTERNAL;
      if (!(err instanceof TrellisError)) this.#logger.error({ err }, 'renewal failed');
      this.#send({ type: 'error', code, message: (err as Error).message });
    }
  }

  /** Reports a failed store write to the sidecar without ending its session. */
  #track(done: Promise<number>, what: string): void {
    done.catch((err: unknown) => {
      this.#logger.error({ err }, `cannot persist ${what}`);
      this.#send({ type: 'error', code: ControlErrorCode.INTERNAL, message: `cannot persist ${what}` });
    });
  }

  #refuse(code: string, message: string): void {
    this.#logger.warn({ code, message }, 'refusing sidecar message');
    this.#send({ type: 'error', code, message });
    this.close(CLOSE_POLICY_VIOLATION, message);
  }

  #send(message: ControlPlaneMessage): void {
    this.sendEncoded(encodeControlMessage(message));
  }

  #onClose(): void {
    this.#components.publisher.detach(this);
    this.#components.reports?.store.forget(this, this.ownerKey);
    if (this.#registered) this.#role.release(this);
    this.#logger.info('channel closed');
  }
}

function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

function truncateUtf8(text: string, maxBytes: number): string {
  const bytes = Buffer.from(text, 'utf8');
  return bytes.length <= maxBytes ? text : bytes.subarray(0, maxBytes).toString('utf8').replace(/\uFFFD+$/, '');
}
