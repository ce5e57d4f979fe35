/**
 * The mesh's certificate authority: a self-signed RSA root that signs every leaf, created on
 * first start and reused afterwards so that its fingerprint, which every token carries, stays
 * the same. While it rotates (see ca-rotation.ts) it holds a second root. Where its state lives
 * is behind {@link CaPersistence}; the data directory is the one implementation today
 * (ca-files.ts).
 */
import { X509Certificate, createPrivateKey, generateKeyPair, randomBytes, sign } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import forge from 'node-forge';
import type { Logger } from 'pino';
import type { CaPhase, RootLineage } from '../proto/control.js';
import { ControlErrorCode } from '../proto/control.js';
import { DataDirCaPersistence } from './ca-files.js';
import { ApiError } from './errors.js';

/** The signing root's files in the data directory, where they always were. */
export { CA_CERT_FILE_NAME, CA_KEY_FILE_NAME } from './ca-files.js';

const CA_VALIDITY_YEARS = 10;
const RSA_KEY_BITS = 2048;
/** The CA's common name records its trust domain, so a data directory keeps the one it began with. */
export const CA_COMMON_NAME_PREFIX = 'Trellis CA ';
/** Leaves start this long in the past, so a peer whose clock runs behind accepts them. */
export const CLOCK_SKEW_ALLOWANCE_MS = 60_000;
/** Replaced roots kept for old pins; a token older than this many rotations no longer finds its root. */
const MAX_LINEAGE_ENTRIES = 64;
/**
 * The leaf ledger is written at most this often: issuing thousands of leaves is one write. A
 * crash loses at most this much of it; a lost leaf of the new root only delays a retirement,
 * and every sidecar that reconnects shows its leaf again (`notePresentedLeaf`).
 */
const LEDGER_WRITE_DELAY_MS = 1000;

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

/** A root certificate with the key that signs with it (PEM). */
export interface CaRootMaterial {
  certPem: string;
  keyPem: string;
}

/** Everything the CA keeps. Only `signer` and `next` hold private keys. */
export interface CaState {
  /** The root that signs leaves now. */
  signer: CaRootMaterial;
  /** Phase `distributing`: the next root, trusted everywhere before it signs anything. */
  next?: CaRootMaterial;
  /** Phase `reissuing`: the replaced root, trusted until no live leaf depends on it. */
  retiring?: { certPem: string };
  /** Every replaced root with its successor cross-signed by it, oldest first. */
  lineage: RootLineage[];
  /** The last rotation, once there was one. */
  rotation?: { startedAt: number; completedAt?: number };
}

/** The latest leaf issued to (or seen presented by) one holder: a sidecar or gateway id, or `control-plane`. */
export interface LeafRecord {
  id: string;
  rootFingerprint: string;
  issuedAt: number;
  expiresAt: number;
}

/**
 * Where the CA keeps its state. The data directory today; the private keys may later move into
 * the store, encrypted, behind this same interface.
 */
export interface CaPersistence {
  /**
   * The saved state, or undefined when there is none yet. Checks that every key matches its
   * certificate and that each certificate is a CA.
   * @throws DataDirError naming what is missing, unreadable or corrupt.
   */
  load(): Promise<CaState | undefined>;
  /** Saves `state` so that a crash at any moment leaves the old state or the new one. */
  save(state: CaState): Promise<void>;
  loadLeaves(): Promise<LeafRecord[]>;
  saveLeaves(leaves: readonly LeafRecord[]): Promise<void>;
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

/** One root the CA can sign with. */
class SigningRoot {
  readonly fingerprint: string;
  readonly cert: forge.pki.Certificate;
  readonly key: KeyObject;
  readonly authorityKeyId: string;

  constructor(readonly material: CaRootMaterial) {
    this.fingerprint = certificateFingerprint(material.certPem);
    this.cert = forge.pki.certificateFromPem(material.certPem);
    this.key = createPrivateKey(material.keyPem);
    this.authorityKeyId = this.cert.generateSubjectKeyIdentifier().getBytes();
  }
}

/** Signs leaf certificates with the current root. Create with {@link CertificateAuthority.open}. */
export class CertificateAuthority {
  readonly trustDomain: string;
  readonly #persistence: CaPersistence;
  readonly #now: () => number;
  readonly #logger: Logger;
  #state: CaState;
  #signer: SigningRoot;
  readonly #leaves = new Map<string, LeafRecord>();
  #ledgerTimer: NodeJS.Timeout | undefined;
  #ledgerWrite: Promise<void> = Promise.resolve();

