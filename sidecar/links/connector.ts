import { once } from 'node:events';
import net from 'node:net';
import { TrellisError } from '../../proto/errors.js';

/** Where a TCP connection goes, and how long it may take. */
export interface ConnectTarget {
  host: string;
  port: number;
  timeoutMs: number;
}

/**
 * How a link's TCP connection is made: straight to the peer, or through an HTTP CONNECT
 * proxy (corporate egress). The link's TLS runs on top either way.
 */
export interface Connector {
  connect(target: ConnectTarget): Promise<net.Socket>;
}

/** Connects straight to the peer. */
export const directConnector: Connector = {
  async connect({ host, port, timeoutMs }) {
    const socket = net.connect({ host, port, noDelay: true });
    const timer = setTimeout(
      () => socket.destroy(new TrellisError('TRELLIS_ERR_DIAL_TIMEOUT', `TCP connect to ${host}:${port} timed out after ${timeoutMs} ms`)),
      timeoutMs,
    );
    try {
      await once(socket, 'connect');
      return socket;
    } finally {
      clearTimeout(timer);
    }
  },
};
