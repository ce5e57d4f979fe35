import { SERVICE_NAME_PATTERN } from '../proto/control.js';
import { ValidationError } from '../proto/errors.js';
import type { BalancingOptions, HashPolicy } from '../sidecar/balancer/index.js';
import { DEFAULT_EJECTION, DEFAULT_LOAD_FACTOR, parseHashPolicy } from '../sidecar/balancer/index.js';
import type { HealthCheckOptions } from '../sidecar/health/index.js';
import { DEFAULT_HEALTH_INTERVAL_MS, DEFAULT_HEALTH_TIMEOUT_MS, parseHealthCheck } from '../sidecar/health/index.js';
import { parseDurationMs, UsageError } from './args.js';

/** Outbound streams idle this long are reset unless `--idle-timeout` says otherwise (as Envoy's TCP proxy). */
export const DEFAULT_IDLE_TIMEOUT_MS = 3_600_000;

/** The `trellis sidecar` flags that shape outbound traffic and check the app, for `parseFlags`. */
export const trafficFlagOptions = {
  hash: { type: 'string', multiple: true },
  'balance-load-factor': { type: 'string' },
  'max-streams-per-endpoint': { type: 'string' },
  'eject-after': { type: 'string' },
  'eject-backoff': { type: 'string' },
  'eject-backoff-max': { type: 'string' },
  'connect-timeout': { type: 'string' },
  'idle-timeout': { type: 'string' },
  'health-check': { type: 'string' },
  'health-interval': { type: 'string' },
  'health-timeout': { type: 'string' },
} as const;

/** Help lines of {@link trafficFlagOptions}. */
export const trafficFlagsHelp = `

Outbound traffic (to the services of --upstream and the proxy port):
  --hash SVC=POLICY         what picks SVC's endpoint on the hash ring (repeatable): source-ip,
                            source-ip-port (default) or fixed:KEY
  --balance-load-factor C   no endpoint gets more than C times its weighted share of this
                            sidecar's active streams; a hot key spills over (>= 1, default ${DEFAULT_LOAD_FACTOR})
  --max-streams-per-endpoint N  streams to one endpoint at most; more go to the next (default: no limit)
  --eject-after N           consecutive failures (dial, app unreachable) that eject an endpoint (default ${DEFAULT_EJECTION.consecutiveFailures})
  --eject-backoff DURATION  first ejection; doubles while it keeps failing (default ${DEFAULT_EJECTION.baseBackoffMs / 1000}s)
  --eject-backoff-max DURATION  longest ejection (default ${DEFAULT_EJECTION.maxBackoffMs / 1000}s)
  --connect-timeout DURATION  time to dial a link to another sidecar, TCP and TLS (default 5s)
  --idle-timeout DURATION|off  reset streams with no bytes either way for this long (default 1h)

Health of the app (reported to the control plane; unhealthy endpoints get no traffic):
  --health-check CHECK      tcp (connect), or http:/PATH[:STATUS] (GET; STATUS, or any 2xx)
  --health-interval DURATION  time between checks (default ${DEFAULT_HEALTH_INTERVAL_MS / 1000}s); unhealthy after 2 failed
                            checks in a row, healthy again after 1 passed check
  --health-timeout DURATION  a check not done by then fails (default ${DEFAULT_HEALTH_TIMEOUT_MS / 1000}s, at most the interval)`;

/** The parsed values of {@link trafficFlagOptions}. */
export interface TrafficFlagValues {
  hash?: string[];
  'balance-load-factor'?: string;
  'max-streams-per-endpoint'?: string;
  'eject-after'?: string;
  'eject-backoff'?: string;
  'eject-backoff-max'?: string;
  'connect-timeout'?: string;
  'idle-timeout'?: string;
  'health-check'?: string;
  'health-interval'?: string;
  'health-timeout'?: string;
}

/** What the traffic flags set on a sidecar. */
export interface TrafficSettings {
  balancing: BalancingOptions;
  connectTimeoutMs: number | undefined;
  idleTimeoutMs: number | undefined;
  health: HealthCheckOptions | undefined;
}

