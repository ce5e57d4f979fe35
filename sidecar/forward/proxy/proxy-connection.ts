import type net from 'node:net';
import type { Logger } from 'pino';
import type { ForwardConnectionOptions } from '../outbound.js';
import { ProxyError } from './errors.js';
import type { ProxyHandshake, ProxyRequest } from './handshake.js';
import { HttpProxyHandshake } from './http-handshake.js';
import { meshServiceOf, quoteName } from './mesh-name.js';
import { SOCKS5_VERSION, Socks5Handshake } from './socks5-handshake.js';

/** What the proxy needs from the outbound path: `OutboundForwarder` in the sidecar, a fake in tests. */
export interface ConnectionForwarder {
  forwardConnection(service: string, socket: net.Socket, options: ForwardConnectionOptions): void;
}

export interface ProxyConnectionContext {
  forwarder: ConnectionForwarder;
  logger: Logger;
  handshakeTimeoutMs: number;
  /** Told of every client the proxy turns away, by reason, for metrics. */
  onRefused?: (reason: ProxyRefusal) => void;
}

/** Why a proxy client was turned away. */
export type ProxyRefusal = 'not-mesh' | 'socks4' | 'bad-handshake' | 'no-route';

/** How long a refused client gets to read its error reply and close before the socket is destroyed. */
const REPLY_LINGER_MS = 2_000;
/** First byte of a SOCKS4 request: answered with SOCKS4's "request rejected" so the client says why. */
const SOCKS4_VERSION = 0x04;
const SOCKS4_REJECTED_REPLY = Buffer.from([0x00, 0x5b, 0, 0, 0, 0, 0, 0]);

/**
 * Runs the handshake of one connection to the proxy port, then hands the socket to the
 * outbound path. The protocol is told by the first byte: 0x05 is SOCKS5, anything else is
 * taken for HTTP. The socket is paused in the same tick as the handshake completes, so the
 * bytes after it stay in the socket, in order, behind the handshake's own leftovers.
 */
export function handleProxyConnection(socket: net.Socket, context: ProxyConnectionContext): void {
  const { logger } = context;
  const client = `${socket.remoteAddress}:${socket.remotePort}`;
  let handshake: ProxyHandshake | undefined;

  const stopReading = (): void => {
    clearTimeout(timer);
    socket.pause();
    socket.off('data', onData);
    socket.off('end', onEnd);
  };
  const fail = (error: ProxyError): void => {
    stopReading();
    if (error.code === 'TRELLIS_ERR_PROXY_NOT_MESH') context.onRefused?.('not-mesh');
    else {
      context.onRefused?.(error.code === 'TRELLIS_ERR_PROXY_NO_ROUTE' ? 'no-route' : 'bad-handshake');
      logger.info({ client, protocol: handshake?.protocol, code: error.code, err: error.message }, 'proxy handshake failed');
    }
    closeAfterReply(socket, handshake?.failureReply(error));
  };
  const onData = (chunk: Buffer): void => {
    if (handshake === undefined) {
      if (chunk[0] === SOCKS4_VERSION) {
        stopReading();
        logger.info({ client }, 'proxy refused a SOCKS4 client: only SOCKS5 is spoken');
        context.onRefused?.('socks4');
        closeAfterReply(socket, SOCKS4_REJECTED_REPLY);
        return;
      }
      handshake = chunk[0] === SOCKS5_VERSION ? new Socks5Handshake() : new HttpProxyHandshake();
    }
    let request: ProxyRequest | undefined;
    try {
      const step = handshake.push(chunk);
      if (step.reply !== undefined) socket.write(step.reply);
      request = step.request;
    } catch (error) {
      if (!(error instanceof ProxyError)) throw error;
      fail(error);
      return;
    }
    if (request === undefined) return;
    stopReading();
    dispatch(request, handshake);
  };
  const onEnd = (): void => {
    stopReading();
    logger.debug({ client }, 'proxy client closed before completing its handshake');
    socket.destroy();
  };
  const dispatch = (request: ProxyRequest, done: ProxyHandshake): void => {
    let service: string;
    try {
      service = meshServiceOf(request.target.host);
    } catch (error) {
      if (!(error instanceof ProxyError)) throw error;
      logger.warn({ client, protocol: done.protocol, destination: quoteName(request.target.host) }, 'proxy refused a destination outside the mesh');
      fail(error);
      return;
    }
    logger.debug({ client, protocol: done.protocol, service }, 'proxying a connection');
    context.forwarder.forwardConnection(service, socket, {
      key: client,
      initialBytes: request.initialBytes,
      onOpen: () => {
        const reply = done.successReply();
        if (reply !== undefined) socket.write(reply);
      },
      onNoRoute: (error) => fail(new ProxyError('TRELLIS_ERR_PROXY_NO_ROUTE', `no route to service "${service}": ${error.message}`)),
    });
  };

  const timer = setTimeout(() => {
    fail(new ProxyError('TRELLIS_ERR_PROXY_TIMEOUT', `proxy handshake not completed within ${context.handshakeTimeoutMs} ms`));
  }, context.handshakeTimeoutMs);
  socket.once('close', () => clearTimeout(timer));
  socket.on('error', (error: NodeJS.ErrnoException) => logger.debug({ client, err: error.code ?? error.message }, 'proxy client socket error'));
  socket.on('data', onData);
  socket.on('end', onEnd);
}

/**
 * Sends `reply` and closes. What the client still sends is read and dropped: closing a socket
 * with unread bytes makes the kernel send a reset, which can destroy the reply in flight.
 */
function closeAfterReply(socket: net.Socket, reply: Buffer | undefined): void {
  if (reply === undefined || socket.destroyed) {
    socket.destroy();
    return;
  }
  socket.end(reply);
  socket.on('data', () => undefined);
  socket.resume();
  const linger = setTimeout(() => socket.destroy(), REPLY_LINGER_MS);
  linger.unref();
  socket.once('close', () => clearTimeout(linger));
}
