import { EventEmitter } from 'node:events';
import type { PeerCertificate } from 'node:tls';
import { serviceSpiffeId, uriSansOf } from '../../proto/spiffe.js';

/** What a sidecar holds after joining: its key, its certificate and the trust bundle. */
export interface CredentialsInit {
  trustDomain: string;
  service: string;
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
  }

  get current(): Readonly<CredentialsInit> {
    return this.#current;
  }

  get spiffeId(): string {
    return serviceSpiffeId(this.#current.trustDomain, this.#current.service);
  }

  /** Replaces the certificate (and possibly key and bundle) after renewal or CA rotation. */
  replace(update: Partial<Omit<CredentialsInit, 'trustDomain' | 'service' | 'sidecarId'>>): void {
    this.#current = { ...this.#current, ...update };
    this.emit('change', this.#current);
  }
}

/** The SPIFFE URI SANs of a peer certificate, as verified by the TLS layer. */
export function peerSpiffeIds(certificate: PeerCertificate | undefined): string[] {
  return uriSansOf(certificate?.subjectaltname).filter((uri) => uri.startsWith('spiffe://'));
}
