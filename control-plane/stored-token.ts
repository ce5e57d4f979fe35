/**
 * How a join or gateway token is kept in the store: what it binds to, the SHA-256 of its
 * secret (never the secret), and its lifecycle; read back leniently, since records outlive the
 * code that wrote them.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { TokenInfo } from '../proto/tokens.js';
import type { StoreValue } from './store/store.js';

/** What a join or gateway token binds to. */
export type TokenBinding = { kind: 'service'; service: string } | { kind: 'gateway'; zone: string; gateway: string };

/** A stored join token: what it binds to, the hash of its secret, and its lifecycle. */
export type StoredJoinToken = TokenBinding & {
  secretSha256: string;
  expiresAt: number;
  /** Absent on records written before it was kept. */
  createdAt?: number;
  once: boolean;
  usedAt?: number;
  revokedAt?: number;
};

export function isRecord(value: StoreValue | undefined): value is { [key: string]: StoreValue } {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The record as stored: optional fields left out rather than stored as undefined (not JSON). */
export function toStoreValue(stored: StoredJoinToken): StoreValue {
  return JSON.parse(JSON.stringify(stored)) as StoreValue;
}

/**
 * Reads a stored record. Records written before gateway tokens existed have no kind and are
 * service tokens; records written before the lifecycle was kept are reusable and have no
 * creation time.
 */
export function asStoredJoinToken(value: StoreValue | undefined): StoredJoinToken | undefined {
  if (!isRecord(value)) return undefined;
  const { kind = 'service', secretSha256, service, zone, gateway, expiresAt, createdAt, once = false, usedAt, revokedAt } = value;
  if (typeof secretSha256 !== 'string' || typeof expiresAt !== 'number' || typeof once !== 'boolean') return undefined;
  const lifecycle = {
    secretSha256,
    expiresAt,
    once,
    ...(typeof createdAt === 'number' ? { createdAt } : {}),
    ...(typeof usedAt === 'number' ? { usedAt } : {}),
    ...(typeof revokedAt === 'number' ? { revokedAt } : {}),
  };
  if (kind === 'service' && typeof service === 'string') return { kind, service, ...lifecycle };
  if (kind === 'gateway' && typeof zone === 'string' && typeof gateway === 'string') return { kind, zone, gateway, ...lifecycle };
  return undefined;
}

/** What the admin API shows of a stored token: everything but the hash. */
export function tokenInfo(id: string, stored: StoredJoinToken): TokenInfo {
  const { secretSha256: _hash, ...shown } = stored;
  return { id, ...shown };
}

export function sha256Hex(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

/** Compares digests in constant time, so response timing leaks nothing about the secret. */
export function secretMatches(secret: string, storedSha256Hex: string): boolean {
  const presented = createHash('sha256').update(secret, 'utf8').digest();
  const stored = Buffer.from(storedSha256Hex, 'hex');
  return stored.length === presented.length && timingSafeEqual(presented, stored);
}
