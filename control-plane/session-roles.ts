/**
 * What a channel session does for the identity on its certificate. A sidecar registers an
 * endpoint and reports health; a gateway registers its gateway entry and reports its links.
 * Each kind may send only its own messages (plus `ack`, `renew` and `deregister`): the other
 * kind's are refused as invalid, so a certificate of one kind can never write the other's entries.
 */
import type { Logger } from 'pino';
import type { SidecarMessage } from '../proto/control.js';
import type { CertificateAuthority, IssuedCertificate } from './ca.js';
import { signGatewayCsr, signSidecarCsr } from './cert-issuer.js';
import type { GatewayRegistry } from './gateway-registry.js';
import type { ChannelIdentity } from './peer-identity.js';
import type { Registry } from './registry.js';

type MessageType = SidecarMessage['type'];

/** Messages every identity may send; the session handles `ack`, `nack`, `renew` and `report` itself. */
const COMMON_MESSAGES: ReadonlySet<MessageType> = new Set(['ack', 'renew', 'deregister', 'report', 'nack']);

/** The identity-specific part of a session. */
export interface SessionRole {
  /** The message a session must send first (and may send again to re-register). */
  readonly registerType: 'register' | 'register-gateway';
  /** The channel keeps one session per owner key: a newer session replaces an older one. */
  readonly ownerKey: string;
  /** Log fields naming the identity. */
  readonly logFields: Record<string, string>;
  /** Whether this identity may send messages of `type`. */
  accepts(type: MessageType): boolean;
  /**
   * Handles a message this role owns (anything accepted but `ack` and `renew`), with `holder`
   * (the session) holding the lease. Resolves with the config version once it is durable.
   */
  handle(holder: object, message: SidecarMessage): Promise<number>;
  /** Signs a renewed leaf for the identity. @throws ApiError `TRELLIS_ERR_BAD_CSR` */
  renew(csrPem: string): IssuedCertificate;
  /** The session ended: its entry now lives for the lease time. */
  release(holder: object): void;
}

/** What the roles need. */
export interface SessionRoleComponents {
  ca: CertificateAuthority;
  registry: Registry;
  gateways: GatewayRegistry;
  leafTtlMs: number;
}

/** The role of the identity on a session's certificate. */
export function sessionRoleFor(identity: ChannelIdentity, components: SessionRoleComponents, logger: Logger): SessionRole {
  return identity.kind === 'sidecar' ? new SidecarRole(identity, components, logger) : new GatewayRole(identity, components, logger);
}

const SIDECAR_MESSAGES: ReadonlySet<MessageType> = new Set(['register', 'health', 'subscribe', 'unsubscribe']);

class SidecarRole implements SessionRole {
  readonly registerType = 'register';
  readonly ownerKey: string;
  readonly logFields: Record<string, string>;
  readonly #identity: Extract<ChannelIdentity, { kind: 'sidecar' }>;
  readonly #components: SessionRoleComponents;
  readonly #logger: Logger;

  constructor(identity: Extract<ChannelIdentity, { kind: 'sidecar' }>, components: SessionRoleComponents, logger: Logger) {
    this.#identity = identity;
    this.#components = components;
    this.#logger = logger;
    this.ownerKey = identity.sidecarId;
    this.logFields = { sidecarId: identity.sidecarId, service: identity.service };
  }

  accepts(type: MessageType): boolean {
    return SIDECAR_MESSAGES.has(type) || COMMON_MESSAGES.has(type);
  }

  handle(holder: object, message: SidecarMessage): Promise<number> {
    const { registry } = this.#components;
    const { sidecarId, service } = this.#identity;
    switch (message.type) {
      case 'register':
        this.#logger.info({ address: message.address, zone: message.zone }, 'sidecar registered');
        return registry.register(holder, { sidecarId, service, address: message.address, zone: message.zone, weight: message.weight, healthy: message.healthy ?? true });
      case 'health':
        return registry.setHealthy(holder, service, sidecarId, message.healthy);
      case 'deregister':
        this.#logger.info('sidecar deregistered (draining)');
        return registry.deregister(holder, service, sidecarId);
      default:
        return Promise.reject(new Error(`a sidecar session does not handle "${message.type}"`));
    }
  }

  renew(csrPem: string): IssuedCertificate {
    const { ca, leafTtlMs } = this.#components;
    return signSidecarCsr(ca, csrPem, this.#identity, leafTtlMs);
  }

  release(holder: object): void {
    this.#components.registry.release(holder, this.#identity.service, this.#identity.sidecarId);
  }
}

const GATEWAY_MESSAGES: ReadonlySet<MessageType> = new Set(['register-gateway', 'gateway-links']);

class GatewayRole implements SessionRole {
  readonly registerType = 'register-gateway';
  readonly ownerKey: string;
  readonly logFields: Record<string, string>;
  readonly #identity: Extract<ChannelIdentity, { kind: 'gateway' }>;
  readonly #components: SessionRoleComponents;
  readonly #logger: Logger;

  constructor(identity: Extract<ChannelIdentity, { kind: 'gateway' }>, components: SessionRoleComponents, logger: Logger) {
    this.#identity = identity;
    this.#components = components;
    this.#logger = logger;
    // Keyed by zone and name, not gateway id: both instances would write the same
    // `gateway/<zone>/<name>` entry, so the newer one takes it over. The `gw/` prefix keeps
    // these keys apart from sidecar ids, which hold no '/'.
    this.ownerKey = `gw/${identity.zone}/${identity.name}`;
    this.logFields = { gatewayId: identity.gatewayId, zone: identity.zone, gateway: identity.name };
  }

  accepts(type: MessageType): boolean {
    return GATEWAY_MESSAGES.has(type) || COMMON_MESSAGES.has(type);
  }

  handle(holder: object, message: SidecarMessage): Promise<number> {
    const { gateways } = this.#components;
    const { zone, name } = this.#identity;
    switch (message.type) {
      case 'register-gateway':
        this.#logger.info({ addresses: message.addresses }, 'gateway registered');
        return gateways.register(holder, this.#identity, message.addresses);
      case 'gateway-links':
        return gateways.setLinks(holder, zone, name, message.peers);
      case 'deregister':
        this.#logger.info('gateway deregistered (draining)');
        return gateways.deregister(holder, zone, name);
      default:
        return Promise.reject(new Error(`a gateway session does not handle "${message.type}"`));
    }
  }

  renew(csrPem: string): IssuedCertificate {
    const { ca, leafTtlMs } = this.#components;
    return signGatewayCsr(ca, csrPem, this.#identity, leafTtlMs);
  }

  release(holder: object): void {
    this.#components.gateways.release(holder, this.#identity.zone, this.#identity.name);
  }
}
