import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import type { Balancer, PickResult } from '../../sidecar/balancer/index.js';
import { OutboundForwarder } from '../../sidecar/forward/outbound.js';
import type { LinkManager } from '../../sidecar/links/link-manager.js';
import { PrometheusSidecarMetrics } from '../../sidecar/metrics/index.js';

describe('OutboundForwarder dial failures', () => {
  it('counts one failed dial shared by several waiting connections as one failure of the endpoint', async () => {
    let failures = 0;
    const endpoint = { sidecarId: 'sc-1', address: '127.0.0.1:9', weight: 1 };
    const balancer: Balancer = {
      update: () => undefined,
      candidates: () => [endpoint],
      pick: (_service, _key, tried): PickResult =>
        tried?.has('sc-1') === true
          ? { ok: false, reason: 'all-tried' }
          : { ok: true, lease: { endpoint, succeeded: () => undefined, failed: () => void (failures += 1), release: () => undefined } },
    };
    // The link manager shares one dial among concurrent first uses: every waiter gets its error.
    const sharedDial = Promise.reject(new Error('connect ECONNREFUSED'));
    sharedDial.catch(() => undefined);
    const links = { openStream: () => sharedDial } as unknown as LinkManager;
    const forwarder = new OutboundForwarder({
      balancer,
      links,
      metrics: new PrometheusSidecarMetrics({ service: 'web' }),
      logger: pino({ level: 'silent' }),
      maxDialAttempts: 1,
    });
    const refused = await Promise.all(
      [1, 2, 3].map(
        (n) =>
          new Promise<Error>((resolve) => forwarder.forwardConnection('api', new net.Socket(), { key: `10.0.0.${n}:1`, onNoRoute: resolve })),
      ),
    );
    assert.equal(refused.length, 3, 'every connection is told there is no route');
    assert.equal(failures, 1);
  });
});