  private constructor(trustDomain: string, state: CaState, init: { persistence: CaPersistence; now: () => number; logger: Logger }) {
    this.trustDomain = trustDomain;
    this.#state = state;
    this.#signer = new SigningRoot(state.signer);
    this.#persistence = init.persistence;
    this.#now = init.now;
    this.#logger = init.logger;
  }

  /** Opens the CA in `dataDir` (see {@link CertificateAuthority.open}). */
  static loadOrCreate(init: { dataDir: string; trustDomain: string; logger: Logger; now: () => number }): Promise<CertificateAuthority> {
    return CertificateAuthority.open({ ...init, persistence: new DataDirCaPersistence(init.dataDir, init.logger) });
  }

  /**
   * Loads the CA, or creates and saves one for `trustDomain` when there is none. A loaded CA
   * keeps the trust domain it was created for, whatever `trustDomain` says.
   * @throws DataDirError naming what is missing, unreadable, corrupt or mismatched.
   */
  static async open(init: { persistence: CaPersistence; trustDomain: string; logger: Logger; now: () => number }): Promise<CertificateAuthority> {
    const loaded = await init.persistence.load();
    if (loaded === undefined) {
      const state: CaState = { signer: await createRoot(init.trustDomain, init.now()), lineage: [] };
      await init.persistence.save(state);
      const ca = new CertificateAuthority(init.trustDomain, state, init);
      init.logger.info({ fingerprint: ca.fingerprint }, 'created CA');
      return ca;
    }
    const trustDomain = trustDomainOf(loaded.signer.certPem);
    if (trustDomain !== init.trustDomain) {
      init.logger.warn({ trustDomain, requested: init.trustDomain }, 'keeping the trust domain of the existing CA');
    }
    const ca = new CertificateAuthority(trustDomain, loaded, init);
    for (const leaf of await init.persistence.loadLeaves()) ca.#leaves.set(leaf.id, leaf);
    init.logger.info({ fingerprint: ca.fingerprint, phase: ca.phase }, 'loaded CA');
    return ca;
  }

  /** Lowercase hex SHA-256 of the signing root's DER: what new tokens pin. */
  get fingerprint(): string {
    return this.#signer.fingerprint;
  }

  /** The signing root. */
  get certPem(): string {
    return this.#state.signer.certPem;
  }

