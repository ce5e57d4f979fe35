/**
 * The service registry: endpoints in the config map, held by the sessions of their sidecars (see
 * {@link LeasedEntries}): an endpoint outlives its sidecar's session by the lease time.
 */
import type { Logger } from 'pino';
import type { EndpointValue, ServicesView } from '../proto/control.js';
import { ENDPOINT_KEY_PREFIX, endpointKey } from '../proto/control.js';
import type { ConfigState } from './config-state.js';
import { LeasedEntries } from './leased-entries.js';
import type { ReplicaLease } from './replica-lease.js';

/**
 * What a sidecar says about itself when it registers, with the health its app has now (a
 * version-1 sidecar says nothing of health, which means healthy).
 */
export type EndpointRegistration = Omit<EndpointValue, 'healthy'> & { healthy?: boolean };

/** Endpoints and their leases, on top of the config map. */
export class Registry {
  readonly #leases: LeasedEntries;
  readonly #config: ConfigState;

  constructor(
    config: ConfigState,
    lease: ReplicaLease,
    leaseTtlMs: number,
    logger: Logger,
  ) {
    this.#config = config;
    this.#leases = new LeasedEntries({ config, lease, leaseTtlMs, logger, what: 'endpoint' });
  }

  /**
   * (Re)places the endpoint of `registration.sidecarId`, held open by `holder` (a session).
   * A previous holder of the same sidecar loses the lease. Resolves with the config version.
   */
  register(holder: object, registration: EndpointRegistration): Promise<number> {
    const endpoint: EndpointValue = { ...registration, healthy: registration.healthy ?? true };
    return this.#leases.put(holder, endpointKey(endpoint.service, endpoint.sidecarId), endpoint);
  }

  /** Records the health a sidecar reports. Ignored unless `holder` holds the lease. */
  setHealthy(holder: object, service: string, sidecarId: string, healthy: boolean): Promise<number> {
    return this.#leases.update<EndpointValue>(holder, endpointKey(service, sidecarId), (current) => ({ ...current, healthy }));
  }

  /** The sidecar is draining: its endpoint goes now. Ignored unless `holder` holds the lease. */
  deregister(holder: object, service: string, sidecarId: string): Promise<number> {
    return this.#leases.remove(holder, endpointKey(service, sidecarId));
  }

  /** `holder`'s session ended: its endpoint now lives for the lease time unless it registers again. */
  release(holder: object, service: string, sidecarId: string): void {
    this.#leases.release(holder, endpointKey(service, sidecarId));
  }

  /** Whether a session of this replica holds the sidecar's endpoint. */
  isConnected(service: string, sidecarId: string): boolean {
    return this.#leases.isHeld(endpointKey(service, sidecarId));
  }

  /** Endpoints grouped by service, for the admin API. */
  servicesView(): ServicesView {
    const services: ServicesView['services'] = {};
    for (const [, value] of this.#config.list(ENDPOINT_KEY_PREFIX)) {
      const { service, ...endpoint } = value as EndpointValue;
      (services[service] ??= []).push({ ...endpoint, connected: this.isConnected(service, endpoint.sidecarId) });
    }
    return { services };
  }

  /** Number of endpoints per service, for metrics. */
  endpointCounts(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const [, value] of this.#config.list(ENDPOINT_KEY_PREFIX)) {
      const { service } = value as EndpointValue;
      counts.set(service, (counts.get(service) ?? 0) + 1);
    }
    return counts;
  }

  /** Stops every timer; endpoints stay stored for the next start. */
  close(): void {
    this.#leases.close();
  }
}
