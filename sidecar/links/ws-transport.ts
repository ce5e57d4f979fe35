import type { IncomingMessage } from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import { isIP } from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import WebSocket, { WebSocketServer } from 'ws';
import { TrellisError } from '../../proto/errors.js';
import type { Credentials } from '../identity/credentials.js';
import { formatHostPort } from '../net/address.js';
import type { Connector } from './connector.js';
import { directConnector } from './connector.js';
import { LinkTls, linkPeerOf } from './link-tls.js';
import { frontDoor, ListenerGuard } from './listener-guard.js';
import type { LinkUrl } from './link-url.js';
import { DEFAULT_WS_LINK_PATH, formatLinkUrl, parseLinkUrl } from './link-url.js';
import type { AuthenticatedLink, LinkListener, LinkTarget, LinkTransport } from './transport.js';
import { MAX_WS_LINK_PAYLOAD_BYTES, WebSocketDuplex } from './ws-duplex.js';

/** @default 5000 */
const DEFAULT_DIAL_TIMEOUT_MS = 5000;
/** @default 10_000 */
const DEFAULT_ACCEPT_TIMEOUT_MS = 10_000;

const NOT_FOUND_RESPONSE = 'HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n';

export interface WsLinkTransportInit {
  /** Time for TCP (and a proxy's CONNECT), the outer TLS, the upgrade and the link's TLS. @default 5000 */
  dialTimeoutMs?: number;
  /**
   * A listener's bound on an accepted connection's outer TLS handshake, and again on the HTTP
   * upgrade after it (the link's own TLS has its own bound), so that a client that never
   * finishes does not hold a descriptor. @default 10_000
   */
  acceptTimeoutMs?: number;
  /** How TCP connections are made: directly, or through an HTTP CONNECT proxy. @default direct */
  connector?: Connector;
  /**
   * Caps of every listener of this transport, and the bound on a connection's whole way to an
   * authenticated link (outer TLS, upgrade, the link's TLS). Share one guard between the
   * transports of a process. @default a guard of its own, with the defaults of `ListenerLimits`
   */
  listenerGuard?: ListenerGuard;
}

/**
 * Links as WebSockets over HTTPS, for networks that pass only HTTPS (PROTOCOL.md, "Transport").
 * The outer HTTPS may be terminated by a load balancer with a public certificate, so identity
 * never rests on it: the link's own mutual TLS 1.3 ({@link LinkTls}) runs inside the binary
 * messages, end to end between the two mesh peers.
 */
export class WsLinkTransport implements LinkTransport {
  readonly #credentials: Credentials;
  readonly #tls: LinkTls;
  readonly #dialTimeoutMs: number;
  readonly #acceptTimeoutMs: number;
  readonly #connector: Connector;
  readonly #guard: ListenerGuard;
  /**
   * The outer TLS client context (the mesh bundle for mesh listeners, public roots for load
   * balancers) and the bundle it was built from. Built at the first dial and again only when the
   * bundle changes, not at every leaf renewal: with the public roots one costs about 1 MiB
   * outside the V8 heap, which a small heap collects late.
   */
  #outer: { bundle: string; context: tls.SecureContext } | undefined;

  constructor(credentials: Credentials, init: WsLinkTransportInit = {}) {
    this.#credentials = credentials;
    this.#tls = new LinkTls(credentials);
    this.#dialTimeoutMs = init.dialTimeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS;
    this.#acceptTimeoutMs = init.acceptTimeoutMs ?? DEFAULT_ACCEPT_TIMEOUT_MS;
    this.#connector = init.connector ?? directConnector;
    this.#guard = init.listenerGuard ?? new ListenerGuard();
  }

  async dial(target: LinkTarget): Promise<AuthenticatedLink> {
    const url = parseLinkUrl(target.address);
    if (url.scheme !== 'wss') throw new TrellisError('TRELLIS_ERR_BAD_ADDRESS', `a WebSocket link transport cannot dial ${target.address}`);
    const deadline = Date.now() + this.#dialTimeoutMs;
    const tcp = await this.#connector.connect({ host: url.host, port: url.port, timeoutMs: this.#dialTimeoutMs });
    tcp.setNoDelay(true);
    const ws = await this.#upgrade(tcp, url, target.address, deadline);
    const duplex = new WebSocketDuplex(ws);
    try {
      return await this.#tls.client(duplex, target.peer, target.address, Math.max(1, deadline - Date.now()));
    } catch (error) {
      duplex.destroy();
      throw error;
    }
  }

