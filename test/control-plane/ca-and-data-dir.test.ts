import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readdir, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { connect } from 'node:tls';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { DataDirError } from '../../control-plane/index.js';
import { ControlErrorCode } from '../../proto/control.js';
import type { TrellisError } from '../../proto/errors.js';
import { parseAdminToken } from '../../proto/tokens.js';
import { adminTokenOf, caPemOf, call, startTestControlPlane, tempDir } from './helpers.js';

async function modeOf(path: string): Promise<number> {
  return (await stat(path)).mode & 0o777;
}

describe('CA and data directory', () => {
  it('creates the CA once and reuses it: same fingerprint, same admin token, right file modes', async () => {
    const dir = await tempDir();
    try {
      const first = await startTestControlPlane(dir.path, { trustDomain: 'example.test' });
      const caPem = await caPemOf(dir.path);
      const ca = new X509Certificate(caPem);
      assert.equal(first.caFingerprint, ca.fingerprint256.replaceAll(':', '').toLowerCase());
      assert.equal(ca.ca, true);
      assert.match(ca.subject, /CN=Trellis CA example\.test/);
      assert.equal(await modeOf(join(dir.path, 'ca.key')), 0o600);
      assert.equal(await modeOf(join(dir.path, 'ca.crt')), 0o644);
      assert.equal(await modeOf(first.adminTokenPath), 0o600);
      const adminToken = await adminTokenOf(first);
      assert.equal(parseAdminToken(adminToken).caFingerprint, first.caFingerprint);
      await first.close();

      // A different trust domain on restart does not change an existing CA.
      const second = await startTestControlPlane(dir.path, { trustDomain: 'other.test' });
      try {
        assert.equal(second.caFingerprint, first.caFingerprint);
        assert.equal(second.trustDomain, 'example.test');
        assert.equal(await adminTokenOf(second), adminToken);
        const bundle = await call(second, dir.path, 'GET', '/v1/trust-bundle');
        assert.deepEqual(bundle.json, { trustDomain: 'example.test', caPems: [caPem] });
      } finally {
        await second.close();
      }
    } finally {
      await dir.remove();
    }
  });

  it('serves a certificate for spiffe://<td>/control-plane, localhost and 127.0.0.1, issued by the CA', async () => {
    const dir = await tempDir();
    try {
      const cp = await startTestControlPlane(dir.path);
      try {
        const caPem = await caPemOf(dir.path);
        const url = new URL(cp.url);
        const peer = await new Promise<X509Certificate>((resolve, reject) => {
          const socket = connect({ host: url.hostname, port: Number(url.port), ca: caPem, servername: 'localhost' }, () => {
            const cert = socket.getPeerX509Certificate();
            socket.end();
            if (cert === undefined) reject(new Error('no certificate'));
            else resolve(cert);
          });
          socket.on('error', reject);
        });
        assert.ok(peer.subjectAltName?.includes('URI:spiffe://trellis.local/control-plane'));
        assert.ok(peer.subjectAltName?.includes('DNS:localhost'));
        assert.ok(peer.subjectAltName?.includes('IP Address:127.0.0.1'));
        assert.ok(peer.verify(new X509Certificate(caPem).publicKey));
      } finally {
        await cp.close();
      }
    } finally {
      await dir.remove();
    }
  });

  it('fails with an error naming the file when the data directory is unusable', async () => {
    const dir = await tempDir();
    try {
      const notADir = join(dir.path, 'file');
      await writeFile(notADir, 'x');
      await assert.rejects(startTestControlPlane(notADir), (err: unknown) => err instanceof DataDirError && err.message.includes(notADir));

      const cp = await startTestControlPlane(dir.path);
      await cp.close();
      await writeFile(join(dir.path, 'ca.crt'), 'garbage');
      await assert.rejects(startTestControlPlane(dir.path), (err: unknown) => err instanceof DataDirError && err.code === 'TRELLIS_ERR_DATA_DIR' && err.path.endsWith('ca.crt'));
    } finally {
      await dir.remove();
    }
  });

  it('refuses a malformed admin token file, naming it', async () => {
    const dir = await tempDir();
    try {
      const cp = await startTestControlPlane(dir.path);
      await cp.close();
      await writeFile(cp.adminTokenPath, 'trellis-admin-v1.garbage!');
      await assert.rejects(startTestControlPlane(dir.path), (err: unknown) => err instanceof DataDirError && err.path === cp.adminTokenPath);
    } finally {
      await dir.remove();
    }
  });

  it('checks the port before anything else: a busy port fails with its code and writes no CA or admin token', async () => {
    const dir = await tempDir();
    const busy = createServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    try {
      const port = (busy.address() as AddressInfo).port;
      await assert.rejects(startTestControlPlane(dir.path, { listenPort: port }), (err: TrellisError) => err.code === ControlErrorCode.LISTEN);
      assert.deepEqual((await readdir(dir.path)).sort(), []);
    } finally {
      busy.close();
      await dir.remove();
    }
  });
});
