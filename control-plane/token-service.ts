/**
 * Join, gateway and admin tokens on the control plane's side: issue them, and check presented
 * ones against the SHA-256 hashes of their secrets, which are all the store ever holds. Each
 * stored hash keeps the kind of token it was issued as, so a gateway token's id and secret
 * re-wrapped as a join token (or the reverse) are still refused.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { ControlErrorCode } from '../proto/control.js';
import { ValidationError } from '../proto/errors.js';
import type { AdminToken, GatewayToken, JoinToken } from '../proto/tokens.js';
import {
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
import type { Store, StoreValue } from './store/store.js';

export const ADMIN_TOKEN_FILE_NAME = 'admin.token';
/**
 * Join and gateway tokens share one key space, so that a token id presented as the wrong kind
 * is found, and refused for its kind rather than as unknown.
 */
const JOIN_TOKEN_KEY_PREFIX = 'tokens/join/';
const ADMIN_TOKEN_KEY_PREFIX = 'tokens/admin/';

/** A stored join token: what it binds to, and the hash of its secret. */
type StoredJoinToken =
  | { kind: 'service'; secretSha256: string; service: string; expiresAt: number }
  | { kind: 'gateway'; secretSha256: string; zone: string; gateway: string; expiresAt: number };

/** Issues and checks tokens. Join and gateway tokens are reusable until they expire. */
export class TokenService {
  constructor(
    private readonly store: Store,
    private readonly authority: { fingerprint: string; trustDomain: string },
    private readonly now: () => number,
  ) {}

  /** Issues a join token for `service`, valid for `ttlMs`. */
  async createJoinToken(service: string, ttlMs: number): Promise<{ token: string; expiresAt: number }> {
    const token: JoinToken = { ...this.newCredentials(), service, expiresAt: this.now() + ttlMs };
    await this.putJoinToken(token.id, { kind: 'service', secretSha256: sha256Hex(token.secret), service, expiresAt: token.expiresAt });
    return { token: encodeJoinToken(token), expiresAt: token.expiresAt };
  }

  /** Issues a token that lets one gateway, `gateway` of `zone`, join; valid for `ttlMs`. */
  async createGatewayToken(zone: string, gateway: string, ttlMs: number): Promise<{ token: string; expiresAt: number }> {
    const token: GatewayToken = { ...this.newCredentials(), zone, gateway, expiresAt: this.now() + ttlMs };
    await this.putJoinToken(token.id, { kind: 'gateway', secretSha256: sha256Hex(token.secret), zone, gateway, expiresAt: token.expiresAt });
    return { token: encodeGatewayToken(token), expiresAt: token.expiresAt };
  }

  /**
   * Checks that `text` is a live join token for `service`.
   * @throws ValidationError `TRELLIS_ERR_BAD_TOKEN` for a malformed token; ApiError
   *   `TRELLIS_ERR_TOKEN_UNKNOWN` (401), `TRELLIS_ERR_TOKEN_EXPIRED` (401),
   *   `TRELLIS_ERR_TOKEN_WRONG_KIND` (403, a gateway token) or `TRELLIS_ERR_TOKEN_WRONG_SERVICE` (403).
   */
  async verifyJoinToken(text: string, service: string): Promise<JoinToken> {
    const token = withKindAsForbidden(() => parseJoinToken(text));
    const stored = await this.liveToken(token.id, token.secret, 'service', 'join');
    if (stored.kind !== 'service') throw wrongKind('a gateway token cannot join a sidecar');
    if (stored.service !== service) {
      throw new ApiError(ControlErrorCode.TOKEN_WRONG_SERVICE, `token is for service ${stored.service}, not ${service}`, 403);
    }
    return { ...token, service: stored.service, expiresAt: stored.expiresAt };
  }

