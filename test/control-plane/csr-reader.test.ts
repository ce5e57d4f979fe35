// The CA's PKCS#10 reader: requests written by the sidecar, by node-forge and by openssl are
// read; every malformed, weak, unsigned or mis-signed one is refused with TRELLIS_ERR_BAD_CSR.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { readCsr } from '../../control-plane/csr-reader.js';
import { ApiError } from '../../control-plane/errors.js';
import { ControlErrorCode } from '../../proto/control.js';
import { createCsrPemFor, derElement } from '../../sidecar/identity/csr.js';
import { makeCsr, tempDir } from './helpers.js';

const run = promisify(execFile);

const SHA256_WITH_RSA = Buffer.from('2a864886f70d01010b', 'hex');
const SHA1_WITH_RSA = Buffer.from('2a864886f70d010105', 'hex');
const NULL = derElement(0x05, Buffer.alloc(0));

function pemOf(der: Buffer): string {
  return `-----BEGIN CERTIFICATE REQUEST-----\n${(der.toString('base64').match(/.{1,64}/g) ?? []).join('\n')}\n-----END CERTIFICATE REQUEST-----\n`;
}

function seq(...parts: Buffer[]): Buffer {
  return derElement(0x30, Buffer.concat(parts));
}

interface Parts {
  version?: Buffer;
  algorithm?: Buffer;
  digest?: string;
  attributes?: Buffer;
}

/** A request for `keyPem` built from parts, so that each part can be wrong on its own. */
function requestOf(keyPem: string, parts: Parts = {}): { info: Buffer; algorithm: Buffer; signature: Buffer } {
  const key = createPrivateKey(keyPem);
  const subject = seq(derElement(0x31, seq(derElement(0x06, Buffer.from([0x55, 0x04, 0x03])), derElement(0x0c, Buffer.from('x')))));
  const info = seq(parts.version ?? derElement(0x02, Buffer.from([0])), subject, createPublicKey(key).export({ type: 'spki', format: 'der' }), parts.attributes ?? derElement(0xa0, Buffer.alloc(0)));
  return { info, algorithm: parts.algorithm ?? seq(derElement(0x06, SHA256_WITH_RSA), NULL), signature: sign(parts.digest ?? 'sha256', info, key) };
}

function assembled({ info, algorithm, signature }: { info: Buffer; algorithm: Buffer; signature: Buffer }): Buffer {
  return seq(info, algorithm, derElement(0x03, Buffer.concat([Buffer.from([0]), signature])));
}

function assertBadCsr(pem: string): void {
  assert.throws(() => readCsr(pem), (error: unknown) => error instanceof ApiError && error.code === ControlErrorCode.BAD_CSR && error.httpStatus === 400);
}

