import { once } from 'node:events';
import type { Duplex } from 'node:stream';
import { X509Certificate } from 'node:crypto';
import tls from 'node:tls';
import { TrellisError } from '../../proto/errors.js';
import type { PeerIdentity } from '../../proto/spiffe.js';
import { peerIdentityOf, spiffeIdOf, uriSansOf } from '../../proto/spiffe.js';
import type { Credentials } from '../identity/credentials.js';
import type { AuthenticatedLink } from './transport.js';

/**
 * TLS 1.3 suites in order of preference, on both ends. AES-128-GCM first: with AES-NI it
 * costs fewer rounds per byte than AES-256-GCM (the default pick) at a security level that
 * TLS 1.3 mandates for every implementation; the others stay for peers that lack it.
 */
export const LINK_CIPHER_SUITES = 'TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256';

/** @default 10_000 — a TLS handshake over a stream (WebSocket, tunnel) must finish within this. */
export const DEFAULT_LINK_HANDSHAKE_TIMEOUT_MS = 10_000;

/** What a verified peer certificate shows of its holder. */
export type LinkPeer = Pick<AuthenticatedLink, 'peer' | 'peerId' | 'peerNotBeforeMs'>;

/** The mesh identity, id and notBefore a verified peer certificate shows, or undefined when it shows none. */
export function linkPeerOf(trustDomain: string, certificate: tls.PeerCertificate | undefined): LinkPeer | undefined {
  if (certificate === undefined || Object.keys(certificate).length === 0) return undefined;
  const peer = peerIdentityOf(trustDomain, uriSansOf(certificate.subjectaltname));
  if (peer === undefined) return undefined;
  const commonName = certificate.subject?.CN;
  const notBeforeMs = Date.parse(certificate.valid_from);
  return { peer, peerId: typeof commonName === 'string' ? commonName : undefined, peerNotBeforeMs: Number.isNaN(notBeforeMs) ? undefined : notBeforeMs };
}

/**
 * The link's own mutual TLS, for any byte stream: a TCP socket, a WebSocket or a tunnel
 * stream through gateways. Both ends present mesh certificates; a client accepts only the
 * identity it meant to reach, a server only peers that prove a mesh identity.
 */
export class LinkTls {
  readonly #credentials: Credentials;
  #context: tls.SecureContext;

  constructor(credentials: Credentials) {
    this.#credentials = credentials;
    this.#context = this.#createContext();
    credentials.on('change', () => (this.#context = this.#createContext()));
  }

  get trustDomain(): string {
    return this.#credentials.current.trustDomain;
  }

  /** The current key, certificate and bundle as options for a TLS server or context. */
  contextOptions(): tls.SecureContextOptions {
    const { privateKeyPem, certPem, caPems } = this.#credentials.current;
    return { key: privateKeyPem, cert: certPem, ca: caPems, ciphers: LINK_CIPHER_SUITES };
  }

  /**
   * TLS client options that accept only a server proving `expected`. Node runs
   * checkServerIdentity only on full handshakes: a resumed session rests on the ticket, which
   * only the listener that proved the identity can accept (see TlsLinkTransport).
   */
  clientOptions(expected: PeerIdentity, describePeer: string): tls.ConnectionOptions {
    const expectedId = spiffeIdOf(this.trustDomain, expected);
    return {
      secureContext: this.#context,
      minVersion: 'TLSv1.3',
      // The peer is named by its SPIFFE id, not by a host name.
      checkServerIdentity: (_host, certificate) => {
        const uris = uriSansOf(certificate.subjectaltname);
        return uris.length === 1 && uris[0] === expectedId
          ? undefined
          : new TrellisError('TRELLIS_ERR_PEER_IDENTITY', `link peer ${describePeer} is not ${expectedId}`);
      },
    };
  }

  /** Runs the client side over `socket` (a stream already connected to the peer). */
  async client(socket: Duplex, expected: PeerIdentity, describePeer: string, timeoutMs = DEFAULT_LINK_HANDSHAKE_TIMEOUT_MS): Promise<AuthenticatedLink> {
    const secure = tls.connect({ ...this.clientOptions(expected, describePeer), socket });
    await handshake(secure, 'secureConnect', timeoutMs, describePeer);
    secure.on('error', () => undefined);
    const shown = linkPeerOf(this.trustDomain, secure.getPeerCertificate());
    return { socket: secure, peer: expected, peerId: shown?.peerId, peerNotBeforeMs: shown?.peerNotBeforeMs, peerAddress: describePeer };
  }

  /** Runs the server side over `socket`; resolves once the peer proved a mesh identity. */
  async server(socket: Duplex, describePeer: string, timeoutMs = DEFAULT_LINK_HANDSHAKE_TIMEOUT_MS): Promise<AuthenticatedLink> {
    const secure = new tls.TLSSocket(socket, {
      isServer: true,
      secureContext: this.#context,
      requestCert: true,
      rejectUnauthorized: true,
    });
    await handshake(secure, 'secure', timeoutMs, describePeer);
    // Only tls.Server acts on rejectUnauthorized: a TLSSocket made with isServer records the
    // verification result and carries on, whatever CA signed the client's certificate.
    if (!issuedByBundle(secure.getPeerX509Certificate(), this.#credentials.current.caPems, Date.now())) {
      secure.destroy();
      throw new TrellisError('TRELLIS_ERR_PEER_IDENTITY', `link peer ${describePeer} shows a certificate the trust bundle did not issue`);
    }
    const shown = linkPeerOf(this.trustDomain, secure.getPeerCertificate());
    if (shown === undefined) {
      secure.destroy();
      throw new TrellisError('TRELLIS_ERR_PEER_IDENTITY', `link peer ${describePeer} shows no mesh identity`);
    }
    secure.on('error', () => undefined);
    return { socket: secure, ...shown, peerAddress: describePeer };
  }

  #createContext(): tls.SecureContext {
    return tls.createSecureContext({ ...this.contextOptions(), minVersion: 'TLSv1.3' });
  }
}

/** Waits for a TLS handshake to complete, failing (and destroying the socket) on error or timeout. */
async function handshake(socket: tls.TLSSocket, event: 'secure' | 'secureConnect', timeoutMs: number, describePeer: string): Promise<void> {
  const timer = setTimeout(
    () => socket.destroy(new TrellisError('TRELLIS_ERR_DIAL_TIMEOUT', `TLS handshake with ${describePeer} timed out after ${timeoutMs} ms`)),
    timeoutMs,
  );
  const closedFirst = once(socket, 'close').then(() => {
    throw new TrellisError('TRELLIS_ERR_LINK_CLOSED', `${describePeer} closed the connection during the TLS handshake`);
  });
  try {
    await Promise.race([once(socket, event), closedFirst]);
  } catch (error) {
    socket.destroy();
    throw error;
  } finally {
    clearTimeout(timer);
    closedFirst.catch(() => undefined);
  }
}

/** Whether `leaf` is valid at `nowMs` and signed by a CA of `caPems` (mesh leaves have no intermediates). */
export function issuedByBundle(leaf: X509Certificate | undefined, caPems: readonly string[], nowMs: number): boolean {
  if (leaf === undefined || nowMs < Date.parse(leaf.validFrom) || nowMs > Date.parse(leaf.validTo)) return false;
  return caPems.some((pem) => {
    const ca = new X509Certificate(pem);
    return ca.ca && leaf.checkIssued(ca) && leaf.verify(ca.publicKey);
  });
}
