/**
 * The CA's state in a store that several replicas share (etcd): one entry `ca/state` with
 * every root, the lineage and the phase, the private keys sealed with the {@link SecretBox}
 * (never in plaintext in the store), replaced only by a compare-and-swap on its revision, so
 * that two replicas never both make one rotation step; and one leaf ledger per replica under
 * `ca/leaves/<replica>`, which every replica reads to know every live leaf. Each replica
 * watches both and follows the others' changes.
 *
 * The signing root is also written into the data directory as `ca.crt` and `ca.key`, as with
 * the file store, for tools that read them there. A store without a CA takes the one an
 * earlier release stored (`secrets/files/ca.*`), else the data directory's, else none.
 */
import type { Logger } from 'pino';
import { z } from 'zod';
import { rootLineageSchema } from '../proto/control.js';
import type { CaPersistence, CaPersistenceListener, CaRootMaterial, CaState, LeafRecord } from './ca.js';
import { latestLeaves } from './ca.js';
import { CA_CERT_FILE_NAME, CA_KEY_FILE_NAME, DataDirCaPersistence, checkRoot } from './ca-files.js';
import { StoreError } from './errors.js';
import { readFileIfExists, writeFileAtomic } from './files.js';
import type { SecretBox } from './secret-box.js';
import type { Store, StoreEvent, StoreOp, StoreValue, StoreWatch } from './store/store.js';
import { join } from 'node:path';

const CA_PREFIX = 'ca/';
const STATE_KEY = 'ca/state';
const LEAVES_PREFIX = 'ca/leaves/';
/** Where an earlier release kept the shared CA (shared-data-files.ts). */
const LEGACY_FILES_PREFIX = 'secrets/files/';
/** After a watch error, how long until listing again. */
const REWATCH_DELAY_MS = 1000;

const sealedSchema = z.object({ alg: z.string(), nonce: z.string(), ciphertext: z.string(), tag: z.string() });
const storedRootSchema = z.object({ certPem: z.string().min(1), sealedKey: sealedSchema });
const storedStateSchema = z.object({
  signer: storedRootSchema,
  next: storedRootSchema.optional(),
  retiring: z.object({ certPem: z.string().min(1) }).optional(),
  lineage: z.array(rootLineageSchema),
  rotation: z.object({ startedAt: z.number().int().nonnegative(), completedAt: z.number().int().nonnegative().optional() }).optional(),
});
type StoredRoot = z.infer<typeof storedRootSchema>;
/** A ledger, compact: thousands of leaves fit in one value. Roots by index into `roots`. */
const storedLedgerSchema = z.object({
  roots: z.array(z.string()),
  leaves: z.array(z.tuple([z.string(), z.number().int().nonnegative(), z.number(), z.number()])),
});

/** Options of {@link StoreCaPersistence}. */
export interface StoreCaPersistenceInit {
  store: Store;
  box: SecretBox;
  /** Names this writer's ledger; unique among the replicas running at once. */
  writerId: string;
  /** Where the signing root's copy goes, and where a CA is taken from when the store has none. */
  dataDir: string;
  logger: Logger;
  /** Clock for the ledgers' expiry. @default Date.now */
  now?: () => number;
}

/** {@link CaPersistence} in a shared store. */
export class StoreCaPersistence implements CaPersistence {
  readonly #init: StoreCaPersistenceInit;
  readonly #logger: Logger;
  /** The revision of the state last loaded, saved or watched: what a save replaces. 0: none. */
  #revision = 0;
  /** The store revision of the last listing, which a watch resumes from. */
  #listedAt: number | undefined;
  readonly #ledgers = new Map<string, LeafRecord[]>();
  #watch: StoreWatch | undefined;
  #listener: CaPersistenceListener | undefined;
  #rewatchTimer: NodeJS.Timeout | undefined;
  #closed = false;
  #mirroredCertPem: string | undefined;

  constructor(init: StoreCaPersistenceInit) {
    this.#init = init;
    this.#logger = init.logger.child({ component: 'ca-store' });
  }

