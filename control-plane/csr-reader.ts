/**
 * Reads and checks a PKCS#10 certification request (RFC 2986) with node:crypto: the DER walked
 * here, the key and the self-signature checked by OpenSSL. node-forge did this in JavaScript
 * (its RSA verification alone cost ~1–2 ms of the control plane's one thread per join, more
 * than signing the leaf), and only for RSA keys.
 */
import { createPublicKey, verify } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { ControlErrorCode } from '../proto/control.js';
import { ApiError } from './errors.js';

/** Smallest RSA modulus accepted in a CSR. */
export const MIN_RSA_KEY_BITS = 2048;

/** Largest CSR read: an RSA-8192 request with a long subject fits many times over. */
const MAX_CSR_BYTES = 16 * 1024;

const TAG_INTEGER = 0x02;
const TAG_BIT_STRING = 0x03;
const TAG_NULL = 0x05;
const TAG_OID = 0x06;
const TAG_SEQUENCE = 0x30;
/** `[0] IMPLICIT` constructed: the request's attributes. */
const TAG_ATTRIBUTES = 0xa0;

/** The signature algorithms accepted, by their OID's DER contents: the key type each needs, and its digest. */
const SIGNATURE_ALGORITHMS = new Map<string, { keyType: 'rsa' | 'ec'; digest: string }>([
  ['2a864886f70d01010b', { keyType: 'rsa', digest: 'sha256' }], // 1.2.840.113549.1.1.11 sha256WithRSAEncryption
  ['2a864886f70d01010c', { keyType: 'rsa', digest: 'sha384' }], // 1.2.840.113549.1.1.12
  ['2a864886f70d01010d', { keyType: 'rsa', digest: 'sha512' }], // 1.2.840.113549.1.1.13
  ['2a8648ce3d040302', { keyType: 'ec', digest: 'sha256' }], // 1.2.840.10045.4.3.2 ecdsa-with-SHA256
  ['2a8648ce3d040303', { keyType: 'ec', digest: 'sha384' }], // 1.2.840.10045.4.3.3
  ['2a8648ce3d040304', { keyType: 'ec', digest: 'sha512' }], // 1.2.840.10045.4.3.4
]);

/** The EC curves accepted: those every TLS 1.3 peer signs and verifies (RFC 8446 §9.1 asks for P-256). */
const EC_CURVES: ReadonlySet<string> = new Set(['prime256v1', 'secp384r1']);

/** A refused CSR: `TRELLIS_ERR_BAD_CSR` (400), saying what is wrong with it. */
function badCsr(message: string): ApiError {
  return new ApiError(ControlErrorCode.BAD_CSR, message, 400);
}

/** A CSR whose self-signature is valid: its subject's key. */
export interface VerifiedCsr {
  publicKey: KeyObject;
  /** The key's SubjectPublicKeyInfo as the CSR has it: what the leaf carries. */
  spki: Buffer;
  /** `rsa-2048`, `ec-prime256v1` and the like. */
  keyName: string;
}

/** One DER element inside `der`: its tag and where its contents and the whole element lie. */
interface DerElement {
  tag: number;
  start: number;
  contentStart: number;
  end: number;
}

/**
 * The element at `offset`, which must end by `limit`. Definite lengths only, in their shortest
 * form (DER); four length bytes at most, more than any CSR needs.
 * @throws ApiError `TRELLIS_ERR_BAD_CSR` when the bytes are not one well-formed element
 */
function elementAt(der: Buffer, offset: number, limit: number): DerElement {
  if (offset + 2 > limit) throw badCsr('the CSR is truncated');
  const tag = der[offset]!;
  const first = der[offset + 1]!;
  let length = first;
  let contentStart = offset + 2;
  if (first >= 0x80) {
    const count = first & 0x7f;
    if (count === 0 || count > 4) throw badCsr('the CSR has an indefinite or oversized DER length');
    if (contentStart + count > limit) throw badCsr('the CSR is truncated');
    length = 0;
    for (let i = 0; i < count; i += 1) length = length * 256 + der[contentStart + i]!;
    if (length < 0x80 || der[contentStart] === 0) throw badCsr('the CSR has a DER length not in its shortest form');
    contentStart += count;
  }
  const end = contentStart + length;
  if (end > limit) throw badCsr('the CSR is truncated');
  return { tag, start: offset, contentStart, end };
}

/** The elements that fill `parent`'s contents exactly. */
function elementsOf(der: Buffer, parent: DerElement): DerElement[] {
  const found: DerElement[] = [];
  for (let offset = parent.contentStart; offset < parent.end; ) {
    const element = elementAt(der, offset, parent.end);
    found.push(element);
    offset = element.end;
  }
  return found;
}

/** {@link elementsOf}, which must be exactly `tags`. */
function children(der: Buffer, parent: DerElement, tags: number[], what: string): DerElement[] {
  const found = elementsOf(der, parent);
  if (found.length !== tags.length || found.some((element, i) => element.tag !== tags[i])) {
    throw badCsr(`the CSR's ${what} is not what PKCS#10 describes`);
  }
  return found;
}

