import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { BalancerEndpoint, HashPolicy } from '../../sidecar/balancer/index.js';
import { formatHashPolicy, HashRingBalancer, hashKeyOf, parseHashPolicy } from '../../sidecar/balancer/index.js';

const endpoints: BalancerEndpoint[] = [1, 2, 3, 4].map((n) => ({ sidecarId: `sc-${n}`, address: `127.0.0.1:${7000 + n}`, weight: 1 }));

/** The endpoint a connection from `address:port` goes to, with nothing else open. */
function endpointFor(balancer: HashRingBalancer, policy: HashPolicy, address: string, port: number): string {
  const picked = balancer.pick('api', hashKeyOf(policy, { address, port }));
  assert.ok(picked.ok);
  picked.lease.release();
  return picked.lease.endpoint.sidecarId;
}

describe('hash policies', () => {
  const balancer = new HashRingBalancer();
  balancer.update('api', endpoints);
  const hosts = Array.from({ length: 40 }, (_, i) => `10.0.${i >> 4}.${i & 15}`);
  const ports = Array.from({ length: 25 }, (_, i) => 40_000 + i * 7);

  it('source-ip: every connection of one host goes to one endpoint, whatever its port', () => {
    const policy = parseHashPolicy('source-ip');
    const used = new Set<string>();
    for (const host of hosts) {
      const first = endpointFor(balancer, policy, host, ports[0]!);
      for (const port of ports) assert.equal(endpointFor(balancer, policy, host, port), first, `${host}:${port}`);
      used.add(first);
    }
    assert.ok(used.size > 1, 'hosts spread over several endpoints');
  });

  it('source-ip-port (the default): one host spreads its connections by port', () => {
    const policy = parseHashPolicy('source-ip-port');
    for (const host of hosts.slice(0, 5)) {
      const used = new Set(ports.map((port) => endpointFor(balancer, policy, host, port)));
      assert.ok(used.size > 1, `${host} used ${[...used].join(', ')}`);
      // Same address and port, same endpoint.
      for (const port of ports) assert.equal(endpointFor(balancer, policy, host, port), endpointFor(balancer, policy, host, port));
    }
  });

  it('fixed:KEY: every connection from anywhere goes to the key owner while its load allows', () => {
    const policy = parseHashPolicy('fixed:tenant-7');
    const owner = balancer.candidates('api', 'tenant-7', 1)[0]?.sidecarId;
    for (const host of hosts) for (const port of ports.slice(0, 3)) assert.equal(endpointFor(balancer, policy, host, port), owner);
  });

  it('parses and formats the three policies, and names the flag when a policy is wrong', () => {
    for (const text of ['source-ip', 'source-ip-port', 'fixed:a:b c']) assert.equal(formatHashPolicy(parseHashPolicy(text)), text);
    for (const bad of ['', 'source', 'fixed:', `fixed:${'k'.repeat(257)}`, 'SOURCE-IP']) {
      assert.throws(
        () => parseHashPolicy(bad, '--hash api'),
        (error: Error & { code?: string }) => error.code === 'TRELLIS_ERR_BAD_HASH_POLICY' && error.message.startsWith('--hash api'),
      );
    }
  });
});
