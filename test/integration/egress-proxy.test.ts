// Links through a real HTTP CONNECT proxy (tinyproxy): TLS and WebSocket links, a refusal, an unreachable proxy.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import type { Credentials } from '../../sidecar/identity/credentials.js';
import { HttpConnectConnector, egressConnectorFromEnv } from '../../sidecar/links/http-connect-connector.js';
import { parseLinkUrl } from '../../sidecar/links/link-url.js';
import { TlsLinkTransport } from '../../sidecar/links/tls-transport.js';
import type { AuthenticatedLink, LinkListener, LinkTransport } from '../../sidecar/links/transport.js';
import { WsLinkTransport } from '../../sidecar/links/ws-transport.js';
import { sha256 } from '../support/apps.js';
import type { TestCa } from '../support/link-credentials.js';
import { createTestCa, credentialsFor } from '../support/link-credentials.js';
import { freeLoopbackPort } from '../support/ports.js';
import type { Tinyproxy } from '../support/tinyproxy.js';
import { startTinyproxy } from '../support/tinyproxy.js';

const API = { kind: 'service', service: 'api' } as const;
const PAYLOAD_BYTES = 4 * 1024 * 1024;
const CASE = { timeout: 30_000 };

/** The first `bytes` bytes the socket reads. */
function readBytes(socket: Duplex, bytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      total += chunk.length;
      if (total < bytes) return;
      socket.off('data', onData);
      resolve(Buffer.concat(chunks));
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.once('end', () => reject(new Error(`ended after ${total} of ${bytes} bytes`)));
  });
}

describe('links through an egress proxy (tinyproxy)', () => {
  let mesh: TestCa;
  let api: Credentials;
  let caller: Credentials;
  let proxy: Tinyproxy | undefined;
  const listeners: Record<'tls' | 'wss' | 'forbidden', LinkListener> = {} as never;
  const accepted: AuthenticatedLink[] = [];
  const waiting: ((link: AuthenticatedLink) => void)[] = [];

  before(async () => {
    mesh = await createTestCa('links.test');
    [api, caller] = await Promise.all([credentialsFor(mesh.ca, 'api'), credentialsFor(mesh.ca, 'caller')]);
    const onLink = (link: AuthenticatedLink): void => {
      accepted.push(link);
      waiting.shift()?.(link);
    };
    listeners.tls = await new TlsLinkTransport(api).listen(parseLinkUrl('tls://127.0.0.1:0'), onLink);
    listeners.wss = await new WsLinkTransport(api).listen(parseLinkUrl('wss://127.0.0.1:0'), onLink);
    listeners.forbidden = await new TlsLinkTransport(api).listen(parseLinkUrl('tls://127.0.0.1:0'), onLink);
    // CONNECT may reach the two link listeners only: the third gets tinyproxy's 403.
    proxy = await startTinyproxy({ connectPorts: [parseLinkUrl(listeners.tls.url).port, parseLinkUrl(listeners.wss.url).port] });
  });

  after(async () => {
    await proxy?.stop();
    for (const link of accepted) link.socket.destroy();
    await Promise.all(Object.values(listeners).map((listener) => listener.close()));
    await mesh?.remove();
  });

  async function exchange(transport: LinkTransport, address: string): Promise<void> {
    const acceptedLink = new Promise<AuthenticatedLink>((resolve) => waiting.push(resolve));
    const link = await transport.dial({ address, peer: API });
    const far = await acceptedLink;
    assert.deepEqual(far.peer, { kind: 'service', service: 'caller' });
    const [up, down] = [randomBytes(PAYLOAD_BYTES), randomBytes(PAYLOAD_BYTES)];
    const [atFar, atNear] = [readBytes(far.socket, PAYLOAD_BYTES), readBytes(link.socket, PAYLOAD_BYTES)];
    // No end() until both directions are through: tinyproxy tears the whole tunnel down at the
    // first FIN, dropping what is still in flight the other way (it does not relay half-closes).
    link.socket.write(up);
    far.socket.write(down);
    assert.equal(sha256(await atFar), sha256(up));
    assert.equal(sha256(await atNear), sha256(down));
    const farEnded = new Promise((resolve) => far.socket.once('end', resolve));
    link.socket.end();
    await farEnded;
  }

  it('carries a TLS link byte-exact', CASE, async () => {
    await exchange(new TlsLinkTransport(caller, { connector: new HttpConnectConnector(proxy?.url ?? '') }), listeners.tls.url);
  });

  it('carries a WebSocket link byte-exact', CASE, async () => {
    await exchange(new WsLinkTransport(caller, { connector: new HttpConnectConnector(proxy?.url ?? '') }), listeners.wss.url);
  });

  it('takes the proxy from HTTPS_PROXY', CASE, async () => {
    await exchange(new WsLinkTransport(caller, { connector: egressConnectorFromEnv(undefined, { HTTPS_PROXY: proxy?.url }) }), listeners.wss.url);
  });

  it('fails with TRELLIS_ERR_EGRESS_PROXY_REFUSED when the proxy refuses the port', CASE, async () => {
    const transport = new TlsLinkTransport(caller, { connector: new HttpConnectConnector(proxy?.url ?? '') });
    await assert.rejects(transport.dial({ address: listeners.forbidden.url, peer: API }), { code: 'TRELLIS_ERR_EGRESS_PROXY_REFUSED' });
  });

  it('fails with TRELLIS_ERR_EGRESS_PROXY_UNREACHABLE when nothing listens at the proxy', CASE, async () => {
    const connector = new HttpConnectConnector(`http://127.0.0.1:${await freeLoopbackPort()}`);
    for (const transport of [new TlsLinkTransport(caller, { connector }), new WsLinkTransport(caller, { connector })]) {
      const address = transport instanceof TlsLinkTransport ? listeners.tls.url : listeners.wss.url;
      await assert.rejects(transport.dial({ address, peer: API }), { code: 'TRELLIS_ERR_EGRESS_PROXY_UNREACHABLE' });
    }
  });
});
