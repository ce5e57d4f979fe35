/**
 * Data-directory files that every replica of a shared store must hold alike: the CA's
 * certificate and private key and the admin token. They travel through the store encrypted
 * ({@link SecretBox}); each replica writes them into its own data directory, where the code
 * that reads them finds them as with the file store. The first replica to start stores its
 * files; every later one takes those.
 */
import { join } from 'node:path';
import type { Logger } from 'pino';
import { readFileIfExists, writeFileAtomic } from './files.js';
import type { SecretBox } from './secret-box.js';
import type { Store, StoreOp } from './store/store.js';

const KEY_PREFIX = 'secrets/files/';

/** A file to share: its name in the data directory and the mode it is written with. */
export interface SharedFile {
  name: string;
  mode: number;
}

/** The shared files of one data directory. */
export class SharedDataFiles {
  readonly #store: Store;
  readonly #box: SecretBox;
  readonly #dataDir: string;
  readonly #files: readonly SharedFile[];
  readonly #logger: Logger;

  constructor(init: { store: Store; box: SecretBox; dataDir: string; files: readonly SharedFile[]; logger: Logger }) {
    this.#store = init.store;
    this.#box = init.box;
    this.#dataDir = init.dataDir;
    this.#files = init.files;
    this.#logger = init.logger;
  }

  /**
   * Writes the store's copy of every shared file into the data directory, replacing what is
   * there. Resolves with whether the store had all of them.
   * @throws EncryptionKeyError when this replica's key does not open them.
   */
  async pull(): Promise<boolean> {
    let found = 0;
    for (const file of this.#files) {
      const storeKey = KEY_PREFIX + file.name;
      const sealed = await this.#store.get(storeKey);
      if (sealed === undefined) continue;
      const contents = this.#box.open(storeKey, sealed);
      const path = join(this.#dataDir, file.name);
      if ((await readFileIfExists(path)) !== contents) {
        await writeFileAtomic(path, contents, file.mode);
        this.#logger.info({ path }, 'took the shared copy of a data-directory file from the store');
      }
      found += 1;
    }
    return found === this.#files.length;
  }

  /**
   * Stores every shared file of the data directory, all or none, unless another replica
   * stored its own first. Resolves with false in that case: pull theirs and start again.
   */
  async push(): Promise<boolean> {
    const ops: StoreOp[] = [];
    for (const file of this.#files) {
      const contents = await readFileIfExists(join(this.#dataDir, file.name));
      if (contents === undefined) throw new Error(`${file.name} is missing from the data directory`);
      const storeKey = KEY_PREFIX + file.name;
      ops.push({ type: 'put', key: storeKey, value: this.#box.seal(storeKey, contents) });
    }
    const first = KEY_PREFIX + (this.#files[0]?.name ?? '');
    const result = await this.#store.transaction(ops, { ifRevision: { key: first, revision: 0 } });
    if (result.ok) this.#logger.info('stored this replica\'s CA and admin token, encrypted, for the other replicas');
    return result.ok;
  }
}
