/**
 * Leaf certificates for any key type: node-forge writes the TBSCertificate (it encodes RSA keys
 * only, so around a stand-in key), the leaf's own SubjectPublicKeyInfo replaces the stand-in,
 * and node:crypto signs with the root's key (SHA-256 with RSA).
 */
import { createHash, sign } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import forge from 'node-forge';

/** What node-forge encodes where a leaf's key goes, before {@link signLeaf} puts the key there. */
export const KEY_STAND_IN = forge.pki.setRsaPublicKey(new forge.jsbn.BigInteger('3'), new forge.jsbn.BigInteger('3'));
/** A TBSCertificate's fields in order: version, serial, signature, issuer, validity, subject, key. */
const TBS_SUBJECT_PUBLIC_KEY_INFO = 6;
/** sha256WithRSAEncryption, the only signature the CA's RSA roots make. */
const SHA256_WITH_RSA_OID = '1.2.840.113549.1.1.11';

/** `der` as node-forge's ASN.1, BIT STRINGs kept as bytes (forge would parse into them). */
function asn1OfDer(der: Buffer): forge.asn1.Asn1 {
  // forge's typings omit the options argument that its fromDer takes.
  const fromDer = forge.asn1.fromDer as unknown as (bytes: string, options: { decodeBitStrings: boolean }) => forge.asn1.Asn1;
  return fromDer(der.toString('binary'), { decodeBitStrings: false });
}

/**
 * RFC 5280's method 1: SHA-1 of the subjectPublicKey BIT STRING's bytes (as node-forge computes it
 * for RSA keys), for any key type. Returns forge's binary string.
 */
export function subjectKeyIdentifier(spki: Buffer): string {
  const info = asn1OfDer(spki);
  const bits = (info.value as forge.asn1.Asn1[])[1];
  if (bits === undefined || typeof bits.value !== 'string') throw new Error('SubjectPublicKeyInfo without a key');
  // forge keeps the BIT STRING's leading unused-bits byte in its value.
  return createHash('sha1').update(Buffer.from(bits.value.slice(1), 'binary')).digest().toString('binary');
}

/**
 * The PEM of `cert` with `spki` as its key, signed by `key` (SHA-256 with RSA, in node:crypto).
 * node-forge writes the fields; the signature and the outer Certificate are assembled here,
 * because forge's own signing would encode its stand-in key.
 */
export function signLeaf(cert: forge.pki.Certificate, spki: Buffer, key: KeyObject): string {
  const { asn1 } = forge;
  cert.siginfo.algorithmOid = SHA256_WITH_RSA_OID;
  cert.signatureOid = SHA256_WITH_RSA_OID;
  const tbs = (forge.pki as unknown as { getTBSCertificate(cert: forge.pki.Certificate): forge.asn1.Asn1 }).getTBSCertificate(cert);
  (tbs.value as forge.asn1.Asn1[])[TBS_SUBJECT_PUBLIC_KEY_INFO] = asn1OfDer(spki);
  const tbsDer = Buffer.from(asn1.toDer(tbs).getBytes(), 'binary');
  const signature = sign('sha256', tbsDer, key);
  const algorithm = asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OID, false, asn1.oidToDer(SHA256_WITH_RSA_OID).getBytes()),
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.NULL, false, ''),
  ]);
  const certificate = asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
    tbs,
    algorithm,
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.BITSTRING, false, `\x00${signature.toString('binary')}`),
  ]);
  return forge.pem.encode({ type: 'CERTIFICATE', body: asn1.toDer(certificate).getBytes() });
}
