import { EventEmitter } from 'node:events';
import type { GatewayValue, PolicyDefaultValue, PolicyRuleValue, RevokedServiceValue, RevokedSidecarValue, RouteValue, TrustBundleValue } from '../../proto/control.js';
import { gatewayEntryKey, POLICY_DEFAULT_KEY, POLICY_RULE_KEY_PREFIX, REVOKED_KEY_PREFIX, revokedServiceKey, revokedSidecarKey, routeKey, TRUST_BUNDLE_KEY } from '../../proto/control.js';
import type { RevocationLookup } from '../../proto/revocation.js';
import type { BalancerEndpoint } from '../balancer/balancer.js';
import type { PolicyAction } from '../policy/policy.js';
import { AuthorizationPolicy } from '../policy/policy.js';

/** One registered endpoint, as the control plane pushes it. */
export interface EndpointEntry extends BalancerEndpoint {
  service: string;
  zone: string;
  healthy: boolean;
}

/** The typed view of one config entry; the control-plane client validates raw entries into these. */
export type ConfigEntry =
  | { kind: 'endpoint'; key: string; value: EndpointEntry }
  | { kind: 'policy-default'; key: string; value: PolicyDefaultValue }
  | { kind: 'policy-rule'; key: string; value: PolicyRuleValue }
  | { kind: 'gateway'; key: string; value: GatewayValue }
  | { kind: 'route'; key: string; value: RouteValue }
  | { kind: 'revoked-sidecar'; key: string; value: RevokedSidecarValue }
  | { kind: 'revoked-service'; key: string; value: RevokedServiceValue }
  | { kind: 'trust-bundle'; key: string; value: TrustBundleValue }
  | { kind: 'unknown'; key: string; value: unknown };

/** A change to one key: the new entry, or `undefined` when the key was deleted. */
export interface ConfigChange {
  key: string;
  entry: ConfigEntry | undefined;
}

/**
 * The mesh configuration as this sidecar knows it: a versioned key/value map, replaced by a
 * snapshot or patched by deltas, with the views the data plane reads (healthy endpoints per
 * service, the authorization policy, gateways and routes) kept up to date. Emits 'services'
 * with the names whose endpoints changed, 'gateways' when a gateway or route entry changed,
 * 'revocations' when a revocation entry changed, 'policy' when a policy entry changed, and
 * 'version' after every applied update.
 */
export class MeshConfig extends EventEmitter implements RevocationLookup {
  #version = 0;
  readonly #entries = new Map<string, ConfigEntry>();
  #policy = new AuthorizationPolicy('allow', []);
  #revocationsTouched = false;
  #policyTouched = false;

  get version(): number {
    return this.#version;
  }

  get policy(): AuthorizationPolicy {
    return this.#policy;
  }

  /** Healthy endpoints of `service`. */
  endpoints(service: string): EndpointEntry[] {
    const prefix = `endpoint/${service}/`;
    const endpoints: EndpointEntry[] = [];
    for (const [key, entry] of this.#entries) {
      if (entry.kind === 'endpoint' && key.startsWith(prefix) && entry.value.healthy) endpoints.push(entry.value);
    }
    return endpoints;
  }

  /** Any registered endpoint (healthy or not) of sidecar `sidecarId`, in whichever service. */
  endpointOf(sidecarId: string): EndpointEntry | undefined {
    for (const entry of this.#entries.values()) {
      if (entry.kind === 'endpoint' && entry.value.sidecarId === sidecarId) return entry.value;
    }
    return undefined;
  }

  /** The gateway `<zone>/<name>`, if registered. */
  gateway(zone: string, name: string): GatewayValue | undefined {
    const entry = this.#entries.get(gatewayEntryKey(zone, name));
    return entry?.kind === 'gateway' ? entry.value : undefined;
  }

