import { once } from 'node:events';
import net from 'node:net';
import type { Logger } from 'pino';
import { ErrorCode, errorCodeName } from '../../proto/errors.js';
import type { Balancer, StreamLease } from '../balancer/balancer.js';
import type { HashPolicy } from '../balancer/hash-policy.js';
import { hashKeyOf } from '../balancer/hash-policy.js';
import type { LinkManager } from '../links/link-manager.js';
import type { SidecarMetrics } from '../metrics/metrics.js';
import type { MuxStream } from '../mux/index.js';
import type { HostPort } from '../net/address.js';
import { formatHostPort } from '../net/address.js';
import { ActiveSet } from './active-set.js';
import { IdleStreamSweeper } from './idle-streams.js';
import { joinSocketToStream, resetAppSocket } from './join.js';
import { NoRouteError } from './no-route.js';
import type { ReplayedOpening } from './open-replay.js';
import { OpenReplay } from './open-replay.js';
import type { Connection } from './outbound-stream.js';
import { OutboundStream, reportEndpointFailure } from './outbound-stream.js';

export interface OutboundInit {
  balancer: Balancer;
  links: LinkManager;
  metrics: SidecarMetrics;
  logger: Logger;
  /** How many ring candidates to try when a link dial fails. @default 3 */
  maxDialAttempts?: number;
  /** What makes the ring key of a connection, per destination service. @default source-ip-port for every service */
  hashPolicies?: ReadonlyMap<string, HashPolicy>;
  /** A stream with no bytes either way for this long is reset with IDLE_TIMEOUT. @default none */
  idleTimeoutMs?: number;
  /**
   * The services whose endpoints are pushed to this sidecar. A connection to a service not yet
   * held (first use through the proxy port) subscribes to it and waits for its endpoints.
   * @default every service is taken as held
   */
  subscriptions?: EndpointSubscriptions;
  /** How long such a connection waits for the endpoints before it is refused. @default 5000 */
  subscriptionWaitMs?: number;
}

/** What the outbound path needs from the sidecar's subscriptions (`ConfigSubscriptions`). */
export interface EndpointSubscriptions {
  holds(service: string): boolean;
  /** Asks for the service's endpoints, or marks it used if already wanted. */
  want(service: string): void;
  /** Resolves once the service's endpoints are held (true) or after `timeoutMs` (false). */
  ready(service: string, timeoutMs: number): Promise<boolean>;
}

/** @default 5000 — a first connection to a service waits this long for its endpoints. */
export const DEFAULT_SUBSCRIPTION_WAIT_MS = 5000;

/** How {@link OutboundForwarder.forwardConnection} takes over a connection accepted elsewhere (a proxy port). */
export interface ForwardConnectionOptions {
  /**
   * The ring key when the service has no hash policy of its own (`--hash`): the connection's
   * source `address:port`, as for upstream ports. A policy set for the service takes precedence.
   */
  key: string;
  /** Bytes already read from the socket (after a proxy handshake): sent to the service first, in order. */
  initialBytes?: Buffer;
  /** The stream is open: write the proxy's success reply here; nothing from the service has reached the socket yet. */
  onOpen?: () => void;
  /** No endpoint could be reached: answer the client here and close (otherwise the socket is reset). */
  onNoRoute?: (error: Error) => void;
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
 * endpoint of the service, picked by the balancer with a key from the service's hash policy,
 * over a long-lived link to that endpoint's sidecar. The endpoint's behaviour (dial failures,
 * an unreachable app, an answer) goes back to the balancer, which ejects endpoints that keep
 * failing.
 */
export class OutboundForwarder {
  readonly #init: OutboundInit;
  readonly #servers = new Set<net.Server>();
  readonly #sockets = new ActiveSet<net.Socket>();
  readonly #idleStreams: IdleStreamSweeper | undefined;
  /** Dial errors already counted against their endpoint (see #openStream). */
  readonly #countedDialErrors = new WeakSet<object>();
  /** One function for every stream (an {@link OutboundStream} holds it), not a closure each. */
  readonly #reopenConnection = (connection: Connection, refusedBy: string, opening: ReplayedOpening): void => this.#reopen(connection, refusedBy, opening);
  /** The 'close' listener of every forwarded socket (`this` is the socket). */
  readonly #forgetSocket: (this: net.Socket) => void;

  constructor(init: OutboundInit) {
    this.#init = init;
    const sockets = this.#sockets;
    this.#forgetSocket = function forgetSocket(this: net.Socket): void {
      sockets.delete(this);
    };
    const { idleTimeoutMs, metrics } = init;
    this.#idleStreams = idleTimeoutMs === undefined ? undefined : new IdleStreamSweeper({ idleTimeoutMs, onIdleReset: () => metrics.idleStreamReset() });
  }

