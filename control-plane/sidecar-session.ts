/**
 * One sidecar's channel session: msgpack messages over a WebSocket whose TLS client
 * certificate fixed the sidecar's identity. The sidecar registers first; after that it acks
 * config versions, reports health and renews its certificate.
 */
import type { Logger } from 'pino';
import { WebSocket } from 'ws';
import type { RawData } from 'ws';
import type { ControlPlaneMessage, SidecarMessage } from '../proto/control.js';
import { ControlErrorCode, decodeSidecarMessage, encodeControlMessage } from '../proto/control.js';
import { TrellisError } from '../proto/errors.js';
import type { CertificateAuthority } from './ca.js';
import type { SidecarIdentity } from './cert-issuer.js';
import { signSidecarCsr } from './cert-issuer.js';
import type { ConfigPublisher, PushTarget } from './config-publisher.js';
import type { ControlPlaneMetrics } from './metrics.js';
import type { Registry } from './registry.js';

/** A session whose unsent bytes exceed this is too slow to keep; it reconnects and resyncs. */
export const MAX_SESSION_BUFFERED_BYTES = 16 * 1024 * 1024;
/** WebSocket close code for a message that breaks the channel's rules (RFC 6455). */
export const CLOSE_POLICY_VIOLATION = 1008;
const MAX_CLOSE_REASON_BYTES = 123;

/** What a session needs from the rest of the control plane. */
export interface SidecarSessionComponents {
  ca: CertificateAuthority;
  registry: Registry;
  publisher: ConfigPublisher;
  metrics: ControlPlaneMetrics;
  logger: Logger;
  leafTtlMs: number;
  /** Called when the session registers, so that an older session of the same sidecar can go. */
  onRegistered?: (session: SidecarSession) => void;
}

/** The control plane's end of one sidecar channel. */
export class SidecarSession implements PushTarget {
  /** The last config version the sidecar acknowledged. */
  ackedVersion = 0;
  /** Cleared at each ping, set by the pong; a session still clear at the next ping is dead. */
  alive = true;
  private registered = false;
  private readonly logger: Logger;

  constructor(
    private readonly ws: WebSocket,
    readonly identity: SidecarIdentity,
    private readonly components: SidecarSessionComponents,
  ) {
    this.logger = components.logger.child({ sidecarId: identity.sidecarId, service: identity.service });
    ws.on('message', (data, isBinary) => this.onFrame(data, isBinary));
    ws.on('pong', () => {
      this.alive = true;
    });
    ws.on('error', (err) => this.logger.warn({ err }, 'sidecar channel error'));
    ws.on('close', () => this.onClose());
  }

  /** Whether the sidecar has registered (only registered sessions get config). */
  get isRegistered(): boolean {
    return this.registered;
  }

  sendEncoded(bytes: Uint8Array): void {
    if (this.ws.readyState !== WebSocket.OPEN) return;
    if (this.ws.bufferedAmount > MAX_SESSION_BUFFERED_BYTES) {
      this.logger.warn({ bufferedBytes: this.ws.bufferedAmount }, 'sidecar too slow to read its config; dropping the session');
      this.ws.terminate();
      return;
    }
    this.ws.send(bytes, { binary: true });
  }

  /** Sends a ping, or ends the session if the last ping went unanswered. */
  heartbeat(): void {
    if (!this.alive) {
      this.logger.warn('sidecar missed a heartbeat; terminating the session');
      this.ws.terminate();
      return;
    }
    this.alive = false;
    this.ws.ping();
  }

  /** Closes the session with a WebSocket close code. */
  close(code: number, reason: string): void {
    this.ws.close(code, truncateUtf8(reason, MAX_CLOSE_REASON_BYTES));
  }

  private onFrame(data: RawData, isBinary: boolean): void {
    // After a refusal the close handshake is under way; whatever else arrives is moot.
    if (this.ws.readyState !== WebSocket.OPEN) return;
    if (!isBinary) return this.refuse(ControlErrorCode.INVALID, 'messages must be binary msgpack frames');
    let message: SidecarMessage;
    try {
      message = decodeSidecarMessage(toBuffer(data));
    } catch (err) {
      const code = err instanceof TrellisError ? err.code : ControlErrorCode.INVALID;
      return this.refuse(code, (err as Error).message);
    }
    if (!this.registered && message.type !== 'register') {
      return this.refuse(ControlErrorCode.NOT_REGISTERED, `"${message.type}" before "register"`);
    }
    this.handle(message);
  }

  private handle(message: SidecarMessage): void {
    const { registry, publisher } = this.components;
    const { sidecarId, service } = this.identity;
    switch (message.type) {
      case 'register': {
        const registration = { sidecarId, service, address: message.address, zone: message.zone, weight: message.weight };
        this.track(registry.register(this, registration), 'register');
        if (!this.registered) this.logger.info({ address: message.address, zone: message.zone }, 'sidecar registered');
        this.registered = true;
        publisher.subscribe(this);
        this.components.onRegistered?.(this);
        return;
      }
      case 'ack':
        this.ackedVersion = Math.max(this.ackedVersion, message.version);
        return;
      case 'health':
        this.track(registry.setHealthy(this, service, sidecarId, message.healthy), 'health');
        return;
      case 'renew':
        return this.renew(message.csrPem);
      case 'deregister':
        this.logger.info('sidecar deregistered (draining)');
        this.track(registry.deregister(this, service, sidecarId), 'deregister');
        return;
    }
  }

  private renew(csrPem: string): void {
    const { ca, leafTtlMs, metrics } = this.components;
    try {
      const issued = signSidecarCsr(ca, csrPem, this.identity, leafTtlMs);
      metrics.certificateIssued('renew');
      this.send({ type: 'certificate', certPem: issued.certPem, caPems: ca.caPems(), expiresAt: issued.expiresAt });
    } catch (err) {
      // A bad CSR is the sidecar's problem to fix, not a reason to drop its config channel.
      const code = err instanceof TrellisError ? err.code : ControlErrorCode.INTERNAL;
      if (!(err instanceof TrellisError)) this.logger.error({ err }, 'renewal failed');
      this.send({ type: 'error', code, message: (err as Error).message });
    }
  }

  /** Reports a failed store write to the sidecar without ending its session. */
  private track(done: Promise<number>, what: string): void {
    done.catch((err: unknown) => {
      this.logger.error({ err }, `cannot persist ${what}`);
      this.send({ type: 'error', code: ControlErrorCode.INTERNAL, message: `cannot persist ${what}` });
    });
  }

  private refuse(code: string, message: string): void {
    this.logger.warn({ code, message }, 'refusing sidecar message');
    this.send({ type: 'error', code, message });
    this.close(CLOSE_POLICY_VIOLATION, message);
  }

  private send(message: ControlPlaneMessage): void {
    this.sendEncoded(encodeControlMessage(message));
  }

  private onClose(): void {
    this.components.publisher.unsubscribe(this);
    if (this.registered) this.components.registry.release(this, this.identity.service, this.identity.sidecarId);
    this.logger.info('sidecar channel closed');
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
