// A sidecar talks to the control plane only if its certificate chains to the mesh CA and
// names spiffe://<trust domain>/control-plane: a mesh leaf of a service is not enough.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { request } from '../../sidecar/control/api-client.js';
import type { TestCa } from '../support/link-credentials.js';
import { createTestCa, credentialsFor } from '../support/link-credentials.js';

const TRUST_DOMAIN = 'cp-identity.test';

describe('control-plane identity, as a sidecar checks it', () => {
  let mesh: TestCa;
  let foreign: TestCa;
  const servers: https.Server[] = [];

  before(async () => {
    [mesh, foreign] = await Promise.all([createTestCa(TRUST_DOMAIN), createTestCa(TRUST_DOMAIN)]);
  });

  after(async () => {
    for (const server of servers) server.close();
    await Promise.all([mesh?.remove(), foreign?.remove()]);
  });

  /** An HTTPS server that answers every request with `{}`, with the leaf of `service` from `ca`. */
  async function serveAs(ca: TestCa, service: string): Promise<string> {
    const { certPem, privateKeyPem } = (await credentialsFor(ca.ca, service)).current;
    const server = https.createServer({ cert: certPem, key: privateKeyPem }, (_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'));
    servers.push(server);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  it('refuses a server whose mesh-CA certificate names a service, not the control plane', async () => {
    const url = await serveAs(mesh, 'api');
    await assert.rejects(request({ url, trustDomain: TRUST_DOMAIN, caPems: mesh.ca.caPems() }, 'GET', '/v1/trust-bundle'), { code: 'TRELLIS_ERR_CONTROL_PLANE_IDENTITY' });
  });

  it('refuses a server whose certificate comes from another CA', async () => {
    const url = await serveAs(foreign, 'control-plane');
    await assert.rejects(request({ url, trustDomain: TRUST_DOMAIN, caPems: mesh.ca.caPems() }, 'GET', '/v1/trust-bundle'), { code: 'TRELLIS_ERR_CONTROL_PLANE_IDENTITY' });
  });
});