  /** Listens on `local` for connections to `service`. Rejects if the port is taken. */
  async listen(service: string, local: HostPort): Promise<UpstreamListener> {
    const server = net.createServer({ allowHalfOpen: true, noDelay: true, pauseOnConnect: true });
    server.on('connection', (socket) => this.forwardConnection(service, socket, { key: `${socket.remoteAddress}:${socket.remotePort}` }));
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

  /**
   * Sends a connection accepted elsewhere to `service`, as an upstream port does with its own.
   * The socket must be paused; it is resumed once its stream is open.
   */
  forwardConnection(service: string, socket: net.Socket, options: ForwardConnectionOptions): void {
    this.#sockets.add(socket);
    // `on`, not `once`, for events that come at most once, and one listener for every socket:
    // with 10,000 connections open, a wrapper or a closure each is megabytes (bench/NOTES.md).
    socket.on('close', this.#forgetSocket);
    // Until the stream exists the socket stays paused (pauseOnConnect): its bytes wait in the
    // kernel. Its errors are the join's to report; until then, and between two joins, ignored.
    socket.on('error', ignoreAppError);
    const policy = this.#init.hashPolicies?.get(service);
    const key = policy === undefined ? options.key : hashKeyOf(policy, { address: socket.remoteAddress, port: socket.remotePort });
    const connection: Connection = { service, socket, key, acceptedAtMs: performance.now(), onOpen: options.onOpen, refusedBy: undefined };
    const initialBytes = options.initialBytes;
    const opening: ReplayedOpening = { chunks: initialBytes === undefined || initialBytes.length === 0 ? NO_CHUNKS : [initialBytes], appEnded: false };
    this.#endpointsOf(service)
      .then(() => this.#openStream(service, key))
      .then(
        ({ stream, lease }) => {
          if (initialBytes !== undefined) this.#init.metrics.bytes('out', initialBytes.length);
          this.#join(connection, stream, lease, opening);
        },
        (error: Error) => {
          this.#noRoute(service, error);
          if (options.onNoRoute !== undefined) options.onNoRoute(error);
          else resetAppSocket(socket);
        },
      );
  }

  /** Joins the connection's socket to its stream, after sending what the app sent so far. */
  #join(connection: Connection, stream: MuxStream, lease: StreamLease, opening: ReplayedOpening): void {
    const { service, socket } = connection;
    if (socket.destroyed) {
      stream.reset(ErrorCode.STREAM_ABORTED, 'app connection closed before the stream opened');
      lease.release();
      return;
    }
    // The app's FIN may have been read while no stream was joined (between a refusal and this).
    const appEnded = opening.appEnded || socket.readableEnded;
    const outbound = new OutboundStream(this.#init, this.#reopenConnection, connection, stream, lease, new OpenReplay({ chunks: opening.chunks, appEnded }));
    socket.off('error', ignoreAppError);
    joinSocketToStream(socket, stream, this.#init.metrics, { appEnded, replay: outbound });
    // After the join: its 'reset' listener hands a refused stream over before this one looks.
    outbound.track();
    this.#init.metrics.upstreamStreamOpened(service, (performance.now() - connection.acceptedAtMs) / 1000);
    const onOpen = connection.onOpen;
    connection.onOpen = undefined;
    onOpen?.();
    this.#idleStreams?.watch(stream);
    // Out of credit already: the stream's 'drain' resumes the socket (joinSocketToStream).
    const writable = opening.chunks.length === 0 || stream.writev(opening.chunks);
    if (appEnded) stream.end();
    else if (writable) socket.resume();
  }

  /**
   * The destination refused the stream at open because it is draining (RESET GOING_AWAY, so no
   * byte reached its app): the connection goes to another endpoint with the same bytes, a
   * bounded number of times.
   */
  #reopen(connection: Connection, refusedBy: string, opening: ReplayedOpening): void {
    const { service, socket, key } = connection;
    const { metrics, logger } = this.#init;
    socket.on('error', ignoreAppError);
    connection.refusedBy ??= new Set();
    connection.refusedBy.add(refusedBy);
    if (connection.refusedBy.size > (this.#init.maxDialAttempts ?? 3)) {
      this.#failRefused(connection, refusedBy);
      return;
    }
    metrics.upstreamStreamRetried(service);
    logger.info({ service, sidecarId: refusedBy }, 'stream refused at open by a draining endpoint; opening it on another');
    this.#openStream(service, key, connection.refusedBy).then(
      ({ stream, lease }) => this.#join(connection, stream, lease, opening),
      (error: Error) => {
        this.#noRoute(service, error);
        resetAppSocket(socket);
      },
    );
  }

  #failRefused(connection: Connection, refusedBy: string): void {
    const codeName = errorCodeName(ErrorCode.GOING_AWAY);
    this.#init.logger.warn({ service: connection.service, sidecarId: refusedBy, refusals: connection.refusedBy?.size }, 'stream refused at open by every endpoint tried');
    this.#init.metrics.upstreamStreamFailed(connection.service, codeName);
    resetAppSocket(connection.socket);
  }

  #noRoute(service: string, error: Error): void {
    const code = (error as Partial<NoRouteError>).code;
    const codeName = errorCodeName(error instanceof NoRouteError ? error.wireCode : ErrorCode.APP_UNREACHABLE);
    this.#init.logger.warn({ service, code, err: error.message }, 'no route for connection');
    this.#init.metrics.streamError(codeName);
    this.#init.metrics.upstreamStreamFailed(service, codeName);
  }

  /**
   * Resolves once the endpoints of `service` are known here: at once for an upstream or a
   * service already used; otherwise it subscribes and waits (bounded), so that a first
   * connection through the proxy port is not refused for want of endpoints still on their way.
   */
  async #endpointsOf(service: string): Promise<void> {
    const { subscriptions, logger } = this.#init;
    if (subscriptions === undefined) return;
    // Marks it used too, so a service reached on use is kept while connections keep coming.
    subscriptions.want(service);
    if (subscriptions.holds(service)) return;
    const waitMs = this.#init.subscriptionWaitMs ?? DEFAULT_SUBSCRIPTION_WAIT_MS;
    if (!(await subscriptions.ready(service, waitMs))) logger.warn({ service, waitMs }, 'endpoints of the service did not arrive in time');
  }

