import { ValidationError } from '../../proto/errors.js';

/**
 * How the local app is checked: a TCP connect, or an HTTP GET of `path` answered with
 * `expectedStatus` (any 2xx when unset).
 */
export type HealthCheck = { kind: 'tcp' } | { kind: 'http'; path: string; expectedStatus?: number };

/** Options of the active health checks of the local app. */
export interface HealthCheckOptions {
  check: HealthCheck;
  /** Time from the start of one check to the start of the next. @default 2000 */
  intervalMs?: number;
  /** A check not done by then has failed; at most `intervalMs`. @default min(1000, intervalMs) */
  timeoutMs?: number;
  /** Consecutive failed checks that make a healthy app unhealthy. @default 2 */
  unhealthyAfterFailures?: number;
  /** Consecutive passed checks that make an unhealthy app healthy. @default 1 */
  healthyAfterSuccesses?: number;
}

export const DEFAULT_HEALTH_INTERVAL_MS = 2000;
export const DEFAULT_HEALTH_TIMEOUT_MS = 1000;
export const DEFAULT_UNHEALTHY_AFTER_FAILURES = 2;
export const DEFAULT_HEALTHY_AFTER_SUCCESSES = 1;

/** Longest path of an HTTP check. */
const MAX_PATH_LENGTH = 1024;

/**
 * Parses `tcp`, `http:/PATH` or `http:/PATH:STATUS` (e.g. `http:/healthz:204`). Throws
 * ValidationError naming `what` (e.g. the flag it came from).
 */
export function parseHealthCheck(text: string, what = 'health check'): HealthCheck {
  if (text === 'tcp') return { kind: 'tcp' };
  const match = /^http:(\/[^\s]*?)(?::(\d{3}))?$/.exec(text);
  if (match === null) {
    throw new ValidationError(`${what} must be tcp, http:/PATH or http:/PATH:STATUS, got "${text}"`, 'TRELLIS_ERR_BAD_HEALTH_CHECK');
  }
  const path = match[1]!;
  // `http://host/x` is a URL, not a path: the check always goes to --app.
  if (path.startsWith('//')) throw new ValidationError(`${what}: give a path on the app (http:/PATH), not a URL, got "${text}"`, 'TRELLIS_ERR_BAD_HEALTH_CHECK');
  if (path.length > MAX_PATH_LENGTH || !/^[\x21-\x7e]+$/.test(path)) {
    throw new ValidationError(`${what}: the path must be printable ASCII without spaces, at most ${MAX_PATH_LENGTH} characters`, 'TRELLIS_ERR_BAD_HEALTH_CHECK');
  }
  if (match[2] === undefined) return { kind: 'http', path };
  const expectedStatus = Number(match[2]);
  if (expectedStatus < 100 || expectedStatus > 599) {
    throw new ValidationError(`${what}: the status must be 100..599, got ${expectedStatus}`, 'TRELLIS_ERR_BAD_HEALTH_CHECK');
  }
  return { kind: 'http', path, expectedStatus };
}