function derOfPem(pem: string): Buffer {
  const match = /^\s*-----BEGIN (NEW )?CERTIFICATE REQUEST-----\r?\n([A-Za-z0-9+/=\r\n]+)-----END (NEW )?CERTIFICATE REQUEST-----\s*$/.exec(pem);
  if (match === null) throw badCsr('the CSR is not one PEM "CERTIFICATE REQUEST" block');
  const der = Buffer.from(match[2]!.replace(/\s+/g, ''), 'base64');
  if (der.length > MAX_CSR_BYTES) throw badCsr(`the CSR is larger than ${MAX_CSR_BYTES} bytes`);
  return der;
}

/**
 * Parses `csrPem`, checks its self-signature with the key it carries, and that the key is EC
 * P-256 or P-384, or RSA of at least {@link MIN_RSA_KEY_BITS} bits.
 * @throws ApiError `TRELLIS_ERR_BAD_CSR` (400) saying what is wrong with it
 */
export function readCsr(csrPem: string): VerifiedCsr {
  const der = derOfPem(csrPem);
  const request = elementAt(der, 0, der.length);
  if (request.tag !== TAG_SEQUENCE || request.end !== der.length) throw badCsr('the CSR is not one DER SEQUENCE');
  const [info, algorithm, signature] = children(der, request, [TAG_SEQUENCE, TAG_SEQUENCE, TAG_BIT_STRING], 'outer structure');
  const [version, , spki] = children(der, info!, [TAG_INTEGER, TAG_SEQUENCE, TAG_SEQUENCE, TAG_ATTRIBUTES], 'request info');
  if (version!.end - version!.contentStart !== 1 || der[version!.contentStart] !== 0) throw badCsr('the CSR is not PKCS#10 version 1');

  // AlgorithmIdentifier: the OID, then NULL parameters or none (RFC 4055 allows both for RSA;
  // ECDSA's has none, RFC 5758, but a NULL there harms nothing).
  const [oid, ...parameters] = elementsOf(der, algorithm!);
  const nullOrNone = parameters.length === 0 || (parameters.length === 1 && parameters[0]!.tag === TAG_NULL && parameters[0]!.end === parameters[0]!.contentStart);
  if (oid?.tag !== TAG_OID || !nullOrNone) throw badCsr("the CSR's signature algorithm is not what PKCS#10 describes");
  const scheme = SIGNATURE_ALGORITHMS.get(der.subarray(oid.contentStart, oid.end).toString('hex'));
  if (scheme === undefined) throw badCsr('the CSR is not signed with SHA-256, SHA-384 or SHA-512 with RSA or ECDSA');
  if (signature!.end - signature!.contentStart < 2 || der[signature!.contentStart] !== 0) throw badCsr("the CSR's signature is not a whole number of bytes");

  const spkiDer = Buffer.from(der.subarray(spki!.start, spki!.end));
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey({ key: spkiDer, format: 'der', type: 'spki' });
  } catch (err) {
    throw badCsr(`cannot read the CSR's public key: ${(err as Error).message}`);
  }
  const keyName = acceptedKeyName(publicKey);
  if (publicKey.asymmetricKeyType !== scheme.keyType) throw badCsr(`the CSR's key is ${keyName}, but its signature algorithm is for ${scheme.keyType.toUpperCase()} keys`);
  const signed = der.subarray(info!.start, info!.end);
  let valid: boolean;
  try {
    valid = verify(scheme.digest, signed, publicKey, der.subarray(signature!.contentStart + 1, signature!.end));
  } catch (err) {
    throw badCsr(`cannot verify the CSR's signature: ${(err as Error).message}`);
  }
  if (!valid) throw badCsr("the CSR's signature does not match its key");
  return { publicKey, spki: spkiDer, keyName };
}

/** The key's name when it is one the CA certifies. @throws ApiError `TRELLIS_ERR_BAD_CSR` for any other */
function acceptedKeyName(key: KeyObject): string {
  const details = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === 'rsa' && (details.modulusLength ?? 0) >= MIN_RSA_KEY_BITS) return `rsa-${details.modulusLength}`;
  if (key.asymmetricKeyType === 'ec' && EC_CURVES.has(details.namedCurve ?? '')) return `ec-${details.namedCurve}`;
  const name = key.asymmetricKeyType === 'rsa' ? `${details.modulusLength ?? 0}-bit RSA` : key.asymmetricKeyType === 'ec' ? `EC ${details.namedCurve ?? 'on an unnamed curve'}` : (key.asymmetricKeyType ?? 'of an unknown type');
  throw badCsr(`the CSR's key is ${name}; EC P-256 or P-384, or RSA of at least ${MIN_RSA_KEY_BITS} bits, is required`);
}
