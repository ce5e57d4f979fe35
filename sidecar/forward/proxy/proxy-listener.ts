import { once } from 'node:events';
import net from 'node:net';
import type { Logger } from 'pino';
import type { HostPort } from '../../net/address.js';
import { formatHostPort } from '../../net/address.js';
import type { ConnectionForwarder, ProxyRefusal } from './proxy-connection.js';
import { handleProxyConnection } from './proxy-connection.js';

/** How long a client has to finish its SOCKS5 or HTTP handshake. */
export const DEFAULT_PROXY_HANDSHAKE_TIMEOUT_MS = 10_000;

export interface ProxyListenerInit {
  /** Where to listen; loopback, since the proxy asks for no credentials. */
  listen: HostPort;
  /** Takes each connection once its destination service is known. */
  forwarder: ConnectionForwarder;
  logger: Logger;
  /** @default DEFAULT_PROXY_HANDSHAKE_TIMEOUT_MS */
  handshakeTimeoutMs?: number;
  /** Told of every client the proxy turns away, by reason. */
  onRefused?: (reason: ProxyRefusal) => void;
}

/** A running proxy port. */
export interface ProxyListener {
  /** The bound address, `host:port`. */
  readonly address: string;
  /** Stops accepting; connections already accepted go on (a drain). */
  stopAccepting(): void;
  /** Stops accepting and closes every connection accepted on this port. */
  close(): Promise<void>;
}

/**
 * Starts one local port that speaks SOCKS5 and HTTP (CONNECT and absolute-form requests), so
 * that an app honouring `ALL_PROXY` / `HTTP_PROXY` reaches `<service>.mesh` with no other
 * change. Names outside `.mesh` are refused and never dialled. Rejects if the port is taken.
 */
export async function startProxyListener(init: ProxyListenerInit): Promise<ProxyListener> {
  const sockets = new Set<net.Socket>();
  const context = {
    forwarder: init.forwarder,
    logger: init.logger,
    handshakeTimeoutMs: init.handshakeTimeoutMs ?? DEFAULT_PROXY_HANDSHAKE_TIMEOUT_MS,
    onRefused: init.onRefused,
  };
  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    handleProxyConnection(socket, context);
  });
  server.listen(init.listen.port, init.listen.host);
  await Promise.race([once(server, 'listening'), once(server, 'error').then(([error]) => Promise.reject(error as Error))]);
  const port = (server.address() as net.AddressInfo).port;
  return {
    address: formatHostPort(init.listen.host, port),
    stopAccepting: () => {
      server.close();
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      }),
  };
}
