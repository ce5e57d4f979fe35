import { ValidationError } from '../../proto/errors.js';

/**
 * What a connection's ring key is made of:
 * - `source-ip`: the caller's address, so every connection of one client host sticks to one
 *   endpoint;
 * - `source-ip-port`: the caller's address and port, which spreads one host's connections;
 * - `fixed`: one key for every connection (all go to one endpoint while its load allows).
 */
export type HashPolicy = { kind: 'source-ip' } | { kind: 'source-ip-port' } | { kind: 'fixed'; key: string };

/** The policy of a service that has none configured. */
export const DEFAULT_HASH_POLICY: HashPolicy = { kind: 'source-ip-port' };

/** Longest key of a `fixed:KEY` policy. */
const MAX_FIXED_KEY_LENGTH = 256;

/** The source of a connection, as the local listener saw it. */
export interface ConnectionSource {
  address: string | undefined;
  port: number | undefined;
}

/** The ring key of a connection from `source` under `policy`. */
export function hashKeyOf(policy: HashPolicy, source: ConnectionSource): string {
  switch (policy.kind) {
    case 'source-ip':
      return source.address ?? '';
    case 'source-ip-port':
      return `${source.address ?? ''}:${source.port ?? ''}`;
    case 'fixed':
      return policy.key;
  }
}

/**
 * Parses `source-ip`, `source-ip-port` or `fixed:KEY`. Throws ValidationError naming `what`
 * (e.g. the flag it came from).
 */
export function parseHashPolicy(text: string, what = 'hash policy'): HashPolicy {
  if (text === 'source-ip' || text === 'source-ip-port') return { kind: text };
  if (text.startsWith('fixed:')) {
    const key = text.slice('fixed:'.length);
    if (key.length === 0 || key.length > MAX_FIXED_KEY_LENGTH) {
      throw new ValidationError(`${what}: the key of fixed:KEY must be 1..${MAX_FIXED_KEY_LENGTH} characters, got "${key}"`, 'TRELLIS_ERR_BAD_HASH_POLICY');
    }
    return { kind: 'fixed', key };
  }
  throw new ValidationError(`${what} must be source-ip, source-ip-port or fixed:KEY, got "${text}"`, 'TRELLIS_ERR_BAD_HASH_POLICY');
}

/** Formats a policy back to its flag form. */
export function formatHashPolicy(policy: HashPolicy): string {
  return policy.kind === 'fixed' ? `fixed:${policy.key}` : policy.kind;
}