  async load(): Promise<CaState | undefined> {
    const { revision, entries } = await this.#init.store.listEntries(CA_PREFIX);
    this.#listedAt = revision;
    this.#ledgers.clear();
    let state: CaState | undefined;
    this.#revision = 0;
    for (const entry of entries) {
      if (entry.key === STATE_KEY) {
        state = this.#decode(entry.value);
        this.#revision = entry.modRevision;
      } else if (entry.key.startsWith(LEAVES_PREFIX)) {
        this.#ledgers.set(entry.key.slice(LEAVES_PREFIX.length), this.#decodeLedger(entry.key, entry.value));
      }
    }
    if (state === undefined) {
      const seed = await this.#seed();
      // Stored at once, so that every replica serves it; a replica that stored first wins.
      if (seed === undefined || (await this.save(seed))) return seed;
      return this.load();
    }
    await this.#mirror(state.signer);
    return state;
  }

  async save(state: CaState): Promise<boolean> {
    const result = await this.#init.store.transaction([{ type: 'put', key: STATE_KEY, value: this.#encode(state) }], { ifRevision: { key: STATE_KEY, revision: this.#revision } });
    if (!result.ok) return false;
    this.#revision = Math.max(this.#revision, result.revision);
    await this.#mirror(state.signer);
    return true;
  }

