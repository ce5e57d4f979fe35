import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { GatewayValue, RouteValue } from '../../proto/control.js';
import { MAX_ROUTE_PATHS, routeValueSchema } from '../../proto/control.js';
import { Limits } from '../../proto/frames.js';
import { computeRoutes, isPublishedPath } from '../../proto/routes.js';

/** A gateway `zone/name` reporting links to `links`. */
function gateway(key: string, links: string[] = []): GatewayValue {
  const [zone = '', name = ''] = key.split('/');
  return { zone, name, gatewayId: `gw-${zone}-${name}`, addresses: [], links };
}

function route(routes: readonly RouteValue[], from: string, to: string): RouteValue | undefined {
  return routes.find((r) => r.from === from && r.to === to);
}

describe('computeRoutes', () => {
  it('gives a private gateway that reports its links alone routes both ways', () => {
    // gc advertises nothing and dials out; ga never learns it is linked.
    const routes = computeRoutes([gateway('a/ga'), gateway('c/gc', ['a/ga'])]);
    assert.deepEqual(routes, [
      { from: 'a', to: 'c', paths: [['a/ga', 'c/gc']] },
      { from: 'c', to: 'a', paths: [['c/gc', 'a/ga']] },
    ]);
    for (const r of routes) routeValueSchema.parse(r);
  });

  it('publishes nothing without links, and ignores links to gateways it does not know', () => {
    assert.deepEqual(computeRoutes([gateway('a/ga'), gateway('c/gc')]), []);
    assert.deepEqual(computeRoutes([gateway('a/ga', ['c/gone', 'a/ga']), gateway('c/gc')]), []);
  });

  it('never crosses a zone twice, the source zone included', () => {
    const routes = computeRoutes([
      gateway('a/g1', ['b/g1', 'a/g2']),
      gateway('a/g2', ['c/g1']),
      gateway('b/g1', ['b/g2']),
      gateway('b/g2', ['c/g1']),
      gateway('c/g1'),
    ]);
    // Not [a/g1, a/g2, c/g1] (zone a twice), nor [a/g1, b/g1, b/g2, c/g1] (zone b twice).
    assert.deepEqual(route(routes, 'a', 'c')?.paths, [['a/g2', 'c/g1']]);
    for (const r of routes) {
      for (const path of r.paths) {
        const zones = path.map((key) => key.split('/')[0]);
        assert.equal(new Set(zones).size, zones.length, `${path.join(' ')} crosses a zone twice`);
      }
    }
  });

  it('stops at the hop limit', () => {
    const zones = Array.from({ length: Limits.MAX_TUNNEL_HOPS + 2 }, (_, i) => `z${i}`);
    const chain = zones.map((zone, i) => gateway(`${zone}/g`, i + 1 < zones.length ? [`${zones[i + 1]}/g`] : []));
    const routes = computeRoutes(chain);
    const longest = route(routes, 'z0', `z${Limits.MAX_TUNNEL_HOPS - 1}`);
    assert.equal(longest?.paths[0]?.length, Limits.MAX_TUNNEL_HOPS);
    assert.equal(route(routes, 'z0', `z${Limits.MAX_TUNNEL_HOPS}`), undefined);
    assert.equal(route(routes, `z${Limits.MAX_TUNNEL_HOPS + 1}`, 'z0'), undefined);
  });

  it('sorts paths shortest first, then by name, and keeps at most MAX_ROUTE_PATHS', () => {
    const routes = computeRoutes([gateway('a/g2', ['c/gc']), gateway('a/g1', ['b/gb', 'c/gc']), gateway('b/gb', ['c/gc']), gateway('c/gc')]);
    assert.deepEqual(route(routes, 'a', 'c')?.paths, [
      ['a/g1', 'c/gc'],
      ['a/g2', 'c/gc'],
      ['a/g1', 'b/gb', 'c/gc'],
    ]);

    const many = ['1', '2', '3', '4', '5'];
    const meshed = [...many.map((n) => gateway(`a/g${n}`, many.map((m) => `c/g${m}`))), ...many.map((n) => gateway(`c/g${n}`))];
    const capped = route(computeRoutes(meshed), 'a', 'c');
    assert.equal(capped?.paths.length, MAX_ROUTE_PATHS);
    assert.deepEqual(capped?.paths[0], ['a/g1', 'c/g1']);
    assert.deepEqual(capped?.paths[MAX_ROUTE_PATHS - 1], ['a/g4', 'c/g1']);
  });
});

describe('isPublishedPath', () => {
  const routes = computeRoutes([gateway('a/ga', ['b/gb']), gateway('b/gb', ['c/gc']), gateway('c/gc')]);
  const lookup = (from: string, to: string): RouteValue | undefined => route(routes, from, to);

  it('accepts exactly the published paths', () => {
    assert.equal(isPublishedPath(lookup, ['a/ga', 'b/gb', 'c/gc']), true);
    assert.equal(isPublishedPath(lookup, ['c/gc', 'b/gb', 'a/ga']), true);
    assert.equal(isPublishedPath(lookup, ['a/ga', 'b/gb']), true);
  });

  it('refuses paths nobody published: skipped hops, detours, unknown zones, empty paths', () => {
    assert.equal(isPublishedPath(lookup, ['a/ga', 'c/gc']), false);
    assert.equal(isPublishedPath(lookup, ['a/ga', 'b/gb', 'b/gx', 'c/gc']), false);
    assert.equal(isPublishedPath(lookup, ['a/ga', 'b/gb', 'd/gd']), false);
    assert.equal(isPublishedPath(lookup, ['a/ga']), false);
    assert.equal(isPublishedPath(lookup, []), false);
  });
});
