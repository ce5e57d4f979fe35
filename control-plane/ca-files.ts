/**
 * The CA's state in the data directory: the signing root as `ca.crt` (0644) and `ca.key`
 * (0600), as always; a rotation's other root, the lineage of replaced roots and the phase in
 * `ca-rotation.json` (0600: it may hold the next root's key); the leaf ledger in
 * `ca-leaves.json`.
 */
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import forge from 'node-forge';
import type { Logger } from 'pino';
import { z } from 'zod';
import { rootLineageSchema } from '../proto/control.js';
import type { CaPersistence, CaRootMaterial, CaState, LeafRecord } from './ca.js';
import { trustDomainOf } from './ca.js';
import { DataDirError } from './errors.js';
import { readFileIfExists, writeFileAtomic } from './files.js';

export const CA_CERT_FILE_NAME = 'ca.crt';
export const CA_KEY_FILE_NAME = 'ca.key';
export const CA_ROTATION_FILE_NAME = 'ca-rotation.json';
export const CA_LEAVES_FILE_NAME = 'ca-leaves.json';

const rootMaterialSchema = z.object({ certPem: z.string().min(1), keyPem: z.string().min(1) });
const timestampSchema = z.number().int().nonnegative();
const rotationFileSchema = z.object({
  next: rootMaterialSchema.optional(),
  retiring: z.object({ certPem: z.string().min(1) }).optional(),
  lineage: z.array(rootLineageSchema),
  rotation: z.object({ startedAt: timestampSchema, completedAt: timestampSchema.optional() }).optional(),
  /** Written before the signing root's files change: a crash in between is finished on load. */
  promoting: rootMaterialSchema.optional(),
});
type RotationFile = z.infer<typeof rotationFileSchema>;
const leavesFileSchema = z.array(
  z.object({ id: z.string(), rootFingerprint: z.string(), issuedAt: timestampSchema, expiresAt: timestampSchema }),
);

/** {@link CaPersistence} in the control plane's data directory. */
export class DataDirCaPersistence implements CaPersistence {
  readonly #certPath: string;
  readonly #keyPath: string;
  readonly #rotationPath: string;
  readonly #leavesPath: string;
  readonly #logger: Logger;
  /** The signing root as on disk, so that a save rewrites `ca.key` and `ca.crt` only when it changed. */
  #savedSignerPem: string | undefined;

  constructor(dataDir: string, logger: Logger) {
    this.#certPath = join(dataDir, CA_CERT_FILE_NAME);
    this.#keyPath = join(dataDir, CA_KEY_FILE_NAME);
    this.#rotationPath = join(dataDir, CA_ROTATION_FILE_NAME);
    this.#leavesPath = join(dataDir, CA_LEAVES_FILE_NAME);
    this.#logger = logger;
  }

