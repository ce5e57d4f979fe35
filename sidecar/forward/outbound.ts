import { once } from 'node:events';
import net from 'node:net';
import type { Logger } from 'pino';
import { ErrorCode, errorCodeName } from '../../proto/errors.js';
import type { Balancer } from '../balancer/balancer.js';
import type { LinkManager } from '../links/link-manager.js';
import type { SidecarMetrics } from '../metrics/metrics.js';
import type { MuxStream } from '../mux/index.js';
import type { HostPort } from '../net/address.js';
import { formatHostPort } from '../net/address.js';
import { ActiveSet } from './active-set.js';
import { joinSocketToStream } from './join.js';

export interface OutboundInit {
  balancer: Balancer;
  links: LinkManager;
  metrics: SidecarMetrics;
  logger: Logger;
  /** How many ring candidates to try when a link dial fails. @default 3 */
  maxDialAttempts?: number;
}

/** A local listener that sends every accepted connection to one service of the mesh. */
export interface UpstreamListener {
  readonly service: string;
  /** The bound address, `host:port`. */
  readonly address: string;
  close(): Promise<void>;
}

/**
 * The source side: each connection accepted on an upstream port becomes a stream to an
 * endpoint of the service, picked on the hash ring by the connection's source address and
 * port, over a long-lived link to that endpoint's sidecar.
 */
export class OutboundForwarder {
  readonly #init: OutboundInit;
  readonly #servers = new Set<net.Server>();
  readonly #sockets = new ActiveSet<net.Socket>();

  constructor(init: OutboundInit) {
    this.#init = init;
  }

  /** Listens on `local` for connections to `service`. Rejects if the port is taken. */
  async listen(service: string, local: HostPort): Promise<UpstreamListener> {
    const server = net.createServer({ allowHalfOpen: true, noDelay: true, pauseOnConnect: true });
    server.on('connection', (socket) => this.#forward(service, socket));
    server.listen(local.port, local.host);
    await Promise.race([once(server, 'listening'), once(server, 'error').then(([error]) => Promise.reject(error as Error))]);
    this.#servers.add(server);
    const port = (server.address() as net.AddressInfo).port;
    return {
      service,
      address: formatHostPort(local.host, port),
      close: () => new Promise<void>((resolve) => server.close(() => resolve())),
    };
  }

  /** Stops accepting; connections already forwarded go on. */
  stopAccepting(): void {
    for (const server of this.#servers) server.close();
    this.#servers.clear();
  }

  /** Connections being forwarded now. */
  get activeConnections(): number {
    return this.#sockets.size;
  }

  /** Resolves once every forwarded connection has finished. */
  whenIdle(): Promise<void> {
    return this.#sockets.whenEmpty();
  }

  /** Stops accepting and aborts every forwarded connection. */
  close(): void {
    this.stopAccepting();
    for (const socket of this.#sockets) socket.destroy();
  }

  #forward(service: string, socket: net.Socket): void {
    this.#sockets.add(socket);
    socket.once('close', () => this.#sockets.delete(socket));
    // Until the stream exists the socket stays paused (pauseOnConnect): its bytes wait in the kernel.
    socket.on('error', () => undefined);
    const key = `${socket.remoteAddress}:${socket.remotePort}`;
    this.#openStream(service, key).then(
      (stream) => {
        if (socket.destroyed) {
          stream.reset(ErrorCode.STREAM_ABORTED, 'app connection closed before the stream opened');
          return;
        }
        this.#track(stream);
        joinSocketToStream(socket, stream, this.#init.metrics);
        socket.resume();
      },
      (error: Error) => {
        this.#init.logger.warn({ service, err: error.message }, 'no route for connection');
        this.#init.metrics.streamError(errorCodeName(ErrorCode.APP_UNREACHABLE));
        socket.resetAndDestroy();
      },
    );
  }

  async #openStream(service: string, key: string): Promise<MuxStream> {
    const { balancer, links, logger } = this.#init;
    const candidates = balancer.candidates(service, key, this.#init.maxDialAttempts ?? 3);
    if (candidates.length === 0) throw new Error(`service "${service}" has no healthy endpoint`);
    let lastError: unknown;
    for (const endpoint of candidates) {
      try {
        return await links.openStream({ address: endpoint.address, service }, service);
      } catch (error) {
        lastError = error;
        logger.warn({ service, endpoint: endpoint.address, err: (error as Error).message }, 'link dial failed; trying the next endpoint');
      }
    }
    throw lastError instanceof Error ? lastError : new Error(String(lastError));
  }

  #track(stream: MuxStream): void {
    const { metrics } = this.#init;
    metrics.streamOpened('outbound');
    stream.once('close', () => metrics.streamClosed('outbound'));
    stream.once('reset', (code: number, _message: string, local: boolean) => {
      if (local) metrics.streamError(errorCodeName(code));
    });
  }
}
