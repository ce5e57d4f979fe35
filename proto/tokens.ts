/**
 * Join and admin tokens: `<prefix><base64url(JSON)>`. A token carries the CA fingerprint so
 * that whoever holds it can authenticate the control plane on first contact, without
 * trusting whatever certificate the network hands them.
 *
 * Pure: encoding and parsing only. The control plane keeps SHA-256 hashes of the secrets.
 */
import { z } from 'zod';
import { ValidationError } from './errors.js';
import { SERVICE_NAME_PATTERN } from './names.js';

/** Prefix of a join token (version 1). */
export const JOIN_TOKEN_PREFIX = 'trellis-join-v1.';
/** Prefix of a gateway join token (version 1). */
export const GATEWAY_TOKEN_PREFIX = 'trellis-gateway-v1.';
/** Error code when a token of one kind is given where another is needed (gateway for sidecar, or the reverse). */
export const WRONG_KIND_TOKEN_CODE = 'TRELLIS_ERR_TOKEN_WRONG_KIND';
/** Prefix of an admin token (version 1). */
export const ADMIN_TOKEN_PREFIX = 'trellis-admin-v1.';
/** Longest token text accepted, checked before decoding anything. */
export const MAX_TOKEN_CHARS = 4096;
/** Error code of every token parse failure. */
export const BAD_TOKEN_CODE = 'TRELLIS_ERR_BAD_TOKEN';

const base64urlPattern = /^[A-Za-z0-9_-]+$/;

const commonFields = {
  /** Public token id: the control plane looks the secret's hash up by it. */
  id: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'must be 1..64 base64url characters'),
  /** 32 random bytes, base64url (43 characters). */
  secret: z.string().regex(/^[A-Za-z0-9_-]{43}$/, 'must be 32 bytes in base64url'),
  /** Lowercase hex SHA-256 of the CA certificate's DER. */
  caFingerprint: z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex digits'),
  trustDomain: z.string().min(1).max(255),
};

const joinTokenSchema = z.object({
  ...commonFields,
  service: z.string().regex(SERVICE_NAME_PATTERN, 'is not a valid service name'),
  /** Expiry, milliseconds since the epoch. */
  expiresAt: z.number().int().nonnegative(),
});

const gatewayTokenSchema = z.object({
  ...commonFields,
  zone: z.string().regex(SERVICE_NAME_PATTERN, 'is not a valid zone name'),
  gateway: z.string().regex(SERVICE_NAME_PATTERN, 'is not a valid gateway name'),
  /** Expiry, milliseconds since the epoch. */
  expiresAt: z.number().int().nonnegative(),
});

const adminTokenSchema = z.object(commonFields);

/** What a join token says: who may join as which service, until when, and which CA to trust. */
export type JoinToken = z.infer<typeof joinTokenSchema>;
/** What a gateway token says: who may start as gateway `gateway` of `zone`, until when, and which CA to trust. */
export type GatewayToken = z.infer<typeof gatewayTokenSchema>;
/** What an admin token says; it grants every admin API route. */
export type AdminToken = z.infer<typeof adminTokenSchema>;

/** Encodes a join token as `trellis-join-v1.<base64url(JSON)>`. */
export function encodeJoinToken(token: JoinToken): string {
  return encode(JOIN_TOKEN_PREFIX, checked(joinTokenSchema, token, 'join'));
}

/** Encodes a gateway token as `trellis-gateway-v1.<base64url(JSON)>`. */
export function encodeGatewayToken(token: GatewayToken): string {
  return encode(GATEWAY_TOKEN_PREFIX, checked(gatewayTokenSchema, token, 'gateway'));
}

/** Encodes an admin token as `trellis-admin-v1.<base64url(JSON)>`. */
export function encodeAdminToken(token: AdminToken): string {
  return encode(ADMIN_TOKEN_PREFIX, checked(adminTokenSchema, token, 'admin'));
}

/**
 * Parses a join token. Surrounding whitespace (a newline from a file) is ignored.
 * @throws ValidationError with code `TRELLIS_ERR_BAD_TOKEN` naming what is wrong.
 */
export function parseJoinToken(text: string): JoinToken {
  refuseOtherKind(text, GATEWAY_TOKEN_PREFIX, 'a gateway token cannot join a sidecar: use `trellis gateway`');
  return decode(text, JOIN_TOKEN_PREFIX, joinTokenSchema, 'join');
}

/**
 * Parses a gateway token.
 * @throws ValidationError `TRELLIS_ERR_TOKEN_WRONG_KIND` for a service join token,
 *   `TRELLIS_ERR_BAD_TOKEN` naming anything else that is wrong.
 */
