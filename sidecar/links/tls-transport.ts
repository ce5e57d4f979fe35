import { once } from 'node:events';
import tls from 'node:tls';
import { TrellisError } from '../../proto/errors.js';
import { spiffeIdOf } from '../../proto/spiffe.js';
import type { Credentials } from '../identity/credentials.js';
import { formatHostPort } from '../net/address.js';
import type { Connector } from './connector.js';
import { directConnector } from './connector.js';
import { LinkTls, linkPeerOf } from './link-tls.js';
import { frontDoor, ListenerGuard } from './listener-guard.js';
import type { LinkUrl } from './link-url.js';
import type { RevokedPeers } from './revoked-peers.js';
import { formatLinkUrl, parseLinkUrl } from './link-url.js';
import type { AuthenticatedLink, LinkListener, LinkTarget, LinkTransport } from './transport.js';

/** @default 5000 */
const DEFAULT_DIAL_TIMEOUT_MS = 5000;

/** Session tickets kept for re-dials, one per peer; the oldest goes first beyond this. */
const MAX_CACHED_SESSIONS = 1024;

export interface TlsLinkTransportInit {
  /** Time for TCP (and a proxy's CONNECT) plus the TLS handshake. @default 5000 */
  dialTimeoutMs?: number;
  /** How TCP connections are made: directly, or through an HTTP CONNECT proxy. @default direct */
  connector?: Connector;
  /**
   * Caps and handshake timeout of every listener of this transport (share one guard between
   * the transports of a process). @default a guard of its own, with the defaults of `ListenerLimits`
   */
  listenerGuard?: ListenerGuard;
  /** Session tickets are forgotten at every revocation, so that no resumed session hides a revoked certificate. */
  revokedPeers?: RevokedPeers;
}

/**
 * Links over TLS 1.3 with certificates from the mesh CA on both sides. The server accepts
 * only clients whose certificate chains to the trust bundle and names a mesh identity; the
 * client accepts only a server whose certificate carries the identity it meant to reach.
 */
export class TlsLinkTransport implements LinkTransport {
  readonly #credentials: Credentials;
  readonly #tls: LinkTls;
  readonly #dialTimeoutMs: number;
  readonly #connector: Connector;
  readonly #guard: ListenerGuard;
  /**
   * The last TLS session ticket of each peer (by address and identity), so that a link dialled
   * again (after a drop) resumes: no certificate exchange or RSA signature on either side.
   * Tickets expire at the peer (Node's default is 300 s).
   *
   * Node runs no checkServerIdentity on a resumed session and shows no peer certificate then:
   * the peer's identity rests on the ticket, which only the listener that issued it can
   * accept, and that listener proved the expected identity when it did. A listener's ticket
   * keys are its own (random per process), so a restarted peer, or another process at the same
   * address, makes a full handshake, checked as above.
   */
  readonly #sessions = new Map<string, Buffer>();

