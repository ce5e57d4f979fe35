import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { mkdir, readFile, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import { z } from 'zod';
import { TrellisError } from '../../proto/errors.js';
import { writeFileAtomic } from './atomic-file.js';
import { decodeConfigEntries } from './entries.js';
import type { ConfigEntry } from './mesh-config.js';

/** Stable codes of the config cache. */
export const ConfigCacheErrorCode = {
  /** The cache file is not a config this build wrote: not JSON, wrong shape, checksum or entry. */
  CORRUPT: 'TRELLIS_ERR_CONFIG_CACHE_CORRUPT',
  /** The cache file cannot be read or written (permissions, disk, a directory in the way). */
  IO: 'TRELLIS_ERR_CONFIG_CACHE_IO',
} as const;
export type ConfigCacheErrorCode = (typeof ConfigCacheErrorCode)[keyof typeof ConfigCacheErrorCode];

/** The cache's file format; a file of another format is refused and the control plane refills it. */
const CACHE_FORMAT = 1;
/** A cache file larger than this is refused before it is read. */
export const MAX_CONFIG_CACHE_BYTES = 64 * 1024 * 1024;
/** @default 1000 — at most one write per second, however fast versions arrive. */
export const DEFAULT_CACHE_WRITE_INTERVAL_MS = 1000;

const cacheFileSchema = z.object({
  format: z.literal(CACHE_FORMAT),
  version: z.number().int().nonnegative(),
  savedAt: z.number().int().nonnegative(),
  /** sha256 of the version and the entries' JSON: catches a damaged file that still parses. */
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  entries: z.array(z.tuple([z.string().max(1024), z.unknown()])),
});

/** A config read back from the cache, validated entry by entry as a snapshot would be. */
export interface CachedConfig {
  version: number;
  /** When it was written (ms since the epoch). */
  savedAt: number;
  entries: ConfigEntry[];
}

/** What the cache writes: the config as it is when the write happens. */
export interface ConfigSource {
  readonly version: number;
  entries(): readonly ConfigEntry[];
}

export interface ConfigCacheInit {
  /** The cache file. */
  path: string;
  /** Read at each write, so that a burst of versions ends in one write of the latest. */
  source: ConfigSource;
  logger: Logger;
  /** Least time between two writes. @default DEFAULT_CACHE_WRITE_INTERVAL_MS */
  minWriteIntervalMs?: number;
  /** @default Date.now */
  now?: () => number;
}

/**
 * The last applied mesh config on disk, so that a sidecar restarted while the control plane is
 * away serves what it last knew. Every write is atomic (see `writeFileAtomic`); writes are
 * coalesced to at most one per `minWriteIntervalMs`; a file that fails validation is refused
 * with a code, never half-applied. Emits 'written' (version) after each write and
 * 'write-failed' (TrellisError `TRELLIS_ERR_CONFIG_CACHE_IO`) when one fails.
 */
export class ConfigCache extends EventEmitter {
  readonly #init: ConfigCacheInit;
  readonly #minWriteIntervalMs: number;
  readonly #now: () => number;
  #dirty = false;
  #timer: NodeJS.Timeout | undefined;
  #writing: Promise<void> | undefined;
  #lastWriteAt = Number.NEGATIVE_INFINITY;
  #writes = 0;
  #closed = false;

  constructor(init: ConfigCacheInit) {
    super();
    this.#init = init;
    this.#minWriteIntervalMs = init.minWriteIntervalMs ?? DEFAULT_CACHE_WRITE_INTERVAL_MS;
    this.#now = init.now ?? Date.now;
  }

  /** Files written so far (for tests and status). */
  get writes(): number {
    return this.#writes;
  }

  /**
   * Reads the cache. Resolves `undefined` when there is none.
   * @throws TrellisError `TRELLIS_ERR_CONFIG_CACHE_CORRUPT` or `TRELLIS_ERR_CONFIG_CACHE_IO`.
   */
  async load(): Promise<CachedConfig | undefined> {
    const { path } = this.#init;
    let text: string;
    try {
      const { size } = await stat(path);
      if (size > MAX_CONFIG_CACHE_BYTES) throw corrupt(`${path} holds ${size} bytes, more than ${MAX_CONFIG_CACHE_BYTES}`);
      text = await readFile(path, 'utf8');
    } catch (error) {
      if (error instanceof TrellisError) throw error;
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new TrellisError(ConfigCacheErrorCode.IO, `cannot read ${path}: ${(error as Error).message}`, { cause: error });
    }
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (error) {
      throw corrupt(`${path} is not JSON: ${(error as Error).message}`);
    }
    const parsed = cacheFileSchema.safeParse(raw);
    if (!parsed.success) throw corrupt(`${path} is not a config cache of format ${CACHE_FORMAT}: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
    const { version, savedAt, sha256, entries } = parsed.data;
    if (checksum(version, entries) !== sha256) throw corrupt(`${path} does not match its checksum`);
    try {
      return { version, savedAt, entries: decodeConfigEntries(entries) };
    } catch (error) {
      throw corrupt(`${path}: ${(error as Error).message}`);
    }
  }

  /** The source changed: writes it soon, at most once per interval. */
  changed(): void {
    if (this.#closed) return;
    this.#dirty = true;
    if (this.#timer !== undefined || this.#writing !== undefined) return;
    const waitMs = this.#lastWriteAt + this.#minWriteIntervalMs - this.#now();
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.#write();
    }, Math.max(0, waitMs));
  }

  /** Writes what is pending now and stops; later changes are not written. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#writing?.catch(() => undefined);
    if (this.#dirty) await this.#write();
  }

  async #write(): Promise<void> {
    const { path, source, logger } = this.#init;
    this.#dirty = false;
    this.#lastWriteAt = this.#now();
    const version = source.version;
    const entries = source.entries().map((entry): [string, unknown] => [entry.key, entry.value]);
    const content = JSON.stringify({ format: CACHE_FORMAT, version, savedAt: this.#lastWriteAt, sha256: checksum(version, entries), entries });
    this.#writing = (async () => {
      await mkdir(dirname(path), { recursive: true, mode: 0o700 });
      await writeFileAtomic(path, content, 0o600);
    })();
    try {
      await this.#writing;
      this.#writes += 1;
      logger.debug({ configVersion: version, entries: entries.length }, 'config cached');
      this.emit('written', version);
    } catch (error) {
      // The data plane does not depend on the cache: a failed write is reported and retried
      // with the next change.
      const failure = new TrellisError(ConfigCacheErrorCode.IO, `cannot write ${path}: ${(error as Error).message}`, { cause: error });
      logger.warn({ code: failure.code, err: failure.message }, 'cannot cache the mesh config');
      this.emit('write-failed', failure);
    } finally {
      this.#writing = undefined;
    }
    if (this.#dirty && !this.#closed) this.changed();
  }
}

function checksum(version: number, entries: readonly (readonly [string, unknown])[]): string {
  return createHash('sha256').update(`${version}\n${JSON.stringify(entries)}`).digest('hex');
}

function corrupt(message: string): TrellisError {
  return new TrellisError(ConfigCacheErrorCode.CORRUPT, message);
}