/** Checks the traffic flags; throws UsageError naming the flag at fault. */
export function parseTrafficFlags(values: TrafficFlagValues, hasApp: boolean): TrafficSettings {
  const backoffMs = optional(values['eject-backoff'], (text) => parseDurationMs(text, '--eject-backoff'));
  const maxBackoffMs = optional(values['eject-backoff-max'], (text) => parseDurationMs(text, '--eject-backoff-max'));
  if ((maxBackoffMs ?? DEFAULT_EJECTION.maxBackoffMs) < (backoffMs ?? DEFAULT_EJECTION.baseBackoffMs)) {
    throw new UsageError(`--eject-backoff-max must not be shorter than --eject-backoff`);
  }
  return {
    balancing: {
      hashPolicies: parseHashFlags(values.hash ?? []),
      loadFactor: optional(values['balance-load-factor'], parseLoadFactor),
      maxStreamsPerEndpoint: optional(values['max-streams-per-endpoint'], (text) => wholeNumber(text, '--max-streams-per-endpoint', 1_000_000)),
      ejection: {
        consecutiveFailures: optional(values['eject-after'], (text) => wholeNumber(text, '--eject-after', 1000)),
        baseBackoffMs: backoffMs,
        maxBackoffMs,
      },
    },
    connectTimeoutMs: optional(values['connect-timeout'], (text) => parseDurationMs(text, '--connect-timeout')),
    idleTimeoutMs: values['idle-timeout'] === 'off' ? undefined : parseDurationMs(values['idle-timeout'] ?? `${DEFAULT_IDLE_TIMEOUT_MS}ms`, '--idle-timeout'),
    health: parseHealthFlags(values, hasApp),
  };
}

function parseHashFlags(specs: string[]): Map<string, HashPolicy> {
  const policies = new Map<string, HashPolicy>();
  for (const spec of specs) {
    const separator = spec.indexOf('=');
    if (separator <= 0) throw new UsageError(`--hash must be SERVICE=source-ip|source-ip-port|fixed:KEY, got "${spec}"`);
    const service = spec.slice(0, separator);
    if (!SERVICE_NAME_PATTERN.test(service)) throw new UsageError(`--hash: "${service}" is not a valid service name`);
    if (policies.has(service)) throw new UsageError(`--hash is given twice for "${service}"`);
    policies.set(service, usage(() => parseHashPolicy(spec.slice(separator + 1), `--hash ${service}`)));
  }
  return policies;
}

function parseHealthFlags(values: TrafficFlagValues, hasApp: boolean): HealthCheckOptions | undefined {
  const checkText = values['health-check'];
  if (checkText === undefined) {
    for (const flag of ['health-interval', 'health-timeout'] as const) {
      if (values[flag] !== undefined) throw new UsageError(`--${flag} needs --health-check`);
    }
    return undefined;
  }
  if (!hasApp) throw new UsageError('--health-check needs --app: it checks the local app');
  const check = usage(() => parseHealthCheck(checkText, '--health-check'));
  const intervalMs = optional(values['health-interval'], (text) => parseDurationMs(text, '--health-interval')) ?? DEFAULT_HEALTH_INTERVAL_MS;
  const timeoutMs = optional(values['health-timeout'], (text) => parseDurationMs(text, '--health-timeout')) ?? Math.min(DEFAULT_HEALTH_TIMEOUT_MS, intervalMs);
  if (timeoutMs > intervalMs) throw new UsageError(`--health-timeout (${timeoutMs} ms) must not exceed --health-interval (${intervalMs} ms)`);
  return { check, intervalMs, timeoutMs };
}

function parseLoadFactor(text: string): number {
  const factor = Number(text);
  if (!/^\d+(\.\d+)?$/.test(text.trim()) || !(factor >= 1) || factor > 100) {
    throw new UsageError(`--balance-load-factor must be a number from 1 to 100, like 1.25, got "${text}"`);
  }
  return factor;
}

function wholeNumber(text: string, flag: string, max: number): number {
  const value = Number(text);
  if (!/^\d+$/.test(text.trim()) || value < 1 || value > max) throw new UsageError(`${flag} must be a whole number 1..${max}, got "${text}"`);
  return value;
}

function optional<T>(text: string | undefined, parse: (text: string) => T): T | undefined {
  return text === undefined ? undefined : parse(text);
}

/** Runs a parser of the sidecar's own, turning its ValidationError into a UsageError. */
function usage<T>(parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    if (error instanceof ValidationError) throw new UsageError(error.message);
    throw error;
  }
}
