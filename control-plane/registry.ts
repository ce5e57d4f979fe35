/**
 * The service registry: endpoints in the config map, each held by a lease. A connected
 * session holds its sidecar's lease open; once the session ends the endpoint stays for
 * `leaseTtlMs` and goes unless the sidecar comes back. After a restart every stored endpoint
 * gets a fresh lease, so sidecars that reconnect in time keep their entries.
 */
import type { Logger } from 'pino';
import type { EndpointValue, ServicesView } from '../proto/control.js';
import { ENDPOINT_KEY_PREFIX, endpointKey } from '../proto/control.js';
import type { ConfigState } from './config-state.js';

/** What a sidecar says about itself when it registers; health starts `true`. */
export type EndpointRegistration = Omit<EndpointValue, 'healthy'>;

/** Endpoints and their leases, on top of the config map. */
export class Registry {
  /** sidecarId → the session that holds its lease open. */
  private readonly holders = new Map<string, object>();
  /** sidecarId → timer that removes its endpoint, while nobody holds the lease. */
  private readonly leaseTimers = new Map<string, NodeJS.Timeout>();
  private closed = false;

  constructor(
    private readonly config: ConfigState,
    private readonly leaseTtlMs: number,
    private readonly logger: Logger,
  ) {}

  /** Gives every endpoint already in the config a fresh lease. Call once after loading. */
  start(): void {
    for (const [, value] of this.config.list(ENDPOINT_KEY_PREFIX)) {
      const endpoint = value as EndpointValue;
      if (!this.holders.has(endpoint.sidecarId)) this.startLease(endpoint);
    }
  }

  /**
   * (Re)places the endpoint of `registration.sidecarId`, held open by `holder` (a session).
   * A previous holder of the same sidecar loses the lease. Resolves with the config version.
   */
  register(holder: object, registration: EndpointRegistration): Promise<number> {
    this.cancelLease(registration.sidecarId);
    this.holders.set(registration.sidecarId, holder);
    const endpoint: EndpointValue = { ...registration, healthy: true };
    return this.config.apply([[endpointKey(endpoint.service, endpoint.sidecarId), endpoint]]);
  }

  /** Records the health a sidecar reports. Ignored unless `holder` holds the lease. */
  setHealthy(holder: object, service: string, sidecarId: string, healthy: boolean): Promise<number> {
    const key = endpointKey(service, sidecarId);
    const current = this.config.get(key) as EndpointValue | undefined;
    if (this.holders.get(sidecarId) !== holder || current === undefined) return Promise.resolve(this.config.version);
    return this.config.apply([[key, { ...current, healthy }]]);
  }

  /** The sidecar is draining: its endpoint goes now. Ignored unless `holder` holds the lease. */
  deregister(holder: object, service: string, sidecarId: string): Promise<number> {
    if (this.holders.get(sidecarId) !== holder) return Promise.resolve(this.config.version);
    this.holders.delete(sidecarId);
    this.cancelLease(sidecarId);
    return this.config.apply([[endpointKey(service, sidecarId), null]]);
  }

  /** `holder`'s session ended: its endpoint now lives for `leaseTtlMs` unless it registers again. */
  release(holder: object, service: string, sidecarId: string): void {
    if (this.holders.get(sidecarId) !== holder) return;
    this.holders.delete(sidecarId);
    const endpoint = this.config.get(endpointKey(service, sidecarId)) as EndpointValue | undefined;
    if (endpoint !== undefined) this.startLease(endpoint);
  }

  /** Whether a session currently holds the sidecar's lease. */
  isConnected(sidecarId: string): boolean {
    return this.holders.has(sidecarId);
  }

  /** Endpoints grouped by service, for the admin API. */
  servicesView(): ServicesView {
    const services: ServicesView['services'] = {};
    for (const [, value] of this.config.list(ENDPOINT_KEY_PREFIX)) {
      const { service, ...endpoint } = value as EndpointValue;
      (services[service] ??= []).push({ ...endpoint, connected: this.isConnected(endpoint.sidecarId) });
    }
    return { services };
  }

  /** Number of endpoints per service, for metrics. */
  endpointCounts(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const [, value] of this.config.list(ENDPOINT_KEY_PREFIX)) {
      const { service } = value as EndpointValue;
      counts.set(service, (counts.get(service) ?? 0) + 1);
    }
    return counts;
  }

  /** Stops every lease timer; endpoints stay stored for the next start. */
  close(): void {
    this.closed = true;
    for (const timer of this.leaseTimers.values()) clearTimeout(timer);
    this.leaseTimers.clear();
  }

  private startLease(endpoint: EndpointValue): void {
    this.cancelLease(endpoint.sidecarId);
    // Sessions closing during shutdown must not start leases that would outlive the store.
    if (this.closed) return;
    const timer = setTimeout(() => {
      this.leaseTimers.delete(endpoint.sidecarId);
      if (this.holders.has(endpoint.sidecarId)) return;
      this.logger.info({ sidecarId: endpoint.sidecarId, service: endpoint.service }, 'lease expired; removing endpoint');
      this.config.apply([[endpointKey(endpoint.service, endpoint.sidecarId), null]]).catch((err: unknown) => {
        this.logger.error({ err, sidecarId: endpoint.sidecarId }, 'cannot persist endpoint removal');
      });
    }, this.leaseTtlMs);
    // Pending leases must not keep a closing process alive.
    timer.unref();
    this.leaseTimers.set(endpoint.sidecarId, timer);
  }

  private cancelLease(sidecarId: string): void {
    const timer = this.leaseTimers.get(sidecarId);
    if (timer !== undefined) clearTimeout(timer);
    this.leaseTimers.delete(sidecarId);
  }
}
