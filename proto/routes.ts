/**
 * The zone graph and its routes: which gateways a tunnel from one zone to another may cross.
 * The control plane computes routes from the gateways' reported links and publishes them as
 * `route/<from>/<to>` entries; sources pick a path, and every gateway on it checks the path is
 * one of those published. Pure: no I/O.
 */
import type { GatewayValue, RouteValue } from './control.js';
import { MAX_ROUTE_PATHS } from './control.js';
import { Limits } from './frames.js';
import { gatewayKey, zoneOfGatewayKey } from './names.js';

/**
 * Every route between two zones that have gateways: the simple paths over gateway links (a
 * link counts when either end reports it), from a gateway of `from` to one of `to`, crossing
 * no zone twice and at most `Limits.MAX_TUNNEL_HOPS` gateways. Shortest first, then by name;
 * at most `MAX_ROUTE_PATHS` per route. Zone pairs with no path get no route.
 */
export function computeRoutes(gateways: readonly GatewayValue[]): RouteValue[] {
  const neighbours = new Map<string, Set<string>>();
  for (const gateway of gateways) neighbours.set(gatewayKey(gateway.zone, gateway.name), new Set());
  for (const gateway of gateways) {
    const self = gatewayKey(gateway.zone, gateway.name);
    for (const peer of gateway.links) {
      // A link to a gateway the graph does not hold (gone, or not registered yet) is no edge.
      if (!neighbours.has(peer) || peer === self) continue;
      neighbours.get(self)?.add(peer);
      neighbours.get(peer)?.add(self);
    }
  }
  const zones = [...new Set(gateways.map((gateway) => gateway.zone))].sort();
  const routes: RouteValue[] = [];
  for (const from of zones) {
    for (const to of zones) {
      if (from === to) continue;
      const paths = pathsBetween(from, to, neighbours);
      if (paths.length > 0) routes.push({ from, to, paths });
    }
  }
  return routes;
}

function pathsBetween(from: string, to: string, neighbours: ReadonlyMap<string, ReadonlySet<string>>): string[][] {
  const found: string[][] = [];
  const walk = (path: string[], zonesSeen: Set<string>): void => {
    const last = path[path.length - 1] as string;
    if (zoneOfGatewayKey(last) === to) {
      found.push([...path]);
      return;
    }
    if (path.length >= Limits.MAX_TUNNEL_HOPS) return;
    for (const next of neighbours.get(last) ?? []) {
      const zone = zoneOfGatewayKey(next);
      // Within the source zone sidecars reach every gateway directly: a second hop there is a detour.
      if (zonesSeen.has(zone)) continue;
      zonesSeen.add(zone);
      path.push(next);
      walk(path, zonesSeen);
      path.pop();
      zonesSeen.delete(zone);
    }
  };
  for (const start of [...neighbours.keys()].filter((key) => zoneOfGatewayKey(key) === from)) {
    walk([start], new Set([from]));
  }
  found.sort((a, b) => a.length - b.length || a.join(' ').localeCompare(b.join(' ')));
  return found.slice(0, MAX_ROUTE_PATHS);
}

/** Whether `path` is one of the paths `routes` publishes from its first gateway's zone to its last's. */
export function isPublishedPath(routes: (from: string, to: string) => RouteValue | undefined, path: readonly string[]): boolean {
  const first = path[0];
  const last = path[path.length - 1];
  if (first === undefined || last === undefined) return false;
  const route = routes(zoneOfGatewayKey(first), zoneOfGatewayKey(last));
  return route?.paths.some((candidate) => candidate.length === path.length && candidate.every((key, i) => key === path[i])) ?? false;
}
