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
  const zones = [...new Set(gateways.map((gateway) => gateway.zone))].sort(compareCodePoints);
  const routes: RouteValue[] = [];
  for (const from of zones) {
    const byDestination = pathsFrom(from, neighbours);
    for (const to of zones) {
      const paths = byDestination.get(to);
      if (to === from || paths === undefined || paths.length === 0) continue;
      routes.push({ from, to, paths });
    }
  }
  return routes;
}

/**
 * The best simple paths from a gateway of zone `from`, by the zone they end in, at most
 * MAX_ROUTE_PATHS each. Breadth first, one length at a time, so one walk serves every
 * destination (a path into zone Y is a route to Y and the start of longer routes through it),
 * and the walk stops at the first length after which every zone has its fill: a densely
 * linked mesh never enumerates its (many) longest paths.
 */
function pathsFrom(from: string, neighbours: ReadonlyMap<string, ReadonlySet<string>>): Map<string, string[][]> {
  const found = new Map<string, string[][]>();
  const zones = new Set([...neighbours.keys()].map(zoneOfGatewayKey));
  zones.delete(from);
  let frontier = [...neighbours.keys()].filter((key) => zoneOfGatewayKey(key) === from).map((key) => [key]);
  for (let length = 1; frontier.length > 0; length++) {
    const arrived = new Map<string, string[][]>();
    for (const path of frontier) {
      const zone = zoneOfGatewayKey(path[path.length - 1] as string);
      if (zone === from) continue;
      let paths = arrived.get(zone);
      if (paths === undefined) arrived.set(zone, (paths = []));
      paths.push(path);
    }
    for (const [zone, paths] of arrived) {
      const kept = found.get(zone) ?? [];
      paths.sort((a, b) => compareCodePoints(a.join(' '), b.join(' ')));
      kept.push(...paths.slice(0, MAX_ROUTE_PATHS - kept.length));
      found.set(zone, kept);
    }
    const filled = [...zones].every((zone) => (found.get(zone)?.length ?? 0) >= MAX_ROUTE_PATHS);
    if (filled || length >= Limits.MAX_TUNNEL_HOPS) break;
    frontier = frontier.flatMap((path) => {
      const seen = new Set(path.map(zoneOfGatewayKey));
      // Within the source zone sidecars reach every gateway directly: a second hop there is a detour.
      return [...(neighbours.get(path[path.length - 1] as string) ?? [])].filter((next) => !seen.has(zoneOfGatewayKey(next))).map((next) => [...path, next]);
    });
  }
  return found;
}

/**
 * Orders by UTF-16 code units, the same on every replica: `localeCompare` depends on the ICU
 * build, and two replicas that order a route differently would keep rewriting it.
 */
function compareCodePoints(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Whether `path` is one of the paths `routes` publishes from its first gateway's zone to its last's. */
export function isPublishedPath(routes: (from: string, to: string) => RouteValue | undefined, path: readonly string[]): boolean {
  const first = path[0];
  const last = path[path.length - 1];
  if (first === undefined || last === undefined) return false;
  const route = routes(zoneOfGatewayKey(first), zoneOfGatewayKey(last));
  return route?.paths.some((candidate) => candidate.length === path.length && candidate.every((key, i) => key === path[i])) ?? false;
}
