/**
 * The mesh's certificate authority: a self-signed RSA CA kept in the data directory
 * (`ca.crt` 0644, `ca.key` 0600), created on first start and reused afterwards so that its
 * fingerprint, which every token carries, stays the same.
 */
import { X509Certificate, createPrivateKey, generateKeyPair, randomBytes, sign } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import forge from 'node-forge';
import type { Logger } from 'pino';
import { DataDirError } from './errors.js';
import { readFileIfExists, writeFileAtomic } from './files.js';

export const CA_CERT_FILE_NAME = 'ca.crt';
export const CA_KEY_FILE_NAME = 'ca.key';
const CA_VALIDITY_YEARS = 10;
const RSA_KEY_BITS = 2048;
/** The CA's common name records its trust domain, so a data directory keeps the one it began with. */
const CA_COMMON_NAME_PREFIX = 'Trellis CA ';
/** Leaves start this long in the past, so a peer whose clock runs behind accepts them. */
export const CLOCK_SKEW_ALLOWANCE_MS = 60_000;

const generateKeyPairAsync = promisify(generateKeyPair);

/** What a leaf certificate says about its holder. */
export interface LeafSubject {
  commonName: string;
  uriSans: string[];
  dnsSans?: string[];
  ipSans?: string[];
  /** Server-only for the control plane's listener; both for sidecars, which dial and accept. */
  extKeyUsage: { serverAuth: boolean; clientAuth: boolean };
}

/** An issued leaf. `expiresAt` is in ms since the epoch. */
export interface IssuedCertificate {
  certPem: string;
  expiresAt: number;
}