  async loadLeaves(): Promise<LeafRecord[]> {
    if (this.#listedAt === undefined) await this.load();
    return latestLeaves(...this.#ledgers.values());
  }

  /** Also deletes the ledgers of other writers whose every leaf expired (replicas that are gone). */
  async saveLeaves(leaves: readonly LeafRecord[]): Promise<void> {
    const roots = [...new Set(leaves.map((leaf) => leaf.rootFingerprint))];
    const value = { roots, leaves: leaves.map((leaf) => [leaf.id, roots.indexOf(leaf.rootFingerprint), leaf.issuedAt, leaf.expiresAt]) };
    const now = (this.#init.now ?? Date.now)();
    const spent = [...this.#ledgers]
      .filter(([writer, ledger]) => writer !== this.#init.writerId && ledger.every((leaf) => leaf.expiresAt <= now))
      .map(([writer]): StoreOp => ({ type: 'delete', key: LEAVES_PREFIX + writer }));
    await this.#init.store.transaction([{ type: 'put', key: LEAVES_PREFIX + this.#init.writerId, value }, ...spent]);
  }

  async watch(listener: CaPersistenceListener): Promise<void> {
    this.#listener = listener;
    if (this.#listedAt === undefined) await this.load();
    this.#follow(this.#listedAt ?? 0);
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#rewatchTimer);
    await this.#watch?.close();
  }

  #follow(fromRevision: number): void {
    if (this.#closed) return;
    this.#watch = this.#init.store.watch(CA_PREFIX, fromRevision, {
      onEvents: (events) => this.#onEvents(events),
      onRelist: (err) => {
        this.#logger.warn({ code: err.code }, 'CA watch fell behind the store history; listing again');
        this.#relist();
      },
      onError: (err) => {
        this.#logger.error({ err, code: err.code }, 'CA watch stopped; listing again shortly');
        this.#relistSoon();
      },
    });
  }

  #onEvents(events: readonly StoreEvent[]): void {
    let ledgersChanged = false;
    for (const event of events) {
      try {
        if (event.key === STATE_KEY && event.type === 'put' && event.revision > this.#revision) {
          const state = this.#decode(event.value);
          this.#revision = event.revision;
          this.#listener?.onState(state);
          this.#mirror(state.signer).catch((err: unknown) => this.#logger.error({ err }, 'cannot copy the CA into the data directory'));
        } else if (event.key.startsWith(LEAVES_PREFIX)) {
          const writer = event.key.slice(LEAVES_PREFIX.length);
          if (event.type === 'delete') this.#ledgers.delete(writer);
          else this.#ledgers.set(writer, this.#decodeLedger(event.key, event.value));
          ledgersChanged ||= writer !== this.#init.writerId;
        }
      } catch (err) {
        // A value this replica cannot read (another release, another key) must not stop the others.
        this.#logger.error({ err, key: event.key }, 'ignoring a CA entry that cannot be read');
      }
    }
    if (ledgersChanged) this.#tellPeerLeaves();
  }

  #relist(): void {
    if (this.#closed) return;
    void this.#watch?.close();
    const before = this.#revision;
    this.load()
      .then((state) => {
        if (state !== undefined && this.#revision > before) this.#listener?.onState(state);
        this.#tellPeerLeaves();
        this.#follow(this.#listedAt ?? 0);
      })
      .catch((err: unknown) => {
        this.#logger.error({ err }, 'cannot list the CA state; trying again shortly');
        this.#relistSoon();
      });
  }

  #relistSoon(): void {
    clearTimeout(this.#rewatchTimer);
    this.#rewatchTimer = setTimeout(() => this.#relist(), REWATCH_DELAY_MS);
    this.#rewatchTimer.unref();
  }

  #tellPeerLeaves(): void {
    const others = [...this.#ledgers].filter(([writer]) => writer !== this.#init.writerId).map(([, leaves]) => leaves);
    this.#listener?.onPeerLeaves(latestLeaves(...others));
  }

  /** A store without a CA state: the CA an earlier release stored, else the data directory's. */
  async #seed(): Promise<CaState | undefined> {
    const { store, box, dataDir, logger } = this.#init;
    const [certKey, keyKey] = [LEGACY_FILES_PREFIX + CA_CERT_FILE_NAME, LEGACY_FILES_PREFIX + CA_KEY_FILE_NAME];
    const [sealedCert, sealedKey] = [await store.get(certKey), await store.get(keyKey)];
    if (sealedCert !== undefined && sealedKey !== undefined) {
      const signer = { certPem: box.open(certKey, sealedCert), keyPem: box.open(keyKey, sealedKey) };
      checkStoredRoot(signer);
      this.#logger.info('taking the CA an earlier release shared through the store');
      return { signer, lineage: [] };
    }
    const local = await new DataDirCaPersistence(dataDir, logger).load();
    if (local !== undefined) this.#logger.info('the store holds no CA yet: offering the data directory\'s');
    return local;
  }

  #encode(state: CaState): StoreValue {
    const { signer, next, ...rest } = state;
    return JSON.parse(
      JSON.stringify({ ...rest, signer: this.#sealRoot(signer, 'signer'), ...(next === undefined ? {} : { next: this.#sealRoot(next, 'next') }) }),
    ) as StoreValue;
  }

  #decode(value: StoreValue | undefined): CaState {
    const parsed = storedStateSchema.safeParse(value);
    if (!parsed.success) throw new StoreError(`${STATE_KEY} is not a CA state: ${parsed.error.message}`);
    const { signer, next, ...rest } = parsed.data;
    const state: CaState = { ...rest, signer: this.#openRoot(signer, 'signer'), ...(next === undefined ? {} : { next: this.#openRoot(next, 'next') }) };
    checkStoredRoot(state.signer);
    if (state.next !== undefined) checkStoredRoot(state.next);
    return state;
  }

  #sealRoot(root: CaRootMaterial, role: string): StoredRoot {
    return { certPem: root.certPem, sealedKey: this.#init.box.seal(`${STATE_KEY}/${role}`, root.keyPem) as StoredRoot['sealedKey'] };
  }

  /** @throws EncryptionKeyError when this replica's key file differs from the one that sealed it. */
  #openRoot(root: StoredRoot, role: string): CaRootMaterial {
    return { certPem: root.certPem, keyPem: this.#init.box.open(`${STATE_KEY}/${role}`, root.sealedKey) };
  }

  #decodeLedger(key: string, value: StoreValue | undefined): LeafRecord[] {
    const parsed = storedLedgerSchema.safeParse(value);
    if (!parsed.success) {
      this.#logger.warn({ key }, 'ignoring a leaf ledger that cannot be read');
      return [];
    }
    const { roots, leaves } = parsed.data;
    return leaves.map(([id, root, issuedAt, expiresAt]) => ({ id, rootFingerprint: roots[root] ?? '', issuedAt, expiresAt }));
  }

  /** The signing root into the data directory, key first, when it changed. */
  async #mirror(signer: CaRootMaterial): Promise<void> {
    if (this.#mirroredCertPem === signer.certPem) return;
    const certPath = join(this.#init.dataDir, CA_CERT_FILE_NAME);
    const keyPath = join(this.#init.dataDir, CA_KEY_FILE_NAME);
    if ((await readFileIfExists(certPath)) !== signer.certPem || (await readFileIfExists(keyPath)) !== signer.keyPem) {
      await writeFileAtomic(keyPath, signer.keyPem, 0o600);
      await writeFileAtomic(certPath, signer.certPem, 0o644);
    }
    this.#mirroredCertPem = signer.certPem;
  }
}

/** @throws StoreError unless `root` is a CA certificate of a trust domain with its matching key. */
function checkStoredRoot(root: CaRootMaterial): void {
  try {
    checkRoot(root, STATE_KEY, STATE_KEY);
  } catch (err) {
    throw new StoreError(`${STATE_KEY}: ${(err as Error).message}`, { cause: err });
  }
}
