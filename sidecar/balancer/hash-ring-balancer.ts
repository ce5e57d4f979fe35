import HashRing from 'hashring';
import type { Balancer, BalancerEndpoint } from './balancer.js';

interface ServiceRing {
  ring: HashRing;
  bySidecarId: Map<string, BalancerEndpoint>;
}

/**
 * Consistent hashing over a service's healthy endpoints (ketama ring from `hashring`),
 * weights respected. When an endpoint leaves, only the keys it held move.
 */
export class HashRingBalancer implements Balancer {
  readonly #rings = new Map<string, ServiceRing>();

  update(service: string, endpoints: readonly BalancerEndpoint[]): void {
    if (endpoints.length === 0) {
      this.#rings.delete(service);
      return;
    }
    const servers: Record<string, { weight: number }> = {};
    const bySidecarId = new Map<string, BalancerEndpoint>();
    for (const endpoint of endpoints) {
      servers[endpoint.sidecarId] = { weight: endpoint.weight };
      bySidecarId.set(endpoint.sidecarId, endpoint);
    }
    // A fresh ring per change: rings are small, and the library's lookup cache must not
    // answer with an endpoint that has left.
    this.#rings.set(service, { ring: new HashRing(servers, 'md5'), bySidecarId });
  }

  candidates(service: string, key: string, max = 3): BalancerEndpoint[] {
    const entry = this.#rings.get(service);
    if (entry === undefined) return [];
    const ids = max === 1 ? [entry.ring.get(key)] : entry.ring.range(key, max);
    const picked: BalancerEndpoint[] = [];
    for (const id of ids) {
      const endpoint = entry.bySidecarId.get(id);
      if (endpoint !== undefined) picked.push(endpoint);
    }
    return picked;
  }
}