  async load(): Promise<CaState | undefined> {
    const [certText, keyText] = [await readFileIfExists(this.#certPath), await readFileIfExists(this.#keyPath)];
    const rotation = await this.#loadRotation();
    if (certText === undefined && keyText === undefined && rotation === undefined) return undefined;
    if (rotation?.promoting !== undefined) {
      // A crash while the new root took over: finish what was started.
      this.#logger.warn('finishing an interrupted CA root promotion');
      const { promoting, ...rest } = rotation;
      await this.#writeSigner(promoting);
      await writeFileAtomic(this.#rotationPath, `${JSON.stringify(rest)}\n`, 0o600);
      return this.load();
    }
    if (certText === undefined) throw new DataDirError(this.#certPath, `missing while ${keyText === undefined ? CA_ROTATION_FILE_NAME : CA_KEY_FILE_NAME} exists`);
    if (keyText === undefined) throw new DataDirError(this.#keyPath, `missing while ${CA_CERT_FILE_NAME} exists`);
    checkRoot({ certPem: certText, keyPem: keyText }, this.#certPath, this.#keyPath);
    const keyMode = (await stat(this.#keyPath)).mode & 0o777;
    if ((keyMode & 0o077) !== 0) this.#logger.warn({ keyPath: this.#keyPath, mode: keyMode.toString(8) }, 'CA key is readable by others');
    if (rotation?.next !== undefined) checkRoot(rotation.next, this.#rotationPath, this.#rotationPath);
    this.#savedSignerPem = certText;
    return {
      signer: { certPem: certText, keyPem: keyText },
      lineage: rotation?.lineage ?? [],
      ...(rotation?.next === undefined ? {} : { next: rotation.next }),
      ...(rotation?.retiring === undefined ? {} : { retiring: rotation.retiring }),
      ...(rotation?.rotation === undefined ? {} : { rotation: rotation.rotation }),
    };
  }

  /** One writer per data directory: every save applies. */
  async save(state: CaState): Promise<boolean> {
    const { signer, ...rest } = state;
    const hasRotationState = rest.next !== undefined || rest.retiring !== undefined || rest.lineage.length > 0 || rest.rotation !== undefined;
    if (this.#savedSignerPem !== undefined && this.#savedSignerPem !== signer.certPem) {
      await writeFileAtomic(this.#rotationPath, `${JSON.stringify({ ...rest, promoting: signer } satisfies RotationFile)}\n`, 0o600);
    }
    if (this.#savedSignerPem !== signer.certPem) await this.#writeSigner(signer);
    if (hasRotationState) await writeFileAtomic(this.#rotationPath, `${JSON.stringify(rest satisfies RotationFile)}\n`, 0o600);
    return true;
  }

  async loadLeaves(): Promise<LeafRecord[]> {
    const text = await readFileIfExists(this.#leavesPath);
    if (text === undefined) return [];
    try {
      return leavesFileSchema.parse(JSON.parse(text));
    } catch (err) {
      // The ledger only delays a rotation's end; a corrupt one is started afresh.
      this.#logger.warn({ path: this.#leavesPath, err: (err as Error).message }, 'ignoring an unreadable leaf ledger');
      return [];
    }
  }

  async saveLeaves(leaves: readonly LeafRecord[]): Promise<void> {
    await writeFileAtomic(this.#leavesPath, `${JSON.stringify(leaves)}\n`, 0o644);
  }

  /** No other writer shares a data directory: nothing to hear of. */
  watch(): Promise<void> {
    return Promise.resolve();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  /** Key first: a crash between the two writes leaves a mismatch that the next load reports or repairs. */
  async #writeSigner(signer: CaRootMaterial): Promise<void> {
    await writeFileAtomic(this.#keyPath, signer.keyPem, 0o600);
    await writeFileAtomic(this.#certPath, signer.certPem, 0o644);
    this.#savedSignerPem = signer.certPem;
  }

  async #loadRotation(): Promise<RotationFile | undefined> {
    const text = await readFileIfExists(this.#rotationPath);
    if (text === undefined) return undefined;
    try {
      return rotationFileSchema.parse(JSON.parse(text));
    } catch (err) {
      throw new DataDirError(this.#rotationPath, `not a CA rotation state: ${(err as Error).message}`, { cause: err });
    }
  }
}

/** @throws DataDirError unless `root` is a parseable CA certificate of a trust domain with the matching key. */
export function checkRoot(root: CaRootMaterial, certPath: string, keyPath: string): void {
  const cert = parseOr(certPath, 'not a PEM certificate', () => forge.pki.certificateFromPem(root.certPem));
  parseOr(keyPath, 'not a PEM RSA private key', () => forge.pki.privateKeyFromPem(root.keyPem));
  const certKey = createPublicKey(root.certPem).export({ type: 'spki', format: 'der' });
  const ownKey = createPublicKey(createPrivateKey(root.keyPem)).export({ type: 'spki', format: 'der' });
  if (!certKey.equals(ownKey)) throw new DataDirError(keyPath, `does not match the public key of ${certPath === keyPath ? 'its certificate' : CA_CERT_FILE_NAME}`);
  const constraints = cert.getExtension('basicConstraints') as { cA?: boolean } | null;
  if (constraints?.cA !== true) throw new DataDirError(certPath, 'is not a CA certificate');
  parseOr(certPath, 'names no trust domain', () => trustDomainOf(root.certPem));
}

function parseOr<T>(path: string, what: string, parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    if (err instanceof DataDirError) throw err;
    throw new DataDirError(path, `${what}: ${(err as Error).message}`, { cause: err });
  }
}
