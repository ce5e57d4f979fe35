// A certificate that names two mesh identities is no mesh identity: the control plane never
// issues one, and a link listener must not pick "the first that matches".
import assert from 'node:assert/strict';
import { createPublicKey } from 'node:crypto';
import { once } from 'node:events';
import { setTimeout as delay } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { leafKeyOf } from '../../control-plane/ca.js';
import { peerIdentityOf } from '../../proto/spiffe.js';
import { Credentials } from '../../sidecar/identity/credentials.js';
import { generateSidecarKeyPair } from '../../sidecar/identity/keys.js';
import { parseLinkUrl } from '../../sidecar/links/link-url.js';
import { TlsLinkTransport } from '../../sidecar/links/tls-transport.js';
import type { AuthenticatedLink, LinkListener } from '../../sidecar/links/transport.js';
import type { TestCa } from '../support/link-credentials.js';
import { createTestCa, credentialsFor } from '../support/link-credentials.js';

const TD = 'trellis.local';

describe('certificates with two URI SANs', () => {
  let testCa: TestCa;
  let listener: LinkListener;
  const accepted: AuthenticatedLink[] = [];

  before(async () => {
    testCa = await createTestCa(TD);
    listener = await new TlsLinkTransport(await credentialsFor(testCa.ca, 'api')).listen(parseLinkUrl('tls://127.0.0.1:0'), (link) => accepted.push(link));
  });
  after(async () => {
    for (const link of accepted) link.socket.destroy();
    await listener?.close();
    await testCa?.remove();
  });

  it('name no identity', () => {
    assert.equal(peerIdentityOf(TD, [`spiffe://${TD}/svc/web`, `spiffe://${TD}/svc/admin`]), undefined);
    assert.equal(peerIdentityOf(TD, []), undefined);
    assert.deepEqual(peerIdentityOf(TD, [`spiffe://${TD}/svc/web`]), { kind: 'service', service: 'web' });
  });

  it('are refused by a link listener, although they chain to the mesh CA', async () => {
    const keys = await generateSidecarKeyPair();
    const issued = testCa.ca.issue(
      leafKeyOf(createPublicKey(keys.privateKeyPem)),
      { commonName: 'sc-twosans0000', uriSans: [`spiffe://${TD}/svc/web`, `spiffe://${TD}/svc/admin`], extKeyUsage: { serverAuth: true, clientAuth: true } },
      3_600_000,
    );
    const credentials = new Credentials({ trustDomain: TD, service: 'web', sidecarId: 'sc-twosans0000', privateKeyPem: keys.privateKeyPem, certPem: issued.certPem, caPems: testCa.ca.caPems(), expiresAt: issued.expiresAt });
    const link = await new TlsLinkTransport(credentials).dial({ address: listener.url, peer: { kind: 'service', service: 'api' } });
    // TLS 1.3: the client finishes first; the listener then looks at the certificate and hangs up.
    const closed = await Promise.race([once(link.socket, 'close').then(() => true), delay(5000).then(() => false)]);
    assert.equal(accepted.length, 0, 'the listener took the link');
    assert.ok(closed, 'the listener did not hang up');
    link.socket.destroy();
  });
});
