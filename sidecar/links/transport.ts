import type { Duplex } from 'node:stream';

/** Where a link goes: the peer sidecar's link address and the service it must prove to be. */
export interface LinkTarget {
  /** `host:port` of the peer's link listener. */
  address: string;
  /** The service whose identity the peer's certificate must carry. */
  service: string;
}

/** An authenticated link, ready to carry frames. */
export interface AuthenticatedLink {
  socket: Duplex;
  /** The peer's service, read from its verified certificate. */
  peerService: string;
  /** A printable peer address, for logs and metrics. */
  peerAddress: string;
}

export interface LinkListener {
  /** The bound address, `host:port`, with the real port when 0 was asked. */
  readonly address: string;
  close(): Promise<void>;
}

/**
 * How links are made: mutually authenticated and encrypted. TLS is one implementation;
 * WebSocket over TLS (for gateways) is another.
 */
export interface LinkTransport {
  dial(target: LinkTarget): Promise<AuthenticatedLink>;
  listen(host: string, port: number, onLink: (link: AuthenticatedLink) => void): Promise<LinkListener>;
}
