/**
 * Dashboard login sessions: the admin token is shown once, at login, and swapped for a random
 * session id in a cookie (HttpOnly, Secure, SameSite=Strict, expiring) and a CSRF token the
 * page sends with every change. Only SHA-256 digests of the ids are kept, in memory, bounded.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { ControlErrorCode } from '../../proto/control.js';
import { ApiError } from '../errors.js';

/** Name of the session cookie. */
export const SESSION_COOKIE = 'trellis_ui';
/** Header that carries the CSRF token on every change. */
export const CSRF_HEADER = 'x-trellis-csrf';
/** @default 8 hours */
export const DEFAULT_SESSION_TTL_MS = 8 * 60 * 60 * 1000;
/** Most live sessions; logging in beyond it ends the oldest. */
export const MAX_SESSIONS = 256;

interface LiveSession { csrfToken: string; expiresAtMs: number }

/** A session just opened: what goes into the cookie and to the page. */
export interface OpenedSession { cookie: string; csrfToken: string }

export class DashboardSessions {
  readonly #byDigest = new Map<string, LiveSession>();
  readonly #ttlMs: number;
  readonly #now: () => number;

  constructor(options: { ttlMs?: number; now?: () => number } = {}) {
    this.#ttlMs = options.ttlMs ?? DEFAULT_SESSION_TTL_MS;
    this.#now = options.now ?? Date.now;
  }

  /** Opens a session (the caller has checked the admin token). */
  open(): OpenedSession {
    this.#sweep();
    while (this.#byDigest.size >= MAX_SESSIONS) {
      const oldest = this.#byDigest.keys().next().value;
      if (oldest === undefined) break;
      this.#byDigest.delete(oldest);
    }
    const id = randomBytes(32).toString('base64url');
    const csrfToken = randomBytes(32).toString('base64url');
    this.#byDigest.set(digest(id), { csrfToken, expiresAtMs: this.#now() + this.#ttlMs });
    const maxAgeSeconds = Math.floor(this.#ttlMs / 1000);
    return { cookie: `${SESSION_COOKIE}=${id}; Path=/ui; HttpOnly; Secure; SameSite=Strict; Max-Age=${maxAgeSeconds}`, csrfToken };
  }

  /**
   * The session of a request's `Cookie` header; with `csrfHeader` (for changes) its CSRF token
   * must match too.
   * @throws ApiError `TRELLIS_ERR_UNAUTHORIZED` (401) without a live session; `TRELLIS_ERR_CSRF` (403) with a wrong CSRF token.
   */
  verify(cookieHeader: string | undefined, csrf?: { header: string | string[] | undefined }): { csrfToken: string } {
    const id = cookieValue(cookieHeader, SESSION_COOKIE);
    const session = id === undefined ? undefined : this.#byDigest.get(digest(id));
    if (id === undefined || session === undefined || session.expiresAtMs <= this.#now()) {
      if (id !== undefined) this.#byDigest.delete(digest(id));
      throw new ApiError(ControlErrorCode.UNAUTHORIZED, 'log in with the admin token first', 401);
    }
    if (csrf !== undefined && !sameText(typeof csrf.header === 'string' ? csrf.header : '', session.csrfToken)) {
      throw new ApiError(ControlErrorCode.CSRF, `a change needs the session's CSRF token in ${CSRF_HEADER}`, 403);
    }
    return { csrfToken: session.csrfToken };
  }

  /** Ends the session of a request; answers with the cookie that clears it in the browser. */
  close(cookieHeader: string | undefined): string {
    const id = cookieValue(cookieHeader, SESSION_COOKIE);
    if (id !== undefined) this.#byDigest.delete(digest(id));
    return `${SESSION_COOKIE}=; Path=/ui; HttpOnly; Secure; SameSite=Strict; Max-Age=0`;
  }

  #sweep(): void {
    const now = this.#now();
    for (const [key, session] of this.#byDigest) if (session.expiresAtMs <= now) this.#byDigest.delete(key);
  }
}

function digest(id: string): string {
  return createHash('sha256').update(id).digest('hex');
}

function sameText(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

function cookieValue(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const [key, ...rest] = part.trim().split('=');
    if (key === name) return rest.join('=');
  }
  return undefined;
}
