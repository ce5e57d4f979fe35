import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { decodeConfigEntries } from '../config/entries.js';
import type { MeshConfig } from '../config/mesh-config.js';
import type { Credentials, CredentialsInit } from './credentials.js';

/**
 * What a sidecar keeps in its data directory so that it restarts without the control plane:
 * its identity (key mode 0600) and the last mesh configuration it applied.
 */
export class SidecarStateDir {
  constructor(readonly dir: string) {}

  async loadCredentials(): Promise<CredentialsInit | undefined> {
    let raw: string;
    try {
      raw = await readFile(join(this.dir, 'identity.json'), 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
    const identity = JSON.parse(raw) as Omit<CredentialsInit, 'privateKeyPem'>;
    const privateKeyPem = await readFile(join(this.dir, 'sidecar.key'), 'utf8');
    return { ...identity, privateKeyPem };
  }

  async saveCredentials(credentials: CredentialsInit): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const { privateKeyPem, ...identity } = credentials;
    await atomicWrite(join(this.dir, 'sidecar.key'), privateKeyPem, 0o600);
    await atomicWrite(join(this.dir, 'identity.json'), `${JSON.stringify(identity, null, 2)}\n`, 0o644);
  }

  async loadConfig(): Promise<{ version: number; entries: [string, unknown][] } | undefined> {
    try {
      return JSON.parse(await readFile(join(this.dir, 'config.json'), 'utf8')) as { version: number; entries: [string, unknown][] };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
  }

  async saveConfig(version: number, entries: [string, unknown][]): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await atomicWrite(join(this.dir, 'config.json'), JSON.stringify({ version, entries }), 0o644);
  }
}

/**
 * Static stability: starts `config` from the directory's cached config (if any), then keeps the
 * cache and the saved certificate up to date as new versions and renewals arrive.
 */
export async function keepStateIn(stateDir: SidecarStateDir, config: MeshConfig, credentials: Credentials, logger: Logger): Promise<void> {
  const cached = await stateDir.loadConfig();
  if (cached !== undefined) config.applySnapshot(cached.version, decodeConfigEntries(cached.entries));
  config.on('version', (version: number) => {
    stateDir.saveConfig(version, config.entries().map((entry) => [entry.key, entry.value])).catch((error: Error) => logger.warn({ err: error.message }, 'cannot cache the mesh config'));
  });
  credentials.on('change', () => {
    stateDir.saveCredentials(credentials.current).catch((error: Error) => logger.warn({ err: error.message }, 'cannot save the renewed certificate'));
  });
}

/** Writes to a temporary file and renames it over the target: never a half-written file. */
async function atomicWrite(path: string, content: string, mode: number): Promise<void> {
  const temporary = `${path}.${process.pid}.tmp`;
  await writeFile(temporary, content, { mode });
  await rename(temporary, path);
}