  /** Every registered gateway. */
  gateways(): GatewayValue[] {
    const gateways: GatewayValue[] = [];
    for (const entry of this.#entries.values()) if (entry.kind === 'gateway') gateways.push(entry.value);
    return gateways;
  }

  /** The published route from zone `from` to zone `to`, if any. */
  route(from: string, to: string): RouteValue | undefined {
    const entry = this.#entries.get(routeKey(from, to));
    return entry?.kind === 'route' ? entry.value : undefined;
  }

  /** The revocation of sidecar (or gateway) `sidecarId`, if revoked. */
  sidecar(sidecarId: string): RevokedSidecarValue | undefined {
    const entry = this.#entries.get(revokedSidecarKey(sidecarId));
    return entry?.kind === 'revoked-sidecar' ? entry.value : undefined;
  }

  /** The revocation of `service`'s certificates, if revoked. */
  service(service: string): RevokedServiceValue | undefined {
    const entry = this.#entries.get(revokedServiceKey(service));
    return entry?.kind === 'revoked-service' ? entry.value : undefined;
  }

  /** The trust bundle the control plane published, if any. */
  trustBundle(): TrustBundleValue | undefined {
    const entry = this.#entries.get(TRUST_BUNDLE_KEY);
    return entry?.kind === 'trust-bundle' ? entry.value : undefined;
  }

  /** Every entry, for caching on disk. */
  entries(): ConfigEntry[] {
    return [...this.#entries.values()];
  }

  applySnapshot(version: number, entries: readonly ConfigEntry[]): void {
    const touched = this.#servicesOf(this.#entries.values());
    this.#entries.clear();
    for (const entry of entries) this.#entries.set(entry.key, entry);
    for (const service of this.#servicesOf(entries)) touched.add(service);
    this.#revocationsTouched = true;
    this.#policyTouched = true;
    this.#finish(version, touched, true);
  }

  /**
   * Applies a delta. Returns false (and changes nothing) when it does not follow the version
   * held: the caller then needs a fresh snapshot. The endpoints of `replacedServices` are
   * forgotten first: the delta carries all of theirs (a new subscription).
   */
  applyDelta(version: number, baseVersion: number, changes: readonly ConfigChange[], replacedServices: readonly string[] = []): boolean {
    if (baseVersion !== this.#version) return false;
    const touched = this.#deleteEndpointsOf(replacedServices);
    let gatewaysTouched = false;
    for (const { key, entry } of changes) {
      if (key.startsWith('gateway/') || key.startsWith('route/')) gatewaysTouched = true;
      if (key.startsWith(REVOKED_KEY_PREFIX)) this.#revocationsTouched = true;
      if (key === POLICY_DEFAULT_KEY || key.startsWith(POLICY_RULE_KEY_PREFIX)) this.#policyTouched = true;
      const previous = this.#entries.get(key);
      if (previous?.kind === 'endpoint') touched.add(previous.value.service);
      if (entry === undefined) this.#entries.delete(key);
      else {
        this.#entries.set(key, entry);
        if (entry.kind === 'endpoint') touched.add(entry.value.service);
      }
    }
    this.#finish(version, touched, gatewaysTouched);
    return true;
  }

  /**
   * Forgets every endpoint of `services` (no longer subscribed). The version stays: these
   * entries are outside what the control plane pushes to this sidecar from now on.
   */
  forgetEndpoints(services: readonly string[]): void {
    const touched = this.#deleteEndpointsOf(services);
    if (touched.size > 0) this.emit('services', touched);
  }

  /** Services that have at least one endpoint entry (healthy or not). */
  servicesWithEndpoints(): Set<string> {
    return this.#servicesOf(this.#entries.values());
  }

  #deleteEndpointsOf(services: readonly string[]): Set<string> {
    const touched = new Set<string>();
    if (services.length === 0) return touched;
    const forget = new Set(services);
    for (const [key, entry] of this.#entries) {
      if (entry.kind === 'endpoint' && forget.has(entry.value.service)) {
        this.#entries.delete(key);
        touched.add(entry.value.service);
      }
    }
    return touched;
  }

  #finish(version: number, touchedServices: Set<string>, gatewaysTouched: boolean): void {
    this.#version = version;
    this.#rebuildPolicy();
    if (touchedServices.size > 0) this.emit('services', touchedServices);
    if (gatewaysTouched) this.emit('gateways');
    if (this.#revocationsTouched) this.emit('revocations');
    if (this.#policyTouched) this.emit('policy');
    this.#revocationsTouched = false;
    this.#policyTouched = false;
    this.emit('version', version);
  }

  #rebuildPolicy(): void {
    let defaultDecision: { action: PolicyAction; closeExisting?: boolean } = { action: 'allow' };
    const rules: PolicyRuleValue[] = [];
    for (const entry of this.#entries.values()) {
      if (entry.kind === 'policy-default') defaultDecision = entry.value;
      else if (entry.kind === 'policy-rule') rules.push(entry.value);
    }
    this.#policy = new AuthorizationPolicy(defaultDecision, rules);
  }

  #servicesOf(entries: Iterable<ConfigEntry>): Set<string> {
    const services = new Set<string>();
    for (const entry of entries) if (entry.kind === 'endpoint') services.add(entry.value.service);
    return services;
  }
}
