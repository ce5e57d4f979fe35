// The sidecar's PKCS#10 request, written without node-forge, read by the CA and
// by openssl; a request changed after signing is refused.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createPublicKey, X509Certificate } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { CertificateAuthority } from '../../control-plane/ca.js';
import { signSidecarCsr } from '../../control-plane/cert-issuer.js';
import { ApiError } from '../../control-plane/errors.js';
import { ControlErrorCode } from '../../proto/control.js';
import { createCsrPemFor, derElement } from '../../sidecar/identity/csr.js';
import { generateSidecarKeyPair } from '../../sidecar/identity/keys.js';
import type { KeyPairPem } from '../../sidecar/identity/keys.js';
import { silentLogger, tempDir } from '../control-plane/helpers.js';

const TRUST_DOMAIN = 'csr.test';
const IDENTITY = { sidecarId: 'sc-0123456789ab', service: 'web' };
const TTL_MS = 3_600_000;

function derOf(pem: string): Buffer {
  return Buffer.from(pem.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, ''), 'base64');
}

function pemOf(der: Buffer): string {
  return `-----BEGIN CERTIFICATE REQUEST-----\n${(der.toString('base64').match(/.{1,64}/g) ?? []).join('\n')}\n-----END CERTIFICATE REQUEST-----\n`;
}

function assertBadCsr(action: () => unknown): void {
  assert.throws(action, (error: unknown) => error instanceof ApiError && error.code === ControlErrorCode.BAD_CSR);
}

describe('sidecar CSR (DER written with node:crypto)', () => {
  let ca: CertificateAuthority;
  let keys: KeyPairPem;
  let dir: { path: string; remove: () => Promise<void> };

  before(async () => {
    dir = await tempDir();
    ca = await CertificateAuthority.loadOrCreate({ dataDir: dir.path, trustDomain: TRUST_DOMAIN, logger: silentLogger, now: Date.now });
    keys = await generateSidecarKeyPair();
  });
  after(() => dir.remove());

  it('is accepted by the CA, which certifies the sidecar key for the identity it chose', () => {
    const issued = signSidecarCsr(ca, createCsrPemFor(keys.privateKeyPem, 'asks-for-anything'), IDENTITY, TTL_MS);
    const cert = new X509Certificate(issued.certPem);
    const expectedKey = createPublicKey(keys.publicKeyPem).export({ type: 'spki', format: 'der' });
    assert.deepEqual(cert.publicKey.export({ type: 'spki', format: 'der' }), expectedKey);
    assert.equal(cert.subjectAltName, `URI:spiffe://${TRUST_DOMAIN}/svc/web`);
  });

  it('verifies with openssl, subject and all', async () => {
    const file = join(dir.path, 'request.csr');
    await writeFile(file, createCsrPemFor(keys.privateKeyPem, 'web-ü'));
    const { stdout, stderr } = await promisify(execFile)('openssl', ['req', '-in', file, '-noout', '-verify', '-subject', '-nameopt', 'utf8']);
    assert.match(`${stdout}${stderr}`, /verify OK/i);
    assert.match(stdout, /subject=CN\s?=\s?web-ü/);
  });

  it('is refused once a signed byte changes (subject or signature)', () => {
    const der = derOf(createCsrPemFor(keys.privateKeyPem, 'web'));
    const subjectAt = der.indexOf(Buffer.from('web'));
    assert.ok(subjectAt > 0);
    const renamed = Buffer.from(der);
    renamed[subjectAt] = 'x'.charCodeAt(0);
    assertBadCsr(() => signSidecarCsr(ca, pemOf(renamed), IDENTITY, TTL_MS));
    const resigned = Buffer.from(der);
    resigned[resigned.length - 1] = (resigned.at(-1) ?? 0) ^ 0x01;
    assertBadCsr(() => signSidecarCsr(ca, pemOf(resigned), IDENTITY, TTL_MS));
  });

  it('encodes DER lengths in short and long form', () => {
    assert.deepEqual(derElement(0x04, Buffer.alloc(0x7f)).subarray(0, 2), Buffer.from([0x04, 0x7f]));
    assert.deepEqual(derElement(0x04, Buffer.alloc(0x80)).subarray(0, 3), Buffer.from([0x04, 0x81, 0x80]));
    assert.deepEqual(derElement(0x04, Buffer.alloc(0x100)).subarray(0, 4), Buffer.from([0x04, 0x82, 0x01, 0x00]));
    assert.deepEqual(derElement(0x04, Buffer.alloc(0x10000)).subarray(0, 5), Buffer.from([0x04, 0x83, 0x01, 0x00, 0x00]));
  });
});
