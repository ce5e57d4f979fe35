import { EventEmitter } from 'node:events';
import type { PeerIdentity } from '../../proto/spiffe.js';
import { spiffeIdOf } from '../../proto/spiffe.js';

/** What a sidecar holds after joining: its key, its certificate and the trust bundle. */
export interface CredentialsInit {
  trustDomain: string;
  /** The service a sidecar runs next to; for a gateway, its name (see `gateway`). */
  service: string;
  /** A gateway's zone and name; absent for a service's sidecar. */
  gateway?: { zone: string; name: string };
  /** The sidecar's id, or a gateway's: the certificate's common name. */
  sidecarId: string;
  privateKeyPem: string;
  certPem: string;
  caPems: string[];
  /** When the leaf certificate stops being valid (ms since the epoch). */
  expiresAt: number;
}

/**
 * The sidecar's current identity. Renewal and trust-bundle changes replace the material
 * and emit 'change' so that listeners can swap their TLS context without dropping links.
 */
export class Credentials extends EventEmitter {
  #current: CredentialsInit;

  constructor(init: CredentialsInit) {
    super();
    this.#current = init;
    // Every transport, listener and tunnel TLS context of the process follows renewals.
    this.setMaxListeners(64);
  }

  get current(): Readonly<CredentialsInit> {
    return this.#current;
  }

  /** The identity this certificate proves. */
  get identity(): PeerIdentity {
    const { gateway, service } = this.#current;
    return gateway === undefined ? { kind: 'service', service } : { kind: 'gateway', ...gateway };
  }

  get spiffeId(): string {
    return spiffeIdOf(this.#current.trustDomain, this.identity);
  }

  /** Replaces the certificate (and possibly key and bundle) after renewal or CA rotation. */
  replace(update: Partial<Omit<CredentialsInit, 'trustDomain' | 'service' | 'gateway' | 'sidecarId'>>): void {
    this.#current = { ...this.#current, ...update };
    this.emit('change', this.#current);
  }
}

