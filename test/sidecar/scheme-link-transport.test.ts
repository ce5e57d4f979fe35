// One transport for every scheme: dials and listens go to the transport their URL names.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Credentials } from '../../sidecar/identity/credentials.js';
import { parseLinkUrl } from '../../sidecar/links/link-url.js';
import { SchemeLinkTransport } from '../../sidecar/links/scheme-transport.js';
import { TlsLinkTransport } from '../../sidecar/links/tls-transport.js';
import type { AuthenticatedLink, LinkListener } from '../../sidecar/links/transport.js';
import { WsLinkTransport } from '../../sidecar/links/ws-transport.js';
import type { TestCa } from '../support/link-credentials.js';
import { createTestCa, credentialsFor } from '../support/link-credentials.js';

const API = { kind: 'service', service: 'api' } as const;

describe('SchemeLinkTransport', () => {
  let mesh: TestCa;
  let api: Credentials;
  let caller: Credentials;
  const listeners: LinkListener[] = [];
  const links: AuthenticatedLink[] = [];

  before(async () => {
    mesh = await createTestCa('links.test');
    [api, caller] = await Promise.all([credentialsFor(mesh.ca, 'api'), credentialsFor(mesh.ca, 'caller')]);
  });

  after(async () => {
    for (const link of links) link.socket.destroy();
    await Promise.all(listeners.map((listener) => listener.close()));
    await mesh?.remove();
  });

  const both = (credentials: Credentials): SchemeLinkTransport =>
    new SchemeLinkTransport({ tls: new TlsLinkTransport(credentials), wss: new WsLinkTransport(credentials) });

  it('listens and dials by scheme, bare HOST:PORT meaning TLS', { timeout: 20_000 }, async () => {
    const server = both(api);
    const accepted: string[] = [];
    for (const url of ['127.0.0.1:0', 'wss://127.0.0.1:0/links']) {
      listeners.push(await server.listen(parseLinkUrl(url), (link) => (links.push(link), accepted.push(link.peerAddress))));
    }
    const [tlsListener, wssListener] = listeners;
    assert.match(tlsListener?.url ?? '', /^tls:\/\/127\.0\.0\.1:\d+$/);
    assert.match(wssListener?.url ?? '', /^wss:\/\/127\.0\.0\.1:\d+\/links$/);
    const client = both(caller);
    for (const address of [tlsListener?.url ?? '', (tlsListener?.url ?? '').slice('tls://'.length), wssListener?.url ?? '']) {
      const link = await client.dial({ address, peer: API });
      links.push(link);
      assert.deepEqual(link.peer, API);
    }
  });

  it('refuses a scheme it has no transport for, and one nobody knows, with TRELLIS_ERR_BAD_ADDRESS', async () => {
    const tlsOnly = new SchemeLinkTransport({ tls: new TlsLinkTransport(caller) });
    await assert.rejects(tlsOnly.dial({ address: 'wss://127.0.0.1:1/links', peer: API }), { code: 'TRELLIS_ERR_BAD_ADDRESS' });
    await assert.rejects(tlsOnly.listen(parseLinkUrl('wss://127.0.0.1:0'), () => undefined), { code: 'TRELLIS_ERR_BAD_ADDRESS' });
    await assert.rejects(tlsOnly.dial({ address: 'quic://127.0.0.1:1', peer: API }), { code: 'TRELLIS_ERR_BAD_ADDRESS' });
  });
});