  constructor(credentials: Credentials, init: TlsLinkTransportInit = {}) {
    this.#credentials = credentials;
    this.#tls = new LinkTls(credentials);
    this.#dialTimeoutMs = init.dialTimeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS;
    this.#connector = init.connector ?? directConnector;
    this.#guard = init.listenerGuard ?? new ListenerGuard();
    // A resumed session would carry on under the old certificate: handshake afresh.
    credentials.on('change', () => this.#sessions.clear());
    init.revokedPeers?.on('change', () => this.#sessions.clear());
  }

  async dial(target: LinkTarget): Promise<AuthenticatedLink> {
    const { host, port } = parseLinkUrl(target.address);
    const expectedId = spiffeIdOf(this.#credentials.current.trustDomain, target.peer);
    const sessionKey = `${expectedId}@${target.address}`;
    const deadline = Date.now() + this.#dialTimeoutMs;
    const tcp = await this.#connector.connect({ host, port, timeoutMs: this.#dialTimeoutMs });
    const socket = tls.connect({
      ...this.#tls.clientOptions(target.peer, target.address),
      socket: tcp,
      host,
      session: this.#sessions.get(sessionKey),
    });
    tcp.setNoDelay(true);
    socket.on('session', (session: Buffer) => this.#rememberSession(sessionKey, session));
    const timer = setTimeout(
      () => socket.destroy(new TrellisError('TRELLIS_ERR_DIAL_TIMEOUT', `link dial to ${target.address} timed out after ${this.#dialTimeoutMs} ms`)),
      Math.max(0, deadline - Date.now()),
    );
    try {
      await Promise.race([
        once(socket, 'secureConnect'),
        once(socket, 'close').then(() => Promise.reject(new TrellisError('TRELLIS_ERR_LINK_CLOSED', `${target.address} closed the connection during the TLS handshake`))),
      ]);
    } catch (error) {
      this.#sessions.delete(sessionKey);
      socket.destroy();
      throw error;
    } finally {
      clearTimeout(timer);
    }
    // A resumed session shows no certificate: then the id is the endpoint's the dial aimed at.
    const shown = linkPeerOf(this.#tls.trustDomain, socket.getPeerCertificate());
    return { socket, peer: target.peer, peerId: shown?.peerId ?? target.endpoint?.sidecarId, peerNotBeforeMs: shown?.peerNotBeforeMs, peerAddress: target.address };
  }

  async listen(url: LinkUrl, onLink: (link: AuthenticatedLink) => void): Promise<LinkListener> {
    if (url.scheme !== 'tls') throw new TrellisError('TRELLIS_ERR_BAD_ADDRESS', `a TLS link listener cannot serve ${formatLinkUrl(url)}`);
    const guard = this.#guard;
    const server = tls.createServer({
      ...this.#tls.contextOptions(),
      requestCert: true,
      // Checked in 'secureConnection' instead: a tls.Server that rejects an unverified client
      // itself destroys the socket without any event, so the refusal could not be counted.
      rejectUnauthorized: false,
      minVersion: 'TLSv1.3',
      // The suite is the server's pick from its own order (see LINK_CIPHER_SUITES).
      honorCipherOrder: true,
      handshakeTimeout: guard.handshakeTimeoutMs,
    });
    const onChange = (): void => server.setSecureContext(this.#tls.contextOptions());
    this.#credentials.on('change', onChange);
    const front = frontDoor(guard, server);
    const pendingOf = front.pendingOf;
    server.on('secureConnection', (socket) => {
      const admitted = pendingOf(socket);
      if (!socket.authorized) {
        // No certificate, or one that does not chain to the trust bundle or has expired.
        if (admitted === undefined) socket.destroy();
        else admitted.fail('handshake-failed');
        return;
      }
      const shown = linkPeerOf(this.#tls.trustDomain, socket.getPeerCertificate());
      if (shown === undefined) {
        // Chains to our CA but names no mesh identity of this trust domain: not a sidecar or gateway.
        if (admitted === undefined) socket.destroy();
        else admitted.fail('no-mesh-identity');
        return;
      }
      admitted?.authenticated();
      const release = guard.admitLink(shown.peer);
      if (release === undefined) {
        socket.destroy();
        return;
      }
      socket.once('close', release);
      onLink({ socket, ...shown, peerAddress: `${socket.remoteAddress}:${socket.remotePort}` });
    });
    // A failed handshake (wrong CA, no certificate, timeout) leaves its socket to this listener:
    // with a listener installed Node does not destroy it, so close it here.
    server.on('tlsClientError', (error: Error & { code?: string }, socket) => {
      const admitted = pendingOf(socket);
      if (admitted === undefined) socket.destroy();
      else admitted.fail(error.code === 'ERR_TLS_HANDSHAKE_TIMEOUT' ? 'handshake-timeout' : 'handshake-failed');
      socket.destroy();
    });
    const boundPort = await front.listen(url.host, url.port);
    return {
      url: `tls://${formatHostPort(url.host, boundPort)}`,
      close: () => {
        this.#credentials.off('change', onChange);
        // Stops accepting now; links already accepted belong to whoever took them, who closes them.
        front.server.close();
        return Promise.resolve();
      },
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
}