  /**
   * Checks that `text` is a live gateway token for gateway `gateway` of `zone`.
   * @throws ValidationError `TRELLIS_ERR_BAD_TOKEN` for a malformed token; ApiError
   *   `TRELLIS_ERR_TOKEN_UNKNOWN` (401), `TRELLIS_ERR_TOKEN_EXPIRED` (401),
   *   `TRELLIS_ERR_TOKEN_WRONG_KIND` (403, a service join token) or
   *   `TRELLIS_ERR_TOKEN_WRONG_SERVICE` (403, another zone or name).
   */
  async verifyGatewayToken(text: string, zone: string, gateway: string): Promise<GatewayToken> {
    const token = withKindAsForbidden(() => parseGatewayToken(text));
    const stored = await this.liveToken(token.id, token.secret, 'gateway', 'gateway');
    if (stored.kind !== 'gateway') throw wrongKind('a service join token cannot start a gateway');
    if (stored.zone !== zone || stored.gateway !== gateway) {
      throw new ApiError(ControlErrorCode.TOKEN_WRONG_SERVICE, `token is for gateway ${stored.zone}/${stored.gateway}, not ${zone}/${gateway}`, 403);
    }
    return { ...token, zone: stored.zone, gateway: stored.gateway, expiresAt: stored.expiresAt };
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
      if (token.caFingerprint !== this.authority.fingerprint) {
        logger.warn({ path }, 'admin token was made for another CA; issuing a new one');
        token = undefined;
      }
    }
    if (token === undefined) {
      token = this.newCredentials();
      await writeFileAtomic(path, `${encodeAdminToken(token)}\n`, 0o600);
      logger.info({ path }, 'wrote a new admin token');
    }
    // The file is the source of truth: whoever can read it is an admin anyway, so a store that
    // lost the hash (a fresh state file) learns it again.
    const key = ADMIN_TOKEN_KEY_PREFIX + token.id;
    const secretSha256 = sha256Hex(token.secret);
    const stored = await this.store.get(key);
    if (!isRecord(stored) || stored.secretSha256 !== secretSha256) await this.store.put(key, { secretSha256 });
    return path;
  }

  /**
   * Checks an `Authorization` header value: `Bearer <admin token>`.
   * @throws ApiError `TRELLIS_ERR_UNAUTHORIZED` (401).
   */
  async verifyAdminAuthorization(header: string | undefined): Promise<void> {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
    if (match?.[1] === undefined) {
      throw new ApiError(ControlErrorCode.UNAUTHORIZED, 'admin token required: Authorization: Bearer <admin token>', 401);
    }
    let token: AdminToken;
    try {
      token = parseAdminToken(match[1]);
    } catch (err) {
      throw new ApiError(ControlErrorCode.UNAUTHORIZED, (err as ValidationError).message, 401);
    }
    const stored = await this.store.get(ADMIN_TOKEN_KEY_PREFIX + token.id);
    if (!isRecord(stored) || typeof stored.secretSha256 !== 'string' || !secretMatches(token.secret, stored.secretSha256)) {
      throw new ApiError(ControlErrorCode.UNAUTHORIZED, 'admin token is unknown or its secret is wrong', 401);
    }
  }

  /**
   * The stored record of token `id`, once the secret matches and it has not expired. The kind
   * is checked before expiry: a token of the wrong kind would never work, so say that first.
   */
  private async liveToken(id: string, secret: string, wantedKind: StoredJoinToken['kind'], what: string): Promise<StoredJoinToken> {
    const stored = asStoredJoinToken(await this.store.get(JOIN_TOKEN_KEY_PREFIX + id));
    if (stored === undefined || !secretMatches(secret, stored.secretSha256)) {
      throw new ApiError(ControlErrorCode.TOKEN_UNKNOWN, `${what} token ${id} is unknown or its secret is wrong`, 401);
    }
    if (stored.kind !== wantedKind) return stored;
    if (stored.expiresAt <= this.now()) {
      const when = new Date(stored.expiresAt).toISOString();
      throw new ApiError(ControlErrorCode.TOKEN_EXPIRED, `${what} token ${id} expired at ${when}`, 401);
    }
    return stored;
  }

  private async putJoinToken(id: string, stored: StoredJoinToken): Promise<void> {
    await this.store.put(JOIN_TOKEN_KEY_PREFIX + id, { ...stored });
  }

  private newCredentials(): AdminToken {
    return {
      id: randomBytes(8).toString('hex'),
      secret: randomBytes(32).toString('base64url'),
      caFingerprint: this.authority.fingerprint,
      trustDomain: this.authority.trustDomain,
    };
  }
}

function sha256Hex(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

/** Compares digests in constant time, so response timing leaks nothing about the secret. */
function secretMatches(secret: string, storedSha256Hex: string): boolean {
  const presented = createHash('sha256').update(secret, 'utf8').digest();
  const stored = Buffer.from(storedSha256Hex, 'hex');
  return stored.length === presented.length && timingSafeEqual(presented, stored);
}

function isRecord(value: StoreValue | undefined): value is { [key: string]: StoreValue } {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Reads a stored record; records written before gateway tokens existed have no kind and are service tokens. */
function asStoredJoinToken(value: StoreValue | undefined): StoredJoinToken | undefined {
  if (!isRecord(value)) return undefined;
  const { kind = 'service', secretSha256, service, zone, gateway, expiresAt } = value;
  if (typeof secretSha256 !== 'string' || typeof expiresAt !== 'number') return undefined;
  if (kind === 'service' && typeof service === 'string') return { kind, secretSha256, service, expiresAt };
  if (kind === 'gateway' && typeof zone === 'string' && typeof gateway === 'string') return { kind, secretSha256, zone, gateway, expiresAt };
  return undefined;
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