/** Makes an RSA 2048 key pair off the event loop (node:crypto), as node-forge keys. */
export async function generateRsaKeyPair(): Promise<forge.pki.rsa.KeyPair> {
  const { privateKey } = await generateKeyPairAsync('rsa', {
    modulusLength: RSA_KEY_BITS,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  const forgeKey = forge.pki.privateKeyFromPem(privateKey);
  return { privateKey: forgeKey, publicKey: forge.pki.setRsaPublicKey(forgeKey.n, forgeKey.e) };
}

/** Lowercase hex SHA-256 of a certificate's DER, as carried in tokens. */
export function certificateFingerprint(certPem: string): string {
  return new X509Certificate(certPem).fingerprint256.replaceAll(':', '').toLowerCase();
}

/** Signs leaf certificates with the CA key. Create with {@link CertificateAuthority.loadOrCreate}. */
export class CertificateAuthority {
  /** Lowercase hex SHA-256 of the CA certificate's DER. */
  readonly fingerprint: string;
  private readonly authorityKeyId: string;

  private constructor(
    readonly trustDomain: string,
    readonly certPem: string,
    private readonly cert: forge.pki.Certificate,
    private readonly key: KeyObject,
    private readonly now: () => number,
  ) {
    this.fingerprint = certificateFingerprint(certPem);
    this.authorityKeyId = cert.generateSubjectKeyIdentifier().getBytes();
  }

  /**
   * Loads the CA from `dataDir`, or creates and persists one for `trustDomain` when neither file
   * exists. A loaded CA keeps the trust domain it was created for, whatever `trustDomain` says.
   * @throws DataDirError naming the file that is missing, unreadable, corrupt or mismatched.
   */
  static async loadOrCreate(init: { dataDir: string; trustDomain: string; logger: Logger; now: () => number }): Promise<CertificateAuthority> {
    const certPath = join(init.dataDir, CA_CERT_FILE_NAME);
    const keyPath = join(init.dataDir, CA_KEY_FILE_NAME);
    const [certText, keyText] = [await readFileIfExists(certPath), await readFileIfExists(keyPath)];
    if (certText === undefined && keyText === undefined) {
      const created = await createCa(init.trustDomain, init.now());
      // Key first: a crash between the two writes leaves a key without a certificate, which
      // the next start reports, rather than a certificate nobody can sign with.
      await writeFileAtomic(keyPath, created.keyPem, 0o600);
      await writeFileAtomic(certPath, created.certPem, 0o644);
      const ca = new CertificateAuthority(init.trustDomain, created.certPem, created.cert, createPrivateKey(created.keyPem), init.now);
      init.logger.info({ fingerprint: ca.fingerprint, certPath }, 'created CA');
      return ca;
    }
    if (certText === undefined) throw new DataDirError(certPath, `missing while ${CA_KEY_FILE_NAME} exists`);
    if (keyText === undefined) throw new DataDirError(keyPath, `missing while ${CA_CERT_FILE_NAME} exists`);
    const cert = parseOr(certPath, 'not a PEM certificate', () => forge.pki.certificateFromPem(certText));
    const key = parseOr(keyPath, 'not a PEM RSA private key', () => forge.pki.privateKeyFromPem(keyText));
    const publicKey = cert.publicKey as forge.pki.rsa.PublicKey;
    if (publicKey.n === undefined || publicKey.n.compareTo(key.n) !== 0) {
      throw new DataDirError(keyPath, `does not match the public key of ${CA_CERT_FILE_NAME}`);
    }
    const constraints = cert.getExtension('basicConstraints') as { cA?: boolean } | null;
    if (constraints?.cA !== true) throw new DataDirError(certPath, 'is not a CA certificate');
    const commonNameField = cert.subject.getField('CN') as { value?: unknown } | null;
    const commonName = typeof commonNameField?.value === 'string' ? commonNameField.value : '';
    if (!commonName.startsWith(CA_COMMON_NAME_PREFIX)) {
      throw new DataDirError(certPath, `subject "${commonName}" is not "${CA_COMMON_NAME_PREFIX}<trust domain>"`);
    }
    const trustDomain = commonName.slice(CA_COMMON_NAME_PREFIX.length);
    if (trustDomain !== init.trustDomain) {
      init.logger.warn({ trustDomain, requested: init.trustDomain }, 'keeping the trust domain of the existing CA');
    }
    const keyMode = (await stat(keyPath)).mode & 0o777;
    if ((keyMode & 0o077) !== 0) init.logger.warn({ keyPath, mode: keyMode.toString(8) }, 'CA key is readable by others');
    const ca = new CertificateAuthority(trustDomain, certText, cert, createPrivateKey(keyText), init.now);
    init.logger.info({ fingerprint: ca.fingerprint, certPath }, 'loaded CA');
    return ca;
  }

  /** The trust bundle: every CA certificate a peer should trust. One until CA rotation exists. */
  caPems(): string[] {
    return [this.certPem];
  }

  /** Issues a leaf for `publicKey`, valid for `ttlMs` (never past the CA's own expiry). */
  issue(publicKey: forge.pki.rsa.PublicKey, subject: LeafSubject, ttlMs: number): IssuedCertificate {
    const now = this.now();
    const notAfterMs = Math.min(now + ttlMs, this.cert.validity.notAfter.getTime());
    const cert = forge.pki.createCertificate();
    cert.publicKey = publicKey;
    cert.serialNumber = randomSerialNumber();
    cert.validity.notBefore = new Date(now - CLOCK_SKEW_ALLOWANCE_MS);
    cert.validity.notAfter = new Date(notAfterMs);
    cert.setSubject([{ name: 'commonName', value: subject.commonName }]);
    cert.setIssuer(this.cert.subject.attributes);
    const altNames = [
      ...subject.uriSans.map((value) => ({ type: 6, value })),
      ...(subject.dnsSans ?? []).map((value) => ({ type: 2, value })),
      ...(subject.ipSans ?? []).map((ip) => ({ type: 7, ip })),
    ];
    cert.setExtensions([
      { name: 'basicConstraints', cA: false, critical: true },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
      { name: 'extKeyUsage', ...subject.extKeyUsage },
      { name: 'subjectAltName', altNames },
      { name: 'subjectKeyIdentifier' },
      { name: 'authorityKeyIdentifier', keyIdentifier: this.authorityKeyId },
    ]);
    signWithNativeKey(cert, this.key);
    return { certPem: forge.pki.certificateToPem(cert), expiresAt: notAfterMs };
  }
}

/**
 * Signs `cert` (SHA-256 with RSA). node-forge builds the certificate; node:crypto does the
 * private-key operation, because forge's JavaScript RSA blocks the event loop ~30 ms per
 * signature, which thousands of sidecars joining at once would turn into minutes.
 */
function signWithNativeKey(cert: forge.pki.Certificate, key: KeyObject): void {
  const signer = {
    // forge calls this right after it stored the finished TBSCertificate on `cert`.
    sign: (): string => {
      const tbs = (cert as forge.pki.Certificate & { tbsCertificate?: forge.asn1.Asn1 }).tbsCertificate;
      if (tbs === undefined) throw new Error('node-forge did not expose the TBSCertificate to sign');
      return sign('sha256', Buffer.from(forge.asn1.toDer(tbs).getBytes(), 'binary'), key).toString('binary');
    },
  };
  cert.sign(signer as unknown as forge.pki.rsa.PrivateKey, forge.md.sha256.create());
}

async function createCa(trustDomain: string, nowMs: number): Promise<{ cert: forge.pki.Certificate; certPem: string; keyPem: string }> {
  const keys = await generateRsaKeyPair();
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = randomSerialNumber();
  cert.validity.notBefore = new Date(nowMs - CLOCK_SKEW_ALLOWANCE_MS);
  const notAfter = new Date(nowMs);
  notAfter.setUTCFullYear(notAfter.getUTCFullYear() + CA_VALIDITY_YEARS);
  cert.validity.notAfter = notAfter;
  const subject = [{ name: 'commonName', value: `${CA_COMMON_NAME_PREFIX}${trustDomain}` }];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(keys.privateKey, forge.md.sha256.create());
  return {
    cert,
    certPem: forge.pki.certificateToPem(cert),
    keyPem: forge.pki.privateKeyToPem(keys.privateKey),
  };
}

/** 16 random bytes as hex, top bit clear so that the DER integer stays positive. */
function randomSerialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] ?? 0) & 0x7f;
  return bytes.toString('hex');
}

function parseOr<T>(path: string, what: string, parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    throw new DataDirError(path, `${what}: ${(err as Error).message}`, { cause: err });
  }
}
