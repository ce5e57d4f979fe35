import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { z } from 'zod';
import { TrellisError } from '../../proto/errors.js';
import { writeFileAtomic } from '../config/atomic-file.js';
import { ConfigCache } from '../config/config-cache.js';
import type { MeshConfig } from '../config/mesh-config.js';
import type { Credentials, CredentialsInit } from './credentials.js';

/** The saved identity cannot be used: unreadable, not JSON, or not of the expected shape. */
export const IDENTITY_CORRUPT = 'TRELLIS_ERR_IDENTITY_CORRUPT';

const identitySchema = z.object({
  trustDomain: z.string().min(1),
  service: z.string().min(1),
  gateway: z.object({ zone: z.string().min(1), name: z.string().min(1) }).optional(),
  sidecarId: z.string().min(1),
  certPem: z.string().includes('-----BEGIN CERTIFICATE-----'),
  caPems: z.array(z.string().includes('-----BEGIN CERTIFICATE-----')).min(1),
  expiresAt: z.number().int().positive(),
});

/**
 * What a sidecar (or gateway) keeps in its data directory so that it restarts without the
 * control plane: its identity (key mode 0600, certificate, trust bundle) and the last mesh
 * configuration it applied (see {@link ConfigCache}).
 */
export class SidecarStateDir {
  /** Saves one after the other: two renewals in a row must not interleave their files. */
  #saving: Promise<void> = Promise.resolve();

  constructor(readonly dir: string) {}

  get configPath(): string {
    return join(this.dir, 'config.json');
  }

  /**
   * The saved identity, or `undefined` when there is none.
   * @throws TrellisError `TRELLIS_ERR_IDENTITY_CORRUPT` when the files are there but unusable.
   */
  async loadCredentials(): Promise<CredentialsInit | undefined> {
    let raw: string;
    try {
      raw = await readFile(join(this.dir, 'identity.json'), 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new TrellisError(IDENTITY_CORRUPT, `cannot read the saved identity: ${(error as Error).message}`, { cause: error });
    }
    let identity: z.infer<typeof identitySchema>;
    let privateKeyPem: string;
    try {
      identity = identitySchema.parse(JSON.parse(raw));
      privateKeyPem = await readFile(join(this.dir, 'sidecar.key'), 'utf8');
    } catch (error) {
      throw new TrellisError(IDENTITY_CORRUPT, `the saved identity in ${this.dir} is unusable: ${(error as Error).message}`, { cause: error });
    }
    if (!privateKeyPem.includes('PRIVATE KEY-----')) throw new TrellisError(IDENTITY_CORRUPT, `${join(this.dir, 'sidecar.key')} holds no private key`);
    return { ...identity, privateKeyPem };
  }

  saveCredentials(credentials: CredentialsInit): Promise<void> {
    const save = async (): Promise<void> => {
      await mkdir(this.dir, { recursive: true, mode: 0o700 });
      const { privateKeyPem, ...identity } = credentials;
      await writeFileAtomic(join(this.dir, 'sidecar.key'), privateKeyPem, 0o600);
      await writeFileAtomic(join(this.dir, 'identity.json'), `${JSON.stringify(identity, null, 2)}\n`, 0o644);
    };
    const saving = this.#saving.catch(() => undefined).then(save);
    this.#saving = saving;
    return saving;
  }
}

/**
 * The saved identity if it can be used, else `undefined` (reported, so that the operator
 * knows why the sidecar asks for a join token).
 */
export async function loadUsableCredentials(stateDir: SidecarStateDir | undefined, logger: Logger): Promise<CredentialsInit | undefined> {
  try {
    return await stateDir?.loadCredentials();
  } catch (error) {
    logger.error({ code: (error as TrellisError).code, err: (error as Error).message }, 'ignoring the saved identity');
    return undefined;
  }
}

/** The state directory at work: the version the sidecar started from, and the cache to close. */
export interface KeptState {
  /** The config version read from the cache at start, if it held a usable one. */
  readonly cachedVersion: number | undefined;
  /** Whether the config is still the cached one: no version from the control plane yet. */
  readonly servingFromCache: boolean;
  /** Writes what is pending and stops following changes. */
  close(): Promise<void>;
}

/**
 * Static stability: starts `config` from the directory's cached config (if any and valid;
 * a corrupt cache is reported and ignored), then keeps the cache and the saved certificate up
 * to date as new versions and renewals arrive.
 */
export async function keepStateIn(stateDir: SidecarStateDir, config: MeshConfig, credentials: Credentials, logger: Logger): Promise<KeptState> {
  const cache = new ConfigCache({ path: stateDir.configPath, source: config, logger });
  let cachedVersion: number | undefined;
  try {
    const cached = await cache.load();
    if (cached !== undefined) {
      config.applySnapshot(cached.version, cached.entries);
      cachedVersion = cached.version;
      logger.info({ configVersion: cached.version, savedAt: new Date(cached.savedAt).toISOString() }, 'serving from the cached config until the control plane answers');
    }
  } catch (error) {
    logger.error({ code: (error as TrellisError).code, err: (error as Error).message }, 'ignoring the cached config; waiting for the control plane');
  }
  let servingFromCache = cachedVersion !== undefined;
  // After the cached snapshot: writing back what was just read would be wasted.
  const onVersion = (version: number): void => {
    if (servingFromCache) logger.info({ configVersion: version, cachedVersion }, 'caught up with the control plane');
    servingFromCache = false;
    cache.changed();
  };
  config.on('version', onVersion);
  const onCredentials = (): void => {
    stateDir.saveCredentials(credentials.current).catch((error: Error) => logger.warn({ err: error.message }, 'cannot save the renewed certificate'));
  };
  credentials.on('change', onCredentials);
  return {
    cachedVersion,
    get servingFromCache() {
      return servingFromCache;
    },
    close: async () => {
      config.off('version', onVersion);
      credentials.off('change', onCredentials);
      await cache.close();
    },
  };
}
