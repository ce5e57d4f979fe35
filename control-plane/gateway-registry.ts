/**
 * Gateways and the routes between their zones. Each gateway's `gateway/<zone>/<name>` entry is
 * held by a lease like an endpoint; every change of those entries recomputes the zone graph's
 * routes (`proto/routes.ts`), and the `route/<from>/<to>` entries that changed are written in
 * the same config version step, so that no sidecar ever sees gateways and routes disagree.
 * Changes no write of this replica made (another replica's, a lease that ran out) are followed
 * by the leader, which writes the routes they call for.
 */
import { isDeepStrictEqual } from 'node:util';
import type { Logger } from 'pino';
import type { ConfigChange, ConfigValue, GatewayValue, RouteValue } from '../proto/control.js';
import { GATEWAY_KEY_PREFIX, ROUTE_KEY_PREFIX, gatewayEntryKey, routeKey } from '../proto/control.js';
import { computeRoutes } from '../proto/routes.js';
import type { GatewayIdentity } from './cert-issuer.js';
import type { ConfigState } from './config-state.js';
import type { ApplyOptions } from './config-state.js';
import { LeasedEntries } from './leased-entries.js';
import type { ReplicaLease } from './replica-lease.js';

/** `GET /v1/gateways` answer: every gateway entry, whether its session is connected, and the routes. */
export interface GatewaysView {
  gateways: Array<GatewayValue & { connected: boolean }>;
  routes: RouteValue[];
}

/** Gateway entries with their leases, and the routes derived from them. */
export class GatewayRegistry {
  readonly #config: ConfigState;
  readonly #leases: LeasedEntries;
  readonly #logger: Logger;
  #leading = false;
  #reconciling: Promise<unknown> = Promise.resolve();

  constructor(config: ConfigState, lease: ReplicaLease, leaseTtlMs: number, logger: Logger) {
    this.#config = config;
    this.#logger = logger;
    this.#leases = new LeasedEntries({ config, lease, leaseTtlMs, logger, what: 'gateway', write: (changes, options, ifRevision) => this.#writeWithRoutes(changes, options, ifRevision) });
    config.onChange((_version, changes) => {
      if (this.#leading && changes.some(([key]) => key.startsWith(GATEWAY_KEY_PREFIX))) this.#reconcileRoutes();
    });
  }

  /**
   * Whether this replica leads. The leader brings the stored routes in line with the stored
   * gateways when it takes over and after every gateway change.
   */
  setLeading(leading: boolean): void {
    this.#leading = leading;
    if (leading) this.#reconcileRoutes();
  }

  /**
   * (Re)places the entry of gateway `identity`, held open by `holder` (a session), with no
   * links yet: the gateway reports them once it has them. Resolves with the config version.
   */
  register(holder: object, identity: GatewayIdentity, addresses: readonly string[]): Promise<number> {
    const { zone, name, gatewayId } = identity;
    const value: GatewayValue = { zone, name, gatewayId, addresses: [...addresses], links: [] };
    return this.#leases.put(holder, gatewayEntryKey(zone, name), value);
  }

  /** Records the gateways `zone/name` holds links to. Ignored unless `holder` holds the lease. */
  setLinks(holder: object, zone: string, name: string, peers: readonly string[]): Promise<number> {
    // Sorted and unique: a report that only reorders its peers changes nothing, so it costs no version.
    const links = [...new Set(peers)].sort();
    return this.#leases.update<GatewayValue>(holder, gatewayEntryKey(zone, name), (current) => ({ ...current, links }));
  }

  /** The gateway is draining: its entry goes now. Ignored unless `holder` holds the lease. */
  deregister(holder: object, zone: string, name: string): Promise<number> {
    return this.#leases.remove(holder, gatewayEntryKey(zone, name));
  }

  /** `holder`'s session ended: the entry now lives for the lease time unless the gateway registers again. */
  release(holder: object, zone: string, name: string): void {
    this.#leases.release(holder, gatewayEntryKey(zone, name));
  }

  /** Every gateway (with whether a session holds its lease) and every route, in key order. */
  view(): GatewaysView {
    // Code-point order, not the locale's: every replica answers the same.
    const byKey = (a: [string, unknown], b: [string, unknown]): number => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0);
    const gateways = this.#config
      .list(GATEWAY_KEY_PREFIX)
      .sort(byKey)
      .map(([key, value]) => ({ ...(value as GatewayValue), connected: this.#leases.isHeld(key) }));
    const routes = this.#config
      .list(ROUTE_KEY_PREFIX)
      .sort(byKey)
      .map(([, value]) => value as RouteValue);
    return { gateways, routes };
  }

  /** Stops every timer; entries stay stored for the next start. */
  close(): void {
    this.#leases.close();
  }

  /**
   * Applies gateway `changes` together with the route changes they cause, as one version step.
   * Only routes that differ from the stored ones are written, so a gateway change that leaves
   * the graph's paths alone pushes no route.
   */
  #writeWithRoutes(changes: readonly ConfigChange[], options: ApplyOptions = {}, ifRevision?: { key: string; revision: number }): Promise<number | undefined> {
    const gateways = new Map<string, ConfigValue>(this.#config.list(GATEWAY_KEY_PREFIX));
    for (const [key, value] of changes) {
      if (value === null) gateways.delete(key);
      else gateways.set(key, value);
    }
    const wanted = new Map<string, RouteValue>();
    for (const route of computeRoutes([...gateways.values()] as GatewayValue[])) wanted.set(routeKey(route.from, route.to), route);
    const routeChanges: ConfigChange[] = [];
    for (const [key, route] of wanted) if (!isDeepStrictEqual(this.#config.get(key), route)) routeChanges.push([key, route]);
    for (const [key] of this.#config.list(ROUTE_KEY_PREFIX)) if (!wanted.has(key)) routeChanges.push([key, null]);
    const all = [...changes, ...routeChanges];
    return ifRevision === undefined ? this.#config.apply(all, options) : this.#config.applyIf(all, ifRevision, options);
  }

  /** Writes the route changes the stored gateways call for, one reconciliation at a time. */
  #reconcileRoutes(): void {
    this.#reconciling = this.#reconciling
      .then(() => this.#writeWithRoutes([]))
      .catch((err: unknown) => this.#logger.error({ err }, 'cannot persist routes'));
  }
}