  get phase(): CaPhase {
    if (this.#state.next !== undefined) return 'distributing';
    if (this.#state.retiring !== undefined) return 'reissuing';
    return 'stable';
  }

  get rotation(): CaState['rotation'] {
    return this.#state.rotation;
  }

  /** The trust bundle: every root a peer should trust now, the signing one first. */
  caPems(): string[] {
    const { signer, next, retiring } = this.#state;
    return [signer.certPem, ...(next === undefined ? [] : [next.certPem]), ...(retiring === undefined ? [] : [retiring.certPem])];
  }

  /** The roots in the bundle with their role. */
  roots(): { fingerprint: string; certPem: string; role: 'signing' | 'next' | 'retiring' }[] {
    const { signer, next, retiring } = this.#state;
    const roots: { fingerprint: string; certPem: string; role: 'signing' | 'next' | 'retiring' }[] = [
      { fingerprint: this.#signer.fingerprint, certPem: signer.certPem, role: 'signing' },
    ];
    if (next !== undefined) roots.push({ fingerprint: certificateFingerprint(next.certPem), certPem: next.certPem, role: 'next' });
    if (retiring !== undefined) roots.push({ fingerprint: certificateFingerprint(retiring.certPem), certPem: retiring.certPem, role: 'retiring' });
    return roots;
  }

  /** Replaced roots with their successors cross-signed, for clients whose token pins an old root. */
  lineage(): readonly RootLineage[] {
    return this.#state.lineage;
  }

  /**
   * Rotation, step 1: makes the next root and adds it to the bundle; the current root keeps
   * signing. The current root cross-signs the new one, so that old pins still lead to it.
   * @throws ApiError `TRELLIS_ERR_CA_ROTATION_IN_PROGRESS` (409) unless the CA is stable.
   */
  async addNextRoot(): Promise<void> {
    if (this.phase !== 'stable') throw rotationInProgress(this.phase);
    const now = this.#now();
    const next = await createRoot(this.trustDomain, now);
    const crossPem = crossSign(next, this.#signer, now);
    await this.#save({
      ...this.#state,
      next,
      lineage: [...this.#state.lineage, { rootPem: this.#state.signer.certPem, crossPem }].slice(-MAX_LINEAGE_ENTRIES),
      rotation: { startedAt: now },
    });
    this.#logger.info({ next: certificateFingerprint(next.certPem) }, 'CA rotation: next root added to the trust bundle');
  }

  /** Rotation, step 2: the next root signs from now on; the old one stays trusted, retiring. */
  async promoteNextRoot(): Promise<void> {
    const { next, signer } = this.#state;
    if (next === undefined) throw new Error('no next root to promote');
    const { next: _promoted, ...rest } = this.#state;
    await this.#save({ ...rest, signer: next, retiring: { certPem: signer.certPem } });
    this.#logger.info({ signer: this.fingerprint }, 'CA rotation: the new root signs');
  }

  /** Rotation, step 3: drops the retiring root from the bundle. */
  async retireOldRoot(): Promise<void> {
    const { retiring, ...rest } = this.#state;
    if (retiring === undefined) throw new Error('no retiring root');
    await this.#save({ ...rest, rotation: { startedAt: rest.rotation?.startedAt ?? this.#now(), completedAt: this.#now() } });
    this.#logger.info({ retired: certificateFingerprint(retiring.certPem) }, 'CA rotation complete: old root retired');
  }

  /** The fingerprint of the bundle root that issued `leaf`, if any. */
  issuerOf(leaf: X509Certificate): string | undefined {
    for (const pem of this.caPems()) {
      const root = new X509Certificate(pem);
      if (leaf.checkIssued(root) && leaf.verify(root.publicKey)) return certificateFingerprint(pem);
    }
    return undefined;
  }

  /**
   * Records a leaf that `id` presented (on its channel), unless a leaf issued to it later is
   * known: leaves issued before the ledger existed still count as depending on their root.
   */
  notePresentedLeaf(id: string, leaf: X509Certificate): void {
    const expiresAt = Date.parse(leaf.validTo);
    const known = this.#leaves.get(id);
    if (known !== undefined && known.expiresAt >= expiresAt) return;
    const rootFingerprint = this.issuerOf(leaf);
    if (rootFingerprint === undefined) return;
    this.#record({ id, rootFingerprint, issuedAt: Date.parse(leaf.validFrom) + CLOCK_SKEW_ALLOWANCE_MS, expiresAt });
  }

  /** The latest unexpired leaf of every holder. */
  liveLeaves(): LeafRecord[] {
    const now = this.#now();
    return [...this.#leaves.values()].filter((leaf) => leaf.expiresAt > now);
  }

  /** Issues a leaf for `publicKey` with the signing root, valid for `ttlMs` (never past the root's own expiry). */
  issue(publicKey: forge.pki.rsa.PublicKey, subject: LeafSubject, ttlMs: number): IssuedCertificate {
    const now = this.#now();
    const signer = this.#signer;
    const notAfterMs = Math.min(now + ttlMs, signer.cert.validity.notAfter.getTime());
    const cert = forge.pki.createCertificate();
    cert.publicKey = publicKey;
    cert.serialNumber = randomSerialNumber();
    cert.validity.notBefore = new Date(now - CLOCK_SKEW_ALLOWANCE_MS);
    cert.validity.notAfter = new Date(notAfterMs);
    cert.setSubject([{ name: 'commonName', value: subject.commonName }]);
    cert.setIssuer(signer.cert.subject.attributes);
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
      { name: 'authorityKeyIdentifier', keyIdentifier: signer.authorityKeyId },
    ]);
    signWithNativeKey(cert, signer.key);
    this.#record({ id: subject.commonName, rootFingerprint: signer.fingerprint, issuedAt: now, expiresAt: notAfterMs });
    return { certPem: forge.pki.certificateToPem(cert), expiresAt: notAfterMs };
  }

  /** Writes the leaf ledger now. */
  async flush(): Promise<void> {
    clearTimeout(this.#ledgerTimer);
    this.#ledgerTimer = undefined;
    await this.#writeLedger();
  }

  async #save(state: CaState): Promise<void> {
    await this.#persistence.save(state);
    this.#state = state;
    this.#signer = state.signer.certPem === this.#signer.material.certPem ? this.#signer : new SigningRoot(state.signer);
  }

  #record(leaf: LeafRecord): void {
    this.#leaves.set(leaf.id, leaf);
    if (this.#ledgerTimer !== undefined) return;
    this.#ledgerTimer = setTimeout(() => {
      this.#ledgerTimer = undefined;
      void this.#writeLedger();
    }, LEDGER_WRITE_DELAY_MS);
    this.#ledgerTimer.unref();
  }

