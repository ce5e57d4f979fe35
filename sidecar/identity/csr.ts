/**
 * A PKCS#10 certification request (RFC 2986) for an EC P-256 or RSA key, in DER built here and
 * signed with node:crypto. The CA reads them with control-plane/csr-reader.ts; these few lines
 * keep node-forge's 40-odd modules (2 MB of heap) out of every sidecar.
 */
import { createPrivateKey, createPublicKey, sign } from 'node:crypto';

/** DER tags used below. */
const TAG = {
  integer: 0x02,
  bitString: 0x03,
  null: 0x05,
  objectIdentifier: 0x06,
  utf8String: 0x0c,
  sequence: 0x30,
  set: 0x31,
  /** `[0] IMPLICIT`, constructed: the request's attributes. */
  contextConstructed0: 0xa0,
} as const;

/** 2.5.4.3, id-at-commonName. */
const OID_COMMON_NAME = Buffer.from([0x55, 0x04, 0x03]);
/** 1.2.840.113549.1.1.11, sha256WithRSAEncryption. */
const OID_SHA256_WITH_RSA = Buffer.from([0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b]);
/** 1.2.840.10045.4.3.2, ecdsa-with-SHA256. */
const OID_ECDSA_WITH_SHA256 = Buffer.from([0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02]);

/** One DER element: tag, definite length (short or long form), contents. */
export function derElement(tag: number, contents: Buffer): Buffer {
  const length = contents.length;
  let header: Buffer;
  if (length < 0x80) {
    header = Buffer.from([tag, length]);
  } else {
    const lengthBytes: number[] = [];
    for (let rest = length; rest > 0; rest = Math.floor(rest / 256)) lengthBytes.unshift(rest % 256);
    header = Buffer.from([tag, 0x80 | lengthBytes.length, ...lengthBytes]);
  }
  return Buffer.concat([header, contents]);
}

function sequence(...elements: Buffer[]): Buffer {
  return derElement(TAG.sequence, Buffer.concat(elements));
}

/**
 * A PEM CSR for the key pair of `privateKeyPem` (EC or RSA), signed with it (SHA-256), subject
 * `CN=commonName`, no attributes. The control plane decides the identity in the certificate;
 * the subject here is informational.
 */
export function createCsrPemFor(privateKeyPem: string, commonName: string): string {
  const privateKey = createPrivateKey(privateKeyPem);
  const subjectPublicKeyInfo = createPublicKey(privateKey).export({ type: 'spki', format: 'der' });
  const subject = sequence(
    derElement(TAG.set, sequence(derElement(TAG.objectIdentifier, OID_COMMON_NAME), derElement(TAG.utf8String, Buffer.from(commonName, 'utf8')))),
  );
  const requestInfo = sequence(
    derElement(TAG.integer, Buffer.from([0])), // version 1 (v1 = 0)
    subject,
    subjectPublicKeyInfo,
    derElement(TAG.contextConstructed0, Buffer.alloc(0)),
  );
  // RSASSA-PKCS1-v1_5 for an RSA key, whose AlgorithmIdentifier has NULL parameters; ECDSA's
  // has none (RFC 5758), and its signature is the DER (r, s) that node:crypto writes by default.
  const signature = sign('sha256', requestInfo, privateKey);
  const algorithm =
    privateKey.asymmetricKeyType === 'ec'
      ? sequence(derElement(TAG.objectIdentifier, OID_ECDSA_WITH_SHA256))
      : sequence(derElement(TAG.objectIdentifier, OID_SHA256_WITH_RSA), derElement(TAG.null, Buffer.alloc(0)));
  const request = sequence(
    requestInfo,
    algorithm,
    derElement(TAG.bitString, Buffer.concat([Buffer.from([0]), signature])), // 0 unused bits
  );
  const base64Lines = request.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN CERTIFICATE REQUEST-----\n${base64Lines.join('\n')}\n-----END CERTIFICATE REQUEST-----\n`;
}
