import type { ConfigValue, EndpointValue, GatewayValue, PolicyDefaultValue, PolicyRuleValue, RevokedServiceValue, RevokedSidecarValue, RouteValue, TrustBundleValue } from '../../proto/control.js';
import { ENDPOINT_KEY_PREFIX, GATEWAY_KEY_PREFIX, POLICY_DEFAULT_KEY, POLICY_RULE_KEY_PREFIX, REVOKED_SERVICE_KEY_PREFIX, REVOKED_SIDECAR_KEY_PREFIX, ROUTE_KEY_PREFIX, TRUST_BUNDLE_KEY, parseConfigEntry } from '../../proto/control.js';
import type { ConfigEntry } from './mesh-config.js';

/** Types an entry already validated by `parseConfigEntry` (the control-plane message parser does). */
export function typedEntry(key: string, value: ConfigValue): ConfigEntry {
  if (key.startsWith(ENDPOINT_KEY_PREFIX)) return { kind: 'endpoint', key, value: value as EndpointValue };
  if (key === POLICY_DEFAULT_KEY) return { kind: 'policy-default', key, value: value as PolicyDefaultValue };
  if (key.startsWith(POLICY_RULE_KEY_PREFIX)) return { kind: 'policy-rule', key, value: value as PolicyRuleValue };
  if (key.startsWith(GATEWAY_KEY_PREFIX)) return { kind: 'gateway', key, value: value as GatewayValue };
  if (key.startsWith(ROUTE_KEY_PREFIX)) return { kind: 'route', key, value: value as RouteValue };
  if (key.startsWith(REVOKED_SIDECAR_KEY_PREFIX)) return { kind: 'revoked-sidecar', key, value: value as RevokedSidecarValue };
  if (key.startsWith(REVOKED_SERVICE_KEY_PREFIX)) return { kind: 'revoked-service', key, value: value as RevokedServiceValue };
  if (key === TRUST_BUNDLE_KEY) return { kind: 'trust-bundle', key, value: value as TrustBundleValue };
  return { kind: 'unknown', key, value };
}

/** Validated entries of a snapshot. */
export function decodeConfigEntries(entries: readonly (readonly [string, unknown])[]): ConfigEntry[] {
  const typed: ConfigEntry[] = [];
  for (const [key, raw] of entries) {
    const value = parseConfigEntry(key, raw);
    if (value !== undefined) typed.push(typedEntry(key, value));
  }
  return typed;
}

/** The service of an `endpoint/<service>/<sidecarId>` key; undefined for other kinds. */
export function endpointServiceOf(key: string): string | undefined {
  if (!key.startsWith(ENDPOINT_KEY_PREFIX)) return undefined;
  const service = key.slice(ENDPOINT_KEY_PREFIX.length).split('/', 1)[0];
  return service === '' ? undefined : service;
}
