// Leaf and CA serials: every one a certificate that OpenSSL loads, whatever the random bytes.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { describe, it } from 'node:test';
import forge from 'node-forge';
import { serialNumberFrom } from '../../control-plane/ca.js';

describe('certificate serial numbers', () => {
  const keys = forge.pki.rsa.generateKeyPair(1024);

  /** A self-signed certificate with `serialHex`, as node-forge writes it, parsed by OpenSSL. */
  const loaded = (serialHex: string): X509Certificate => {
    const cert = forge.pki.createCertificate();
    cert.publicKey = keys.publicKey;
    cert.serialNumber = serialHex;
    cert.validity.notBefore = new Date();
    cert.validity.notAfter = new Date(Date.now() + 60_000);
    cert.setSubject([{ name: 'commonName', value: 'serial' }]);
    cert.setIssuer([{ name: 'commonName', value: 'serial' }]);
    cert.sign(keys.privateKey, forge.md.sha256.create());
    return new X509Certificate(forge.pki.certificateToPem(cert));
  };

  it('loads with the random bytes that once made an "illegal padding" certificate', () => {
    const worst = [
      Buffer.alloc(16),
      Buffer.from('00000512' + '00'.repeat(12), 'hex'),
      Buffer.from('80' + '00'.repeat(15), 'hex'),
      Buffer.from('ff'.repeat(16), 'hex'),
      Buffer.from('7f00' + '11'.repeat(14), 'hex'),
    ];
    for (const random of worst) {
      const serial = serialNumberFrom(random);
      assert.equal(serial.length, 32, serial);
      // 16 bytes on the wire: positive and minimal, so OpenSSL prints all of them back.
      assert.equal(loaded(serial).serialNumber.toLowerCase(), serial);
    }
  });

  it('keeps the other 126 bits of randomness', () => {
    const random = Buffer.from('c5' + 'a7'.repeat(15), 'hex');
    assert.equal(serialNumberFrom(random), '45' + 'a7'.repeat(15));
    assert.equal(random.toString('hex'), 'c5' + 'a7'.repeat(15), 'the input is left as it was');
  });
});
