import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { TrellisError } from '../../proto/errors.js';
import { serviceOfSpiffeId, serviceSpiffeId } from '../../proto/spiffe.js';
import type { Credentials } from '../identity/credentials.js';
import { peerSpiffeIds } from '../identity/credentials.js';
import { formatHostPort, parseHostPort } from '../net/address.js';
import type { AuthenticatedLink, LinkListener, LinkTarget, LinkTransport } from './transport.js';

/** @default 5000 */
const DEFAULT_DIAL_TIMEOUT_MS = 5000;

/** Session tickets kept for re-dials, one per peer; the oldest goes first beyond this. */
const MAX_CACHED_SESSIONS = 1024;

/**
 * TLS 1.3 suites in order of preference, on both ends. AES-128-GCM first: with AES-NI it
 * costs fewer rounds per byte than AES-256-GCM (the default pick) at a security level that
 * TLS 1.3 mandates for every implementation; the others stay for peers that lack it.
 */
const LINK_CIPHER_SUITES = 'TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256';

/**
 * Links over TLS 1.3 with certificates from the mesh CA on both sides. The server accepts
 * only clients whose certificate chains to the trust bundle; the client accepts only a
 * server whose certificate carries the SPIFFE id of the service it meant to reach.
 */
export class TlsLinkTransport implements LinkTransport {
  readonly #credentials: Credentials;
  readonly #dialTimeoutMs: number;
  #clientContext: tls.SecureContext;
  /**
   * The last TLS session ticket of each peer (by address and service), so that a link dialled
   * again (after a drop) resumes: no certificate exchange or RSA signature on either side.
   * Tickets expire at the peer (Node's default is 300 s).
   *
   * Node runs no checkServerIdentity on a resumed session and shows no peer certificate then:
   * the peer's identity rests on the ticket, which only the listener that issued it can
   * accept, and that listener proved `expectedId` when it did. A listener's ticket keys are
   * its own (random per process), so a restarted peer, or another process at the same
   * address, makes a full handshake, checked as above.
   */
  readonly #sessions = new Map<string, Buffer>();

  constructor(credentials: Credentials, init: { dialTimeoutMs?: number } = {}) {
    this.#credentials = credentials;
    this.#dialTimeoutMs = init.dialTimeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS;
    this.#clientContext = this.#createContext();
    credentials.on('change', () => {
      this.#clientContext = this.#createContext();
      // A resumed session would carry on under the old certificate: handshake afresh.
      this.#sessions.clear();
    });
  }

  async dial(target: LinkTarget): Promise<AuthenticatedLink> {
    const { host, port } = parseHostPort(target.address);
    const { trustDomain } = this.#credentials.current;
    const expectedId = serviceSpiffeId(trustDomain, target.service);
    const sessionKey = `${target.service}@${target.address}`;
    const wrongPeer = (): TrellisError => new TrellisError('TRELLIS_ERR_PEER_IDENTITY', `link peer ${target.address} is not ${expectedId}`);
    const socket = tls.connect({
      host,
      port,
      secureContext: this.#clientContext,
      session: this.#sessions.get(sessionKey),
      minVersion: 'TLSv1.3',
      // The peer is named by its SPIFFE id, not by a host name.
      checkServerIdentity: (_host, certificate) => (peerSpiffeIds(certificate).includes(expectedId) ? undefined : wrongPeer()),
    });
    socket.setNoDelay(true);
    socket.on('session', (session: Buffer) => this.#rememberSession(sessionKey, session));
    const timer = setTimeout(
      () => socket.destroy(new TrellisError('TRELLIS_ERR_DIAL_TIMEOUT', `link dial to ${target.address} timed out after ${this.#dialTimeoutMs} ms`)),
      this.#dialTimeoutMs,
    );
    try {
      await once(socket, 'secureConnect');
    } catch (error) {
      this.#sessions.delete(sessionKey);
      throw error;
    } finally {
      clearTimeout(timer);
    }
    return { socket, peerService: target.service, peerAddress: target.address };
  }

  async listen(host: string, port: number, onLink: (link: AuthenticatedLink) => void): Promise<LinkListener> {
    const server = tls.createServer({
      ...this.#contextOptions(),
      requestCert: true,
      rejectUnauthorized: true,
      minVersion: 'TLSv1.3',
      // The suite is the server's pick from its own order (see LINK_CIPHER_SUITES).
      honorCipherOrder: true,
    });
    this.#credentials.on('change', () => server.setSecureContext(this.#contextOptions()));
    const { trustDomain } = this.#credentials.current;
    server.on('secureConnection', (socket) => {
      socket.setNoDelay(true);
      const peerService = peerSpiffeIds(socket.getPeerCertificate())
        .map((id) => serviceOfSpiffeId(trustDomain, id))
        .find((service) => service !== undefined);
      if (peerService === undefined) {
        // Chains to our CA but names no service of this trust domain: not a sidecar.
        socket.destroy();
        return;
      }
      onLink({ socket, peerService, peerAddress: `${socket.remoteAddress}:${socket.remotePort}` });
    });
    // Failed handshakes (wrong CA, no certificate) end here; the socket is already gone.
    server.on('tlsClientError', () => undefined);
    server.listen(port, host);
    await once(server, 'listening');
    const bound = server.address() as AddressInfo;
    return {
      address: formatHostPort(host, bound.port),
      close: () => new Promise<void>((resolve) => server.close(() => resolve())),
    };
  }

  #rememberSession(key: string, session: Buffer): void {
    this.#sessions.delete(key);
    this.#sessions.set(key, session);
    if (this.#sessions.size > MAX_CACHED_SESSIONS) {
      const oldest = this.#sessions.keys().next().value;
      if (oldest !== undefined) this.#sessions.delete(oldest);
    }
  }

  #contextOptions(): tls.SecureContextOptions {
    const { privateKeyPem, certPem, caPems } = this.#credentials.current;
    return { key: privateKeyPem, cert: certPem, ca: caPems, ciphers: LINK_CIPHER_SUITES };
  }

  #createContext(): tls.SecureContext {
    return tls.createSecureContext({ ...this.#contextOptions(), minVersion: 'TLSv1.3' });
  }
}
