import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PrometheusSidecarMetrics } from '../../sidecar/metrics/prometheus-metrics.js';

/** The value of `trellis_sidecar_bytes_total{direction=…}` in a scrape. */
async function scrapedBytes(metrics: PrometheusSidecarMetrics, direction: 'in' | 'out'): Promise<number | undefined> {
  const text = await metrics.registry.metrics();
  const match = new RegExp(`^trellis_sidecar_bytes_total\\{direction="${direction}",service="api"\\} (\\d+)$`, 'm').exec(text);
  return match === null ? undefined : Number(match[1]);
}

describe('PrometheusSidecarMetrics: forwarded bytes', () => {
  it('shows both directions at 0 before traffic, then the running totals across scrapes', async () => {
    const metrics = new PrometheusSidecarMetrics({ service: 'api' });
    assert.equal(await scrapedBytes(metrics, 'in'), 0);
    assert.equal(await scrapedBytes(metrics, 'out'), 0);

    metrics.bytes('in', 1000);
    metrics.bytes('out', 30);
    metrics.bytes('in', 24);
    assert.equal(await scrapedBytes(metrics, 'in'), 1024);
    assert.equal(await scrapedBytes(metrics, 'out'), 30);

    // A scrape with no traffic since keeps the totals; later bytes add to them.
    assert.equal(await scrapedBytes(metrics, 'in'), 1024);
    metrics.bytes('out', 12);
    assert.equal(await scrapedBytes(metrics, 'out'), 42);
    assert.equal(await scrapedBytes(metrics, 'in'), 1024);
  });
});
