import type { Duplex } from 'node:stream';
import type { PeerIdentity } from '../../proto/spiffe.js';
import type { LinkUrl } from './link-url.js';

/** Where a link goes: the peer's link address and the identity its certificate must carry. */
export interface LinkTarget {
  /** `host:port`, `tls://host:port` or `wss://host:port[/path]` of the peer's link listener. */
  address: string;
  /** The identity the peer must prove: a service's sidecar or a gateway. */
  peer: PeerIdentity;
  /** For a service endpoint: its sidecar id and zone, so that a link to another zone can go through gateways. */
  endpoint?: { sidecarId: string; zone: string };
}

/** An authenticated link, ready to carry frames. */
export interface AuthenticatedLink {
  socket: Duplex;
  /** The peer's identity, read from its verified certificate. */
  peer: PeerIdentity;
  /** The peer's sidecar or gateway id (its certificate's common name), when it shows one. */
  peerId: string | undefined;
  /** The notBefore of the peer's certificate (ms since the epoch), when the handshake showed it (not on a resumed dial). */
  peerNotBeforeMs?: number | undefined;
  /** A printable peer address, for logs and metrics. */
  peerAddress: string;
  /**
   * For a link inside a tunnel: calls `listener` once a gateway on the tunnel's path is draining
   * (TUNNEL_DRAIN), so that the link's owner sends GOAWAY on it and opens new streams elsewhere.
   */
  onCarrierDrain?: (listener: (gateway: string) => void) => void;
}

export interface LinkListener {
  /** The bound address as a link URL (`tls://host:port`, `wss://host:port/path`), with the real port when 0 was asked. */
  readonly url: string;
  /** Stops accepting links. Links already accepted stay open: their owner closes them. */
  close(): Promise<void>;
}

/**
 * How links are made: mutually authenticated and encrypted, with certificates from the mesh
 * CA on both ends. TLS over TCP is one implementation; WebSocket over HTTPS, with the link's
 * own TLS inside, is another. `test/sidecar/link-transport-suite.ts` is the contract both pass.
 */
export interface LinkTransport {
  /** Dials `target`; rejects with a TrellisError (`TRELLIS_ERR_PEER_IDENTITY`, `TRELLIS_ERR_DIAL_TIMEOUT`, …). */
  dial(target: LinkTarget): Promise<AuthenticatedLink>;
  /** Listens at `url`; every link whose peer proved a mesh identity reaches `onLink`. */
  listen(url: LinkUrl, onLink: (link: AuthenticatedLink) => void): Promise<LinkListener>;
}