describe('CSR reader', () => {
  let keyPem: string;
  let dir: { path: string; remove: () => Promise<void> };

  before(async () => {
    dir = await tempDir();
    keyPem = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  });
  after(() => dir.remove());

  it("reads the sidecar's, node-forge's and openssl's requests, with the key they carry", async () => {
    const expected = createPublicKey(keyPem).export({ type: 'spki', format: 'der' });
    const sidecar = readCsr(createCsrPemFor(keyPem, 'web'));
    assert.deepEqual(sidecar.publicKey.export({ type: 'spki', format: 'der' }), expected);
    assert.equal(sidecar.keyName, 'rsa-2048');
    assert.equal(readCsr(makeCsr(3072).csrPem).keyName, 'rsa-3072'); // forge writes CRLF lines
    const keyFile = join(dir.path, 'key.pem');
    await run('openssl', ['genrsa', '-out', keyFile, '2048']);
    for (const digest of ['-sha256', '-sha384', '-sha512']) {
      const out = join(dir.path, `req${digest}.csr`);
      await run('openssl', ['req', '-new', '-key', keyFile, '-subj', '/CN=web/O=acme', '-addext', 'subjectAltName=DNS:web', digest, '-out', out]);
      assert.equal(readCsr(await readFile(out, 'utf8')).keyName, 'rsa-2048', digest);
    }
    // NULL parameters are optional in an AlgorithmIdentifier.
    assert.equal(readCsr(pemOf(assembled(requestOf(keyPem, { algorithm: seq(derElement(0x06, SHA256_WITH_RSA)) })))).keyName, 'rsa-2048');
  });

  it('reads EC P-256 and P-384 requests; refuses weak RSA, other curves and other key types', async () => {
    const ecKeyPem = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    assert.equal(readCsr(createCsrPemFor(ecKeyPem, 'web')).keyName, 'ec-prime256v1');
    const opensslCsr = async (curve: string): Promise<string> => {
      const key = join(dir.path, `${curve}.pem`);
      const csr = join(dir.path, `${curve}.csr`);
      await run('openssl', ['ecparam', '-name', curve, '-genkey', '-noout', '-out', key]);
      await run('openssl', ['req', '-new', '-key', key, '-subj', '/CN=web', '-sha384', '-out', csr]);
      return readFile(csr, 'utf8');
    };
    assert.equal(readCsr(await opensslCsr('prime256v1')).keyName, 'ec-prime256v1');
    assert.equal(readCsr(await opensslCsr('secp384r1')).keyName, 'ec-secp384r1');
    assertBadCsr(await opensslCsr('secp256k1'));
    assertBadCsr(makeCsr(1024).csrPem);
    const edKey = join(dir.path, 'ed.pem');
    const edCsr = join(dir.path, 'ed.csr');
    await run('openssl', ['genpkey', '-algorithm', 'ed25519', '-out', edKey]);
    await run('openssl', ['req', '-new', '-key', edKey, '-subj', '/CN=web', '-out', edCsr]);
    assertBadCsr(await readFile(edCsr, 'utf8'));
    // An EC key under an RSA signature algorithm: refused before any verification.
    assertBadCsr(pemOf(assembled(requestOf(ecKeyPem))));
  });

  it('refuses a request changed after signing, or signed with another key or digest', () => {
    const good = assembled(requestOf(keyPem));
    const renamed = Buffer.from(good);
    renamed[good.indexOf(Buffer.from('x'))] = 'y'.charCodeAt(0);
    assertBadCsr(pemOf(renamed));
    const resigned = Buffer.from(good);
    resigned[resigned.length - 1] = (resigned.at(-1) ?? 0) ^ 0x01;
    assertBadCsr(pemOf(resigned));
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    const mine = requestOf(keyPem);
    assertBadCsr(pemOf(assembled({ ...mine, signature: sign('sha256', mine.info, other) })));
    // Says SHA-256, signed SHA-512; and SHA-1, which is refused whatever it signs.
    assertBadCsr(pemOf(assembled(requestOf(keyPem, { digest: 'sha512' }))));
    assertBadCsr(pemOf(assembled(requestOf(keyPem, { algorithm: seq(derElement(0x06, SHA1_WITH_RSA), NULL), digest: 'sha1' }))));
    // Parameters other than NULL.
    assertBadCsr(pemOf(assembled(requestOf(keyPem, { algorithm: seq(derElement(0x06, SHA256_WITH_RSA), derElement(0x02, Buffer.from([1]))) }))));
    // A signature BIT STRING with unused bits.
    const { info, algorithm, signature } = requestOf(keyPem);
    assertBadCsr(pemOf(seq(info, algorithm, derElement(0x03, Buffer.concat([Buffer.from([1]), signature])))));
  });

  it('refuses malformed DER and PEM', () => {
    const good = assembled(requestOf(keyPem));
    assert.equal(readCsr(pemOf(good)).keyName, 'rsa-2048');
    assertBadCsr(pemOf(good.subarray(0, good.length - 1))); // truncated
    assertBadCsr(pemOf(Buffer.concat([good, Buffer.from([0])]))); // a byte after the request
    assertBadCsr(pemOf(Buffer.concat([Buffer.from([0x30, 0x80]), good.subarray(4), Buffer.from([0, 0])]))); // indefinite length (BER)
    // The same length in a longer form than DER's shortest.
    assert.equal(good[1], 0x82);
    assertBadCsr(pemOf(Buffer.concat([Buffer.from([0x30, 0x83, 0x00]), good.subarray(2)])));
    // Version 2 (1), an attribute-less request info, a request info with something after it.
    assertBadCsr(pemOf(assembled(requestOf(keyPem, { version: derElement(0x02, Buffer.from([1])) }))));
    const { info, algorithm, signature } = requestOf(keyPem);
    const infoWithout = seq(derElement(0x02, Buffer.from([0])));
    assertBadCsr(pemOf(assembled({ info: infoWithout, algorithm, signature })));
    assertBadCsr(pemOf(assembled({ info: seq(info.subarray(4), NULL), algorithm, signature })));
    assertBadCsr('not a csr');
    assertBadCsr(pemOf(good).replace('CERTIFICATE REQUEST', 'CERTIFICATE'));
    assertBadCsr(`${pemOf(good)}${pemOf(good)}`);
    assertBadCsr(pemOf(Buffer.alloc(17 * 1024, 0x30)));
    assertBadCsr(pemOf(Buffer.alloc(0)));
  });
});