  async listen(url: LinkUrl, onLink: (link: AuthenticatedLink) => void): Promise<LinkListener> {
    if (url.scheme !== 'wss') throw new TrellisError('TRELLIS_ERR_BAD_ADDRESS', `a WebSocket link listener cannot serve ${formatLinkUrl(url)}`);
    const path = url.path ?? DEFAULT_WS_LINK_PATH;
    // No client certificate at this layer: the link's own TLS, inside, asks for one.
    const server = https.createServer({ ...this.#tls.contextOptions(), minVersion: 'TLSv1.3', honorCipherOrder: true, handshakeTimeout: this.#acceptTimeoutMs });
    const onChange = (): void => server.setSecureContext(this.#tls.contextOptions());
    this.#credentials.on('change', onChange);
    const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: MAX_WS_LINK_PAYLOAD_BYTES, clientTracking: false });
    /** Connections past their outer TLS handshake and not yet upgraded, with the timer that ends them. */
    const upgrading = new Map<Duplex, NodeJS.Timeout>();
    const guard = this.#guard;
    const front = frontDoor(guard, server);
    const pendingOf = front.pendingOf;
    server.on('tlsClientError', (error: Error & { code?: string }, socket: tls.TLSSocket) => {
      pendingOf(socket)?.fail(error.code === 'ERR_TLS_HANDSHAKE_TIMEOUT' ? 'handshake-timeout' : 'handshake-failed');
      socket.destroy();
    });
    server.on('secureConnection', (socket: tls.TLSSocket) => {
      upgrading.set(socket, setTimeout(() => socket.destroy(), this.#acceptTimeoutMs));
      socket.once('close', () => settle(socket));
    });
    const settle = (socket: Duplex): void => {
      clearTimeout(upgrading.get(socket));
      upgrading.delete(socket);
    };
    server.on('request', (_request, response) => response.writeHead(404, { connection: 'close' }).end());
    server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => {
      if (pathOf(request.url) !== path) {
        socket.end(NOT_FOUND_RESPONSE);
        return;
      }
      wss.handleUpgrade(request, socket, head, (ws) => {
        settle(socket);
        const describe = formatHostPort(request.socket.remoteAddress ?? 'unknown', request.socket.remotePort ?? 0);
        const admitted = pendingOf(request.socket);
        const duplex = new WebSocketDuplex(ws);
        // A failed link handshake destroys the stream, and so the WebSocket.
        this.#tls.server(duplex, describe, guard.handshakeTimeoutMs).then(
          (link) => {
            admitted?.authenticated();
            const release = guard.admitLink(link.peer);
            if (release === undefined) {
              link.socket.destroy();
              return;
            }
            link.socket.once('close', release);
            onLink(link);
          },
          (error: TrellisError) => {
            duplex.destroy();
            const reason = error.code === 'TRELLIS_ERR_DIAL_TIMEOUT' ? 'handshake-timeout' : 'handshake-failed';
            if (admitted === undefined) guard.refused(reason);
            else admitted.fail(reason);
          },
        );
      });
    });
    const boundPort = await front.listen(url.host, url.port);
    return {
      url: formatLinkUrl({ scheme: 'wss', host: url.host, port: boundPort, path }),
      close: () => {
        this.#credentials.off('change', onChange);
        // Stops accepting now; links already accepted belong to whoever took them, who closes them.
        front.server.close();
        for (const socket of upgrading.keys()) socket.destroy();
        return Promise.resolve();
      },
    };
  }

  /** Outer TLS and the HTTP upgrade over `tcp`, resolving with the open WebSocket. */
  #upgrade(tcp: Socket, url: LinkUrl, describe: string, deadline: number): Promise<WebSocket> {
    const trustDomain = this.#credentials.current.trustDomain;
    const outer = tls.connect({
      socket: tcp,
      secureContext: this.#outerContext(),
      minVersion: 'TLSv1.3',
      ALPNProtocols: ['http/1.1'],
      servername: isIP(url.host) === 0 ? url.host : undefined,
      // A mesh listener's certificate names a SPIFFE id, not a host; a load balancer's names its host.
      checkServerIdentity: (host, certificate) => (linkPeerOf(trustDomain, certificate) !== undefined ? undefined : tls.checkServerIdentity(host, certificate)),
    });
    const ws = new WebSocket(`wss://${formatHostPort(url.host, url.port)}${url.path ?? DEFAULT_WS_LINK_PATH}`, {
      createConnection: () => outer,
      perMessageDeflate: false,
      maxPayload: MAX_WS_LINK_PAYLOAD_BYTES,
      followRedirects: false,
    });
    return new Promise((resolve, reject) => {
      let settled = false;
      const fail = (error: Error): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        ws.terminate();
        outer.destroy();
        tcp.destroy();
        reject(error);
      };
      const timer = setTimeout(
        () => fail(new TrellisError('TRELLIS_ERR_DIAL_TIMEOUT', `WebSocket link dial to ${describe} timed out after ${this.#dialTimeoutMs} ms`)),
        Math.max(0, deadline - Date.now()),
      );
      // Stays installed: terminating a connecting WebSocket emits one more 'error'.
      ws.on('error', (error) => fail(error instanceof TrellisError ? error : new TrellisError('TRELLIS_ERR_WS_HANDSHAKE', `WebSocket link dial to ${describe} failed: ${error.message}`, { cause: error })));
      ws.once('unexpected-response', (_request, response) =>
        fail(new TrellisError('TRELLIS_ERR_WS_UPGRADE_REFUSED', `${describe} answered the WebSocket upgrade with HTTP ${response.statusCode}`)),
      );
      ws.once('open', () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        ws.removeAllListeners('error');
        resolve(ws);
      });
    });
  }

  #outerContext(): tls.SecureContext {
    const caPems = this.#credentials.current.caPems;
    const bundle = caPems.join('\n');
    if (this.#outer?.bundle !== bundle) {
      this.#outer = { bundle, context: tls.createSecureContext({ ca: [...caPems, ...tls.rootCertificates], minVersion: 'TLSv1.3' }) };
    }
    return this.#outer.context;
  }
}

/** The path of a request target, without its query. */
function pathOf(target: string | undefined): string | undefined {
  return target?.split('?', 1)[0];
}
