/**
 * The mesh's certificate authority: a self-signed RSA root that signs every leaf, created on
 * first start and reused afterwards so that its fingerprint, which every token carries, stays
 * the same. While it rotates (see ca-rotation.ts) it holds a second root. Where its state lives
 * is behind {@link CaPersistence}: the data directory with the file store (ca-files.ts), the
 * shared store with replicas (ca-store.ts), where other replicas may change it at any time.
 */
import { X509Certificate, createPrivateKey, generateKeyPair, randomBytes, sign } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { isDeepStrictEqual, promisify } from 'node:util';
import forge from 'node-forge';
import type { Logger } from 'pino';
import type { CaPhase, RootLineage } from '../proto/control.js';
import { ControlErrorCode } from '../proto/control.js';
import { DataDirCaPersistence } from './ca-files.js';
import { KEY_STAND_IN, signLeaf, subjectKeyIdentifier } from './leaf-signing.js';
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

/**
 * The public key a leaf certifies: its SubjectPublicKeyInfo DER as it came (re-exporting a
 * KeyObject through OpenSSL 3's encoders costs ~0.4 ms a join), and its type.
 */
export interface LeafKey {
  spki: Buffer;
  type: string | undefined;
}

/** `key` as a {@link LeafKey}. */
export function leafKeyOf(key: KeyObject): LeafKey {
  return { spki: key.export({ type: 'spki', format: 'der' }), type: key.asymmetricKeyType };
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

/** What a {@link CaPersistence} tells of the changes that other writers (replicas) make. */
export interface CaPersistenceListener {
  /** Another writer saved `state`; it is now the state a {@link CaPersistence.save} replaces. */
  onState(state: CaState): void;
  /** The other writers' ledgers changed: here are their leaves, the latest per holder. */
  onPeerLeaves(leaves: LeafRecord[]): void;
}

/**
 * Where the CA keeps its state and its leaf ledger. Several writers may share one (replicas
 * on one store): a save replaces only the state its writer last saw, and each writer keeps a
 * ledger of its own that the others read. Both implementations pass one suite
 * (test/control-plane/ca-persistence-suite.ts).
 */
export interface CaPersistence {
  /**
   * The saved state, or undefined when there is none yet. Checks that every key matches its
   * certificate and that each certificate is a CA.
   * @throws DataDirError naming what is missing, unreadable or corrupt (data directory);
   *   StoreError or EncryptionKeyError (store).
   */
  load(): Promise<CaState | undefined>;
  /**
   * Saves `state` in place of the state last loaded, saved or told of, so that a crash at any
   * moment leaves the old state or the new one. Resolves false, writing nothing, when another
   * writer saved first (then load again): two writers never both make the same step.
   */
  save(state: CaState): Promise<boolean>;
  /** Every writer's ledger, this one's included: the latest leaf per holder. */
  loadLeaves(): Promise<LeafRecord[]>;
  /** Replaces this writer's ledger. */
  saveLeaves(leaves: readonly LeafRecord[]): Promise<void>;
  /** Tells `listener` of what other writers save from now on, until {@link close}. */
  watch(listener: CaPersistenceListener): Promise<void>;
  /** Stops watching. */
  close(): Promise<void>;
}

/** The latest leaf of every holder among `ledgers` (by issue time, then expiry). */
export function latestLeaves(...ledgers: Iterable<LeafRecord>[]): LeafRecord[] {
  const latest = new Map<string, LeafRecord>();
  for (const ledger of ledgers) {
    for (const leaf of ledger) {
      const known = latest.get(leaf.id);
      if (known === undefined || leaf.issuedAt > known.issuedAt || (leaf.issuedAt === known.issuedAt && leaf.expiresAt > known.expiresAt)) latest.set(leaf.id, leaf);
    }
  }
  return [...latest.values()];
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
  /** The latest leaves in the other writers' ledgers (other replicas'). */
  #peerLeaves = new Map<string, LeafRecord>();
  readonly #changeListeners: Array<() => void> = [];
  /** The state being saved: its own echo from a shared store is no change. */
  #saving: CaState | undefined;
  /** A state another writer saved while this one's save was under way: necessarily a later one. */
  #overtakenBy: CaState | undefined;
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
    const ca = (await CertificateAuthority.#loadExisting(init)) ?? (await CertificateAuthority.#create(init));
    for (const leaf of await init.persistence.loadLeaves()) ca.#leaves.set(leaf.id, leaf);
    await init.persistence.watch({ onState: (state) => ca.#adopt(state), onPeerLeaves: (leaves) => ca.#adoptPeerLeaves(leaves) });
    return ca;
  }

  static async #loadExisting(init: { persistence: CaPersistence; trustDomain: string; logger: Logger; now: () => number }): Promise<CertificateAuthority | undefined> {
    const loaded = await init.persistence.load();
    if (loaded === undefined) return undefined;
    const trustDomain = trustDomainOf(loaded.signer.certPem);
    if (trustDomain !== init.trustDomain) {
      init.logger.warn({ trustDomain, requested: init.trustDomain }, 'keeping the trust domain of the existing CA');
    }
    const ca = new CertificateAuthority(trustDomain, loaded, init);
    init.logger.info({ fingerprint: ca.fingerprint, phase: ca.phase }, 'loaded CA');
    return ca;
  }

  static async #create(init: { persistence: CaPersistence; trustDomain: string; logger: Logger; now: () => number }): Promise<CertificateAuthority> {
    const state: CaState = { signer: await createRoot(init.trustDomain, init.now()), lineage: [] };
    if (!(await init.persistence.save(state))) {
      // Another replica created its CA first: serve that one.
      const theirs = await CertificateAuthority.#loadExisting(init);
      if (theirs === undefined) throw new Error('the CA state changed in the store but cannot be read back');
      return theirs;
    }
    const ca = new CertificateAuthority(init.trustDomain, state, init);
    init.logger.info({ fingerprint: ca.fingerprint }, 'created CA');
    return ca;
  }

  /** Called after another writer (replica) changed the roots or the phase, once this CA follows. */
  onChange(listener: () => void): void {
    this.#changeListeners.push(listener);
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
    if (this.phase !== 'stable') throw rotationInProgress(this.phase);
    const crossPem = crossSign(next, this.#signer, now);
    const saved = await this.#save({
      ...this.#state,
      next,
      lineage: [...this.#state.lineage, { rootPem: this.#state.signer.certPem, crossPem }].slice(-MAX_LINEAGE_ENTRIES),
      rotation: { startedAt: now },
    });
    // Another replica started one at the same moment, or changed the CA: that one stands.
    if (!saved) throw rotationInProgress(this.phase === 'stable' ? 'distributing' : this.phase);
    this.#logger.info({ next: certificateFingerprint(next.certPem) }, 'CA rotation: next root added to the trust bundle');
  }

  /**
   * Rotation, step 2: the next root signs from now on; the old one stays trusted, retiring.
   * Resolves false when another replica changed the CA first (this CA then follows theirs).
   */
  async promoteNextRoot(): Promise<boolean> {
    const { next, signer } = this.#state;
    if (next === undefined) throw new Error('no next root to promote');
    const { next: _promoted, ...rest } = this.#state;
    if (!(await this.#save({ ...rest, signer: next, retiring: { certPem: signer.certPem } }))) return false;
    this.#logger.info({ signer: this.fingerprint }, 'CA rotation: the new root signs');
    return true;
  }

  /** Rotation, step 3: drops the retiring root from the bundle. Resolves false as {@link promoteNextRoot} does. */
  async retireOldRoot(): Promise<boolean> {
    const { retiring, ...rest } = this.#state;
    if (retiring === undefined) throw new Error('no retiring root');
    if (!(await this.#save({ ...rest, rotation: { startedAt: rest.rotation?.startedAt ?? this.#now(), completedAt: this.#now() } }))) return false;
    this.#logger.info({ retired: certificateFingerprint(retiring.certPem) }, 'CA rotation complete: old root retired');
    return true;
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
    const known = [this.#leaves.get(id), this.#peerLeaves.get(id)];
    if (known.some((record) => record !== undefined && record.expiresAt >= expiresAt)) return;
    const rootFingerprint = this.issuerOf(leaf);
    if (rootFingerprint === undefined) return;
    this.#record({ id, rootFingerprint, issuedAt: Date.parse(leaf.validFrom) + CLOCK_SKEW_ALLOWANCE_MS, expiresAt });
  }

  /** The latest unexpired leaf of every holder, whichever replica issued or saw it. */
  liveLeaves(): LeafRecord[] {
    const now = this.#now();
    return latestLeaves(this.#leaves.values(), this.#peerLeaves.values()).filter((leaf) => leaf.expiresAt > now);
  }

  /**
   * Issues a leaf for `key` (RSA, or EC P-256) with the signing root, valid for `ttlMs`
   * (never past the root's own expiry).
   */
  issue(key: LeafKey, subject: LeafSubject, ttlMs: number): IssuedCertificate {
    const now = this.#now();
    const signer = this.#signer;
    const notAfterMs = Math.min(now + ttlMs, signer.cert.validity.notAfter.getTime());
    const { spki } = key;
    const cert = forge.pki.createCertificate();
    // node-forge encodes RSA keys only: it builds the TBSCertificate around a stand-in, and the
    // leaf's real SubjectPublicKeyInfo replaces it before signing (signLeaf).
    cert.publicKey = KEY_STAND_IN;
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
    // An EC key signs; only an RSA key could also encipher (TLS 1.2's RSA key exchange).
    const keyEncipherment = key.type === 'rsa';
    cert.setExtensions([
      { name: 'basicConstraints', cA: false, critical: true },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment, critical: true },
      { name: 'extKeyUsage', ...subject.extKeyUsage },
      { name: 'subjectAltName', altNames },
      { name: 'subjectKeyIdentifier', value: forge.asn1.create(forge.asn1.Class.UNIVERSAL, forge.asn1.Type.OCTETSTRING, false, subjectKeyIdentifier(spki)) },
      { name: 'authorityKeyIdentifier', keyIdentifier: signer.authorityKeyId },
    ]);
    const certPem = signLeaf(cert, spki, signer.key);
    this.#record({ id: subject.commonName, rootFingerprint: signer.fingerprint, issuedAt: now, expiresAt: notAfterMs });
    return { certPem, expiresAt: notAfterMs };
  }

  /** Writes the leaf ledger now. */
  async flush(): Promise<void> {
    clearTimeout(this.#ledgerTimer);
    this.#ledgerTimer = undefined;
    await this.#writeLedger();
  }

  /** Writes the ledger, then stops following other writers. */
  async close(): Promise<void> {
    await this.flush();
    await this.#persistence.close();
  }

  /** Resolves false, keeping (or taking) the state another writer saved first. */
  async #save(state: CaState): Promise<boolean> {
    this.#saving = state;
    this.#overtakenBy = undefined;
    let saved: boolean;
    try {
      saved = await this.#persistence.save(state);
    } finally {
      this.#saving = undefined;
    }
    if (!saved) {
      const theirs = await this.#persistence.load();
      if (theirs !== undefined) this.#adopt(theirs);
      return false;
    }
    // Saved, but another writer's later step arrived first: keep theirs, not this one.
    if (this.#overtakenBy === undefined) this.#use(state);
    this.#overtakenBy = undefined;
    return true;
  }

  #use(state: CaState): void {
    this.#state = state;
    this.#signer = state.signer.certPem === this.#signer.material.certPem ? this.#signer : new SigningRoot(state.signer);
  }

  /** Follows a state another writer saved; listeners hear of it unless it changes nothing. */
  #adopt(state: CaState): void {
    if (isDeepStrictEqual(state, this.#state) || isDeepStrictEqual(state, this.#saving)) return;
    if (this.#saving !== undefined) this.#overtakenBy = state;
    this.#use(state);
    this.#logger.info({ fingerprint: this.fingerprint, phase: this.phase }, 'took the CA state another replica saved');
    for (const listener of this.#changeListeners) listener();
  }

  #adoptPeerLeaves(leaves: readonly LeafRecord[]): void {
    this.#peerLeaves = new Map(leaves.map((leaf) => [leaf.id, leaf]));
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

function randomSerialNumber(): string {
  return serialNumberFrom(randomBytes(16));
}

/**
 * A certificate serial (hex) from random bytes: the first byte is 0x40..0x7f, so the DER
 * INTEGER is positive and minimal as written. node-forge writes the serial's bytes as they are,
 * dropping at most one redundant leading zero; with two (one leaf in ~65,000) OpenSSL refuses
 * the certificate ("illegal padding") and the sidecar holding it cannot open a single link.
 */
export function serialNumberFrom(random: Buffer): string {
  const bytes = Buffer.from(random);
  bytes[0] = 0x40 | ((bytes[0] ?? 0) & 0x3f);
  return bytes.toString('hex');
}
