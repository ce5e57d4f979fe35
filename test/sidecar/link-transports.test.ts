// The LinkTransport contract, run against every transport (and a WebSocket link through a real proxy).
import WebSocket from 'ws';
import type { Credentials } from '../../sidecar/identity/credentials.js';
import { HttpConnectConnector } from '../../sidecar/links/http-connect-connector.js';
import { parseLinkUrl } from '../../sidecar/links/link-url.js';
import { TlsLinkTransport } from '../../sidecar/links/tls-transport.js';
import { WebSocketDuplex } from '../../sidecar/links/ws-duplex.js';
import { WsLinkTransport } from '../../sidecar/links/ws-transport.js';
import { connect } from '../support/apps.js';
import { startTinyproxy } from '../support/tinyproxy.js';
import { linkTransportSuite } from './link-transport-suite.js';

/** A WebSocket to a link listener, outer TLS unchecked: the suite speaks the link's TLS itself inside. */
async function openWebSocket(url: string): Promise<WebSocketDuplex> {
  const { host, port, path } = parseLinkUrl(url);
  const ws = new WebSocket(`wss://${host}:${port}${path ?? ''}`, { rejectUnauthorized: false, perMessageDeflate: false });
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
  return new WebSocketDuplex(ws);
}

linkTransportSuite('TLS over TCP', () =>
  Promise.resolve({
    listenUrl: 'tls://127.0.0.1:0',
    transport: (credentials: Credentials) => new TlsLinkTransport(credentials),
    // Not half-open: over a half-open socket, a TLS client that got a fatal alert never closes.
    openRawStream: (url: string) => connect(parseLinkUrl(url).port, { allowHalfOpen: false }),
    closedPortCode: 'ECONNREFUSED',
  }),
);

linkTransportSuite('WebSocket over HTTPS', () =>
  Promise.resolve({
    listenUrl: 'wss://127.0.0.1:0',
    transport: (credentials: Credentials) => new WsLinkTransport(credentials),
    openRawStream: openWebSocket,
    closedPortCode: 'ECONNREFUSED',
  }),
);

linkTransportSuite('WebSocket over HTTPS through tinyproxy', async () => {
  const proxy = await startTinyproxy();
  return {
    listenUrl: 'wss://127.0.0.1:0/mesh/links',
    transport: (credentials: Credentials) => new WsLinkTransport(credentials, { connector: new HttpConnectConnector(proxy.url) }),
    openRawStream: openWebSocket,
    // tinyproxy answers a CONNECT it cannot complete with an error status.
    closedPortCode: 'TRELLIS_ERR_EGRESS_PROXY_REFUSED',
    close: () => proxy.stop(),
  };
});
