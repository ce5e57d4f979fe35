/**
 * Join, gateway and admin tokens on the control plane's side: issue them, and check presented
 * ones against the SHA-256 hashes of their secrets, which are all the store ever holds. Each
 * stored hash keeps the kind of token it was issued as, so a gateway token's id and secret
 * re-wrapped as a join token (or the reverse) are still refused.
 *
 * A join or gateway token lives until it expires, unless an operator revokes it or, for a
 * single-use token, the first successful join consumes it. Consuming is a compare-and-swap on
 * the token's store revision, so of two joins racing with one token (on one replica or on two
 * sharing a store) exactly one succeeds. Records of expired tokens are pruned.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { ControlErrorCode } from '../proto/control.js';
import { ValidationError } from '../proto/errors.js';
import type { AdminToken, GatewayToken, JoinToken, TokenInfo } from '../proto/tokens.js';
import {
  GATEWAY_TOKEN_PREFIX,
  JOIN_TOKEN_PREFIX,
  WRONG_KIND_TOKEN_CODE,
  encodeAdminToken,
  encodeGatewayToken,
  encodeJoinToken,
  parseAdminToken,
  parseGatewayToken,
  parseJoinToken,
} from '../proto/tokens.js';
import { ApiError, DataDirError } from './errors.js';
import { readFileIfExists, writeFileAtomic } from './files.js';
import type { StoredJoinToken, TokenBinding } from './stored-token.js';
import { asStoredJoinToken, isRecord, secretMatches, sha256Hex, toStoreValue, tokenInfo } from './stored-token.js';
import type { Store } from './store/store.js';

export const ADMIN_TOKEN_FILE_NAME = 'admin.token';
/**
 * Join and gateway tokens share one key space, so that a token id presented as the wrong kind
 * is found, and refused for its kind rather than as unknown.
 */
const JOIN_TOKEN_KEY_PREFIX = 'tokens/join/';
const ADMIN_TOKEN_KEY_PREFIX = 'tokens/admin/';
/**
 * Compare-and-swap attempts when consuming or revoking a token. A lost swap means another
 * write changed the record (a join, a revoke, a prune); every such write makes the token
 * unusable, so the re-check after the first loss refuses, and the bound is never reached in
 * practice.
 */
const MAX_SWAP_ATTEMPTS = 5;

/** A stored join token with the store revision it was read at, for a compare-and-swap. */
interface ReadToken {
  id: string;
  stored: StoredJoinToken;
  modRevision: number;
}

/** Options of a new join or gateway token. */
export interface NewTokenOptions {
  /** The first successful join consumes the token. @default false */
  once?: boolean;
}

/** Why an admin call was refused; the `reason` label of the refusal counter. */
export type AdminRefusalReason = 'missing' | 'malformed' | 'join_token' | 'unknown';

/** An admin call refused for its credentials: `TRELLIS_ERR_UNAUTHORIZED` (401), with the reason to count. */
export class AdminAuthorizationError extends ApiError {
  constructor(
    readonly reason: AdminRefusalReason,
    message: string,
  ) {
    super(ControlErrorCode.UNAUTHORIZED, message, 401);
  }
}

/** Issues and checks tokens. */
export class TokenService {
  readonly #store: Store;
  readonly #authority: { fingerprint: string; trustDomain: string };
  readonly #now: () => number;

  constructor(
    store: Store,
    authority: { fingerprint: string; trustDomain: string },
    now: () => number,
  ) {
    this.#store = store;
    this.#authority = authority;
    this.#now = now;
  }

