import type { Credentials } from '../identity/credentials.js';
import type { Connector } from './connector.js';
import type { ListenerGuard } from './listener-guard.js';
import type { RevokedPeers } from './revoked-peers.js';
import { SchemeLinkTransport } from './scheme-transport.js';
import { TlsLinkTransport } from './tls-transport.js';
import type { LinkTransport } from './transport.js';
import { WsLinkTransport } from './ws-transport.js';

/** Options of every link transport a process makes. */
export interface LinkTransportOptions {
  /** Time for TCP (and a proxy's CONNECT) plus the TLS handshake. @default 5000 */
  dialTimeoutMs?: number;
  /** How TCP connections are made. @default direct */
  connector?: Connector;
  /** Caps and handshake timeout of the process's link listeners. @default a guard per transport, with default limits */
  listenerGuard?: ListenerGuard;
  /** Dialled links forget their TLS session tickets at every revocation. @default none revoked */
  revokedPeers?: RevokedPeers;
}

/** The transports of a sidecar or gateway, picked by the scheme of each URL: TLS or WebSocket. */
export function createLinkTransport(credentials: Credentials, options: LinkTransportOptions): LinkTransport {
  return new SchemeLinkTransport({ tls: new TlsLinkTransport(credentials, options), wss: new WsLinkTransport(credentials, options) });
}