  #writeLedger(): Promise<void> {
    const now = this.#now();
    // Expired leaves depend on nothing: they are dropped as they are written.
    for (const [id, leaf] of this.#leaves) if (leaf.expiresAt <= now) this.#leaves.delete(id);
    const leaves = [...this.#leaves.values()];
    this.#ledgerWrite = this.#ledgerWrite
      .then(() => this.#persistence.saveLeaves(leaves))
      .catch((err: unknown) => this.#logger.error({ err }, 'cannot save the leaf ledger'));
    return this.#ledgerWrite;
  }
}

function rotationInProgress(phase: CaPhase): ApiError {
  return new ApiError(ControlErrorCode.CA_ROTATION_IN_PROGRESS, `a CA rotation is under way (phase ${phase}); wait until "trellis ca status" says complete`, 409);
}

/** The trust domain a root's common name records. @throws Error when it records none */
export function trustDomainOf(certPem: string): string {
  const cert = forge.pki.certificateFromPem(certPem);
  const field = cert.subject.getField('CN') as { value?: unknown } | null;
  const commonName = typeof field?.value === 'string' ? field.value : '';
  if (!commonName.startsWith(CA_COMMON_NAME_PREFIX)) throw new Error(`subject "${commonName}" is not "${CA_COMMON_NAME_PREFIX}<trust domain>"`);
  return commonName.slice(CA_COMMON_NAME_PREFIX.length);
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

/** Fresh objects each time: node-forge writes the computed values into the ones it is given. */
function caExtensions(): object[] {
  return [
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ];
}

async function createRoot(trustDomain: string, nowMs: number): Promise<CaRootMaterial> {
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
  cert.setExtensions(caExtensions());
  cert.sign(keys.privateKey, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem: forge.pki.privateKeyToPem(keys.privateKey) };
}

/** `next`'s key and subject, issued by `by`: proof, under the old root, that the new one succeeds it. */
function crossSign(next: CaRootMaterial, by: SigningRoot, nowMs: number): string {
  const nextCert = forge.pki.certificateFromPem(next.certPem);
  const cert = forge.pki.createCertificate();
  cert.publicKey = nextCert.publicKey;
  cert.serialNumber = randomSerialNumber();
  cert.validity.notBefore = new Date(nowMs - CLOCK_SKEW_ALLOWANCE_MS);
  cert.validity.notAfter = new Date(Math.min(nextCert.validity.notAfter.getTime(), by.cert.validity.notAfter.getTime()));
  cert.setSubject(nextCert.subject.attributes);
  cert.setIssuer(by.cert.subject.attributes);
  cert.setExtensions([...caExtensions(), { name: 'authorityKeyIdentifier', keyIdentifier: by.authorityKeyId }]);
  signWithNativeKey(cert, by.key);
  return forge.pki.certificateToPem(cert);
}

/** 16 random bytes as hex, top bit clear so that the DER integer stays positive. */
function randomSerialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] ?? 0) & 0x7f;
  return bytes.toString('hex');
}