export function parseGatewayToken(text: string): GatewayToken {
  refuseOtherKind(text, JOIN_TOKEN_PREFIX, 'a service join token cannot start a gateway: create one with `trellis token create --gateway NAME --zone ZONE`');
  return decode(text, GATEWAY_TOKEN_PREFIX, gatewayTokenSchema, 'gateway');
}

function refuseOtherKind(text: string, otherPrefix: string, message: string): void {
  if (typeof text === 'string' && text.trim().startsWith(otherPrefix)) throw new ValidationError(message, WRONG_KIND_TOKEN_CODE);
}

/**
 * Parses an admin token. Surrounding whitespace is ignored.
 * @throws ValidationError with code `TRELLIS_ERR_BAD_TOKEN` naming what is wrong.
 */
export function parseAdminToken(text: string): AdminToken {
  return decode(text, ADMIN_TOKEN_PREFIX, adminTokenSchema, 'admin');
}

function encode(prefix: string, body: object): string {
  return prefix + Buffer.from(JSON.stringify(body), 'utf8').toString('base64url');
}

function decode<T>(text: string, prefix: string, schema: z.ZodType<T>, kind: string): T {
  if (typeof text !== 'string') badToken(kind, 'not a string');
  const trimmed = text.trim();
  if (trimmed.length > MAX_TOKEN_CHARS) badToken(kind, `longer than ${MAX_TOKEN_CHARS} characters`);
  if (!trimmed.startsWith(prefix)) {
    const seen = (trimmed.split('.')[0] ?? '').slice(0, 32);
    badToken(kind, `wrong prefix: expected "${prefix}", got "${seen}."`);
  }
  const payload = trimmed.slice(prefix.length);
  // Buffer's base64url decoder skips invalid characters silently, so check the alphabet first.
  if (!base64urlPattern.test(payload)) badToken(kind, 'payload is not base64url');
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
  } catch {
    badToken(kind, 'payload is not JSON');
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) badToken(kind, 'payload is not a JSON object');
  return checked(schema, json, kind);
}

/** Validates the token body, naming the first bad field. */
function checked<T>(schema: z.ZodType<T>, body: unknown, kind: string): T {
  const result = schema.safeParse(body);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const field = issue?.path.join('.') || '(payload)';
  const missing = issue?.code === 'invalid_type' && (body as Record<string, unknown>)[field] === undefined;
  return badToken(kind, missing ? `missing field "${field}"` : `field "${field}" ${issue?.message ?? 'is invalid'}`);
}

function badToken(kind: string, why: string): never {
  throw new ValidationError(`bad ${kind} token: ${why}`, BAD_TOKEN_CODE);
}

// ---- what the admin API says about join and gateway tokens ----

/** The public id of a join or gateway token, as `trellis token revoke ID` takes it. */
export const tokenIdSchema = commonFields.id;

/** One join or gateway token as `GET /v1/tokens` lists it: what it binds to and its state, never its secret or hash. */
export const tokenInfoSchema = z.object({
  id: tokenIdSchema,
  kind: z.enum(['service', 'gateway']),
  /** The service a `service` token joins as. */
  service: z.string().regex(SERVICE_NAME_PATTERN).optional(),
  /** The zone and name a `gateway` token starts as. */
  zone: z.string().regex(SERVICE_NAME_PATTERN).optional(),
  gateway: z.string().regex(SERVICE_NAME_PATTERN).optional(),
  /** Milliseconds since the epoch; absent for tokens issued before it was recorded. */
  createdAt: z.number().int().nonnegative().optional(),
  expiresAt: z.number().int().nonnegative(),
  /** Whether the first successful join consumes the token. */
  once: z.boolean(),
  /** When a single-use token was consumed. */
  usedAt: z.number().int().nonnegative().optional(),
  /** When an operator revoked the token. */
  revokedAt: z.number().int().nonnegative().optional(),
});
/** `GET /v1/tokens` answer, oldest first. */
export const tokenListSchema = z.object({ tokens: z.array(tokenInfoSchema).max(100_000) });
/** `POST /v1/tokens/revoke` body. */
export const revokeTokenRequestSchema = z.object({ id: tokenIdSchema }).strict();

export type TokenInfo = z.infer<typeof tokenInfoSchema>;
export type TokenList = z.infer<typeof tokenListSchema>;

/** Whether a token can still let someone join at `nowMs`, and if not, why: revoked, then used, then expired. */
export function tokenState(token: TokenInfo, nowMs: number): 'active' | 'revoked' | 'used' | 'expired' {
  if (token.revokedAt !== undefined) return 'revoked';
  if (token.once && token.usedAt !== undefined) return 'used';
  if (token.expiresAt <= nowMs) return 'expired';
  return 'active';
}