  /** Issues a join token for `service`, valid for `ttlMs`. */
  async createJoinToken(service: string, ttlMs: number, options: NewTokenOptions = {}): Promise<{ token: string; expiresAt: number }> {
    const createdAt = this.#now();
    const token: JoinToken = { ...this.#newCredentials(), service, expiresAt: createdAt + ttlMs };
    await this.#putJoinToken(token.id, { kind: 'service', service, ...this.#lifecycle(token.secret, createdAt, token.expiresAt, options) });
    return { token: encodeJoinToken(token), expiresAt: token.expiresAt };
  }

  /** Issues a token that lets one gateway, `gateway` of `zone`, join; valid for `ttlMs`. */
  async createGatewayToken(zone: string, gateway: string, ttlMs: number, options: NewTokenOptions = {}): Promise<{ token: string; expiresAt: number }> {
    const createdAt = this.#now();
    const token: GatewayToken = { ...this.#newCredentials(), zone, gateway, expiresAt: createdAt + ttlMs };
    await this.#putJoinToken(token.id, { kind: 'gateway', zone, gateway, ...this.#lifecycle(token.secret, createdAt, token.expiresAt, options) });
    return { token: encodeGatewayToken(token), expiresAt: token.expiresAt };
  }

  /**
   * Checks that `text` is a live join token for `service`, without consuming it.
   * @throws ValidationError `TRELLIS_ERR_BAD_TOKEN` for a malformed token; ApiError
   *   `TRELLIS_ERR_TOKEN_UNKNOWN` (401), `TRELLIS_ERR_TOKEN_REVOKED` (401),
   *   `TRELLIS_ERR_TOKEN_USED` (401), `TRELLIS_ERR_TOKEN_EXPIRED` (401),
   *   `TRELLIS_ERR_TOKEN_WRONG_KIND` (403, a gateway token) or `TRELLIS_ERR_TOKEN_WRONG_SERVICE` (403).
   */
  async verifyJoinToken(text: string, service: string): Promise<JoinToken> {
    return (await this.#checkJoinToken(text, service)).token;
  }

  /**
   * Checks that `text` is a live gateway token for gateway `gateway` of `zone`, without consuming it.
   * @throws ValidationError `TRELLIS_ERR_BAD_TOKEN` for a malformed token; ApiError
   *   `TRELLIS_ERR_TOKEN_UNKNOWN`, `TRELLIS_ERR_TOKEN_REVOKED`, `TRELLIS_ERR_TOKEN_USED`,
   *   `TRELLIS_ERR_TOKEN_EXPIRED` (401), `TRELLIS_ERR_TOKEN_WRONG_KIND` (403, a service join
   *   token) or `TRELLIS_ERR_TOKEN_WRONG_SERVICE` (403, another zone or name).
   */
  async verifyGatewayToken(text: string, zone: string, gateway: string): Promise<GatewayToken> {
    return (await this.#checkGatewayToken(text, zone, gateway)).token;
  }

  /**
   * Joins with a join token: checks it as {@link verifyJoinToken} does, runs `issue` (which
   * signs the certificate), then consumes a single-use token. Only a join whose `issue`
   * succeeded consumes it, and only the first: a racing join that lost the swap gets
   * `TRELLIS_ERR_TOKEN_USED` and its result is dropped.
   */
  async redeemJoinToken<T>(text: string, service: string, issue: (token: JoinToken) => T | Promise<T>): Promise<T> {
    const { token, read } = await this.#checkJoinToken(text, service);
    const result = await issue(token);
    await this.#consume(read, 'service', 'join');
    return result;
  }

  /** Starts a gateway with a gateway token: as {@link redeemJoinToken}, for {@link verifyGatewayToken}. */
  async redeemGatewayToken<T>(text: string, zone: string, gateway: string, issue: (token: GatewayToken) => T | Promise<T>): Promise<T> {
    const { token, read } = await this.#checkGatewayToken(text, zone, gateway);
    const result = await issue(token);
    await this.#consume(read, 'gateway', 'gateway');
    return result;
  }

  /** Every join and gateway token the store holds (until pruned), oldest first. */
  async listTokens(): Promise<TokenInfo[]> {
    const tokens: TokenInfo[] = [];
    for (const [key, value] of await this.#store.list(JOIN_TOKEN_KEY_PREFIX)) {
      const stored = asStoredJoinToken(value);
      if (stored !== undefined) tokens.push(tokenInfo(key.slice(JOIN_TOKEN_KEY_PREFIX.length), stored));
    }
    return tokens.sort((a, b) => (a.createdAt ?? 0) - (b.createdAt ?? 0) || a.id.localeCompare(b.id));
  }

  /**
   * Revokes token `id`: every later join with it is refused with `TRELLIS_ERR_TOKEN_REVOKED`.
   * Revoking a revoked token changes nothing. Certificates already issued with it stay valid.
   * @throws ApiError `TRELLIS_ERR_NOT_FOUND` (404) when no such token is stored.
   */
  async revokeToken(id: string): Promise<TokenInfo> {
    for (let attempt = 0; attempt < MAX_SWAP_ATTEMPTS; attempt++) {
      const read = await this.#readToken(id);
      if (read === undefined) throw new ApiError(ControlErrorCode.NOT_FOUND, `no token ${id} (it may have expired and been pruned)`, 404);
      if (read.stored.revokedAt !== undefined) return tokenInfo(id, read.stored);
      const revoked: StoredJoinToken = { ...read.stored, revokedAt: this.#now() };
      if (await this.#swap(read, revoked)) return tokenInfo(id, revoked);
    }
    throw new ApiError(ControlErrorCode.INTERNAL, `token ${id} kept changing while it was being revoked`, 500);
  }

  /**
   * Deletes the records of tokens that have expired (used and revoked ones too: past expiry
   * they could not join anyway). Safe to run on several replicas at once. Returns how many went.
   */
  async pruneExpired(): Promise<number> {
    const nowMs = this.#now();
    let pruned = 0;
    for (const [key, value] of await this.#store.list(JOIN_TOKEN_KEY_PREFIX)) {
      const stored = asStoredJoinToken(value);
      if (stored !== undefined && stored.expiresAt <= nowMs && (await this.#store.delete(key))) pruned++;
    }
    return pruned;
  }

  /**
   * Makes sure `<dataDir>/admin.token` (0600) holds a valid admin token, issuing a new one when
   * it is missing or was made for another CA. Returns the file's path.
   * @throws DataDirError naming the file when it is unreadable or malformed.
   */
  async ensureAdminToken(dataDir: string, logger: Logger): Promise<string> {
    const path = join(dataDir, ADMIN_TOKEN_FILE_NAME);
    const text = await readFileIfExists(path);
    let token: AdminToken | undefined;
    if (text !== undefined) {
      try {
        token = parseAdminToken(text);
      } catch (err) {
        throw new DataDirError(path, (err as ValidationError).message, { cause: err });
      }
      if (token.caFingerprint !== this.#authority.fingerprint) {
        logger.warn({ path }, 'admin token was made for another CA; issuing a new one');
        token = undefined;
      }
    }
    if (token === undefined) {
      token = this.#newCredentials();
      await writeFileAtomic(path, `${encodeAdminToken(token)}\n`, 0o600);
      logger.info({ path }, 'wrote a new admin token');
    }
    // The file is the source of truth: whoever can read it is an admin anyway, so a store that
    // lost the hash (a fresh state file) learns it again.
    const key = ADMIN_TOKEN_KEY_PREFIX + token.id;
    const secretSha256 = sha256Hex(token.secret);
    const stored = await this.#store.get(key);
    if (!isRecord(stored) || stored.secretSha256 !== secretSha256) await this.#store.put(key, { secretSha256 });
    return path;
  }

  /**
   * Checks an `Authorization` header value: `Bearer <admin token>`.
   * @throws AdminAuthorizationError `TRELLIS_ERR_UNAUTHORIZED` (401), with the reason.
   */
  async verifyAdminAuthorization(header: string | undefined): Promise<void> {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
    if (match?.[1] === undefined) {
      throw new AdminAuthorizationError('missing', 'admin token required: Authorization: Bearer <admin token>');
    }
    if (match[1].startsWith(JOIN_TOKEN_PREFIX) || match[1].startsWith(GATEWAY_TOKEN_PREFIX)) {
      throw new AdminAuthorizationError('join_token', 'a join or gateway token is not an admin token');
    }
    let token: AdminToken;
    try {
      token = parseAdminToken(match[1]);
    } catch (err) {
      throw new AdminAuthorizationError('malformed', (err as ValidationError).message);
    }
    const stored = await this.#store.get(ADMIN_TOKEN_KEY_PREFIX + token.id);
    if (!isRecord(stored) || typeof stored.secretSha256 !== 'string' || !secretMatches(token.secret, stored.secretSha256)) {
      throw new AdminAuthorizationError('unknown', 'admin token is unknown or its secret is wrong');
    }
  }

  async #checkJoinToken(text: string, service: string): Promise<{ token: JoinToken; read: ReadToken }> {
    const token = withKindAsForbidden(() => parseJoinToken(text));
    const read = await this.#liveToken(token.id, token.secret, 'service', 'join');
    const { stored } = read;
    if (stored.kind !== 'service') throw wrongKind('a gateway token cannot join a sidecar');
    if (stored.service !== service) {
      throw new ApiError(ControlErrorCode.TOKEN_WRONG_SERVICE, `token is for service ${stored.service}, not ${service}`, 403);
    }
    return { token: { ...token, service: stored.service, expiresAt: stored.expiresAt }, read };
  }

  async #checkGatewayToken(text: string, zone: string, gateway: string): Promise<{ token: GatewayToken; read: ReadToken }> {
    const token = withKindAsForbidden(() => parseGatewayToken(text));
    const read = await this.#liveToken(token.id, token.secret, 'gateway', 'gateway');
    const { stored } = read;
    if (stored.kind !== 'gateway') throw wrongKind('a service join token cannot start a gateway');
    if (stored.zone !== zone || stored.gateway !== gateway) {
      throw new ApiError(ControlErrorCode.TOKEN_WRONG_SERVICE, `token is for gateway ${stored.zone}/${stored.gateway}, not ${zone}/${gateway}`, 403);
    }
    return { token: { ...token, zone: stored.zone, gateway: stored.gateway, expiresAt: stored.expiresAt }, read };
  }

  /**
   * The stored record of token `id`, once the secret matches and it can still be used. The
   * kind is checked first: a token of the wrong kind would never work, so say that first.
   */
  async #liveToken(id: string, secret: string, wantedKind: StoredJoinToken['kind'], what: string): Promise<ReadToken> {
    const read = await this.#readToken(id);
    if (read === undefined || !secretMatches(secret, read.stored.secretSha256)) {
      throw new ApiError(ControlErrorCode.TOKEN_UNKNOWN, `${what} token ${id} is unknown or its secret is wrong`, 401);
    }
    if (read.stored.kind === wantedKind) this.#refuseUnusable(id, read.stored, what);
    return read;
  }

  /** Refuses a token that was revoked, consumed or has expired, in that order. */
  #refuseUnusable(id: string, stored: StoredJoinToken, what: string): void {
    if (stored.revokedAt !== undefined) {
      throw new ApiError(ControlErrorCode.TOKEN_REVOKED, `${what} token ${id} was revoked at ${new Date(stored.revokedAt).toISOString()}`, 401);
    }
    if (stored.once && stored.usedAt !== undefined) {
      throw new ApiError(ControlErrorCode.TOKEN_USED, `${what} token ${id} was for one use and was used at ${new Date(stored.usedAt).toISOString()}`, 401);
    }
    if (stored.expiresAt <= this.#now()) {
      throw new ApiError(ControlErrorCode.TOKEN_EXPIRED, `${what} token ${id} expired at ${new Date(stored.expiresAt).toISOString()}`, 401);
    }
  }

  /**
   * Marks a single-use token used, if nothing changed it since `read`; after a lost swap,
   * reads it again and refuses with what it is now (used by the winner, revoked, pruned).
   */
  async #consume(read: ReadToken, kind: StoredJoinToken['kind'], what: string): Promise<void> {
    let current: ReadToken | undefined = read;
    for (let attempt = 0; attempt < MAX_SWAP_ATTEMPTS; attempt++) {
      if (current === undefined || current.stored.kind !== kind || current.stored.secretSha256 !== read.stored.secretSha256) {
        throw new ApiError(ControlErrorCode.TOKEN_UNKNOWN, `${what} token ${read.id} is unknown`, 401);
      }
      this.#refuseUnusable(read.id, current.stored, what);
      if (!current.stored.once) return;
      if (await this.#swap(current, { ...current.stored, usedAt: this.#now() })) return;
      current = await this.#readToken(read.id);
    }
    throw new ApiError(ControlErrorCode.TOKEN_USED, `${what} token ${read.id} was used by a concurrent join`, 401);
  }

  /** Writes `next` over the record in `read` only if the record has not changed since. */
  async #swap(read: ReadToken, next: StoredJoinToken): Promise<boolean> {
    const key = JOIN_TOKEN_KEY_PREFIX + read.id;
    const { ok } = await this.#store.transaction([{ type: 'put', key, value: toStoreValue(next) }], { ifRevision: { key, revision: read.modRevision } });
    return ok;
  }

  async #readToken(id: string): Promise<ReadToken | undefined> {
    const { entry } = await this.#store.getEntry(JOIN_TOKEN_KEY_PREFIX + id);
    const stored = asStoredJoinToken(entry?.value);
    return entry === undefined || stored === undefined ? undefined : { id, stored, modRevision: entry.modRevision };
  }

  async #putJoinToken(id: string, stored: StoredJoinToken): Promise<void> {
    await this.#store.put(JOIN_TOKEN_KEY_PREFIX + id, toStoreValue(stored));
  }

  #lifecycle(secret: string, createdAt: number, expiresAt: number, options: NewTokenOptions): Omit<StoredJoinToken, keyof TokenBinding> {
    return { secretSha256: sha256Hex(secret), createdAt, expiresAt, once: options.once ?? false };
  }

  #newCredentials(): AdminToken {
    return {
      id: randomBytes(8).toString('hex'),
      secret: randomBytes(32).toString('base64url'),
      caFingerprint: this.#authority.fingerprint,
      trustDomain: this.#authority.trustDomain,
    };
  }
}

function wrongKind(message: string): ApiError {
  return new ApiError(ControlErrorCode.TOKEN_WRONG_KIND, message, 403);
}

/**
 * Runs a token parser, turning its wrong-kind refusal into the 403 the REST API answers (the
 * parser's ValidationError would answer 400, like a malformed token).
 */
function withKindAsForbidden<T>(parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    if (err instanceof ValidationError && err.code === WRONG_KIND_TOKEN_CODE) throw wrongKind(err.message);
    throw err;
  }
}