  /** Opens a stream to an endpoint of `service` picked for `key`, none of `excluded` (sidecar ids). */
  async #openStream(service: string, key: string, excluded: ReadonlySet<string> = new Set()): Promise<{ stream: MuxStream; lease: StreamLease }> {
    const { balancer, links, logger } = this.#init;
    const tried = new Set<string>(excluded);
    let lastError: unknown;
    for (let attempt = 0; attempt < (this.#init.maxDialAttempts ?? 3); attempt++) {
      const picked = balancer.pick(service, key, tried);
      if (!picked.ok) {
        if (picked.reason === 'all-full') {
          throw new NoRouteError('TRELLIS_ERR_ENDPOINTS_FULL', `every endpoint of "${service}" is at its stream limit; refusing the connection`, ErrorCode.RESOURCE_EXHAUSTED);
        }
        if (lastError !== undefined) break;
        throw new NoRouteError('TRELLIS_ERR_NO_ENDPOINT', `service "${service}" has no healthy endpoint`, ErrorCode.APP_UNREACHABLE);
      }
      const { lease } = picked;
      tried.add(lease.endpoint.sidecarId);
      try {
        const { address, sidecarId, zone } = lease.endpoint;
        const target = { address, peer: { kind: 'service' as const, service }, endpoint: zone === undefined ? undefined : { sidecarId, zone } };
        // The caller joins it, which releases the lease when it closes (#join, OutboundStream).
        const stream = await links.openStream(target, service);
        return { stream, lease };
      } catch (error) {
        lease.release();
        lastError = error;
        logger.warn({ service, endpoint: lease.endpoint.address, err: (error as Error).message }, 'link dial failed; trying the next endpoint');
        // Connections waiting on one shared dial all get its error: one failure, not one each.
        if (typeof error !== 'object' || error === null || !this.#countedDialErrors.has(error)) {
          if (typeof error === 'object' && error !== null) this.#countedDialErrors.add(error);
          reportEndpointFailure(this.#init.logger, service, lease);
        }
      }
    }
    // Every endpoint tried was out of reach through gateways: say so, rather than blame the endpoints.
    if (lastError instanceof NoRouteError && lastError.code === 'TRELLIS_ERR_NO_ROUTE') throw lastError;
    const message = lastError instanceof Error ? lastError.message : String(lastError);
    throw new NoRouteError('TRELLIS_ERR_NO_ENDPOINT', `no endpoint of "${service}" could be reached: ${message}`, ErrorCode.APP_UNREACHABLE, { cause: lastError });
  }
}

/** The app socket's errors before its join, and between two joins, are the join's to report. */
function ignoreAppError(): void {}

/** What a connection with nothing read before its stream hands over (one array for all). */
const NO_CHUNKS: readonly Buffer[] = [];
