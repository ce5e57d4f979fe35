// What a real sidecar process holds once started: no modules it does not use (the YAML parser
// without --config, node-forge, which only the CA needs), and a young generation given back
// once it is idle. Modules are read from Node's own trace of CommonJS loads (NODE_DEBUG=module).
// The trim is checked with a generous bound: without the trimmer a full GC that V8 starts on
// its own may also shrink the young generation, later (seen once after 18 s); the trimmer's
// decisions are tested in test/cli/young-generation-trimmer.test.ts.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createToken, scrapeMetric, startControlPlane } from '../support/mesh.js';
import type { ControlPlaneProcess } from '../support/mesh.js';
import { runTrellis, spawnTrellis } from '../support/processes.js';

/** Packages whose files Node loaded, from its `NODE_DEBUG=module` lines on stderr. */
function loadedPackages(stderr: string): Set<string> {
  const packages = new Set<string>();
  for (const match of stderr.matchAll(/^MODULE \d+: load "[^"]*\/node_modules\/((?:@[^/]+\/)?[^/"]+)/gm)) packages.add(match[1] ?? '');
  return packages;
}

const YOUNG_GENERATION_TRIMMED_BYTES = 4 * 1024 * 1024;
const TRIM_WAIT_MS = 60_000;
const SCRAPE_EVERY_MS = 2_000;

describe('sidecar start-up footprint', () => {
  let cp: ControlPlaneProcess;
  before(async () => {
    cp = await startControlPlane();
  });
  after(() => cp.proc.stop());

  it('loads neither yaml nor node-forge without --config, and gives back its young generation when idle', async () => {
    const token = await createToken(cp, 'web');
    const sidecar = spawnTrellis(
      ['sidecar', '--service', 'web', '--token', token, '--control-plane', cp.url, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--upstream', 'api=127.0.0.1:0'],
      { NODE_DEBUG: 'module' },
    );
    try {
      const [, adminUrl] = await sidecar.waitForOutput(/admin on (http:\/\/\S+)/);
      const packages = loadedPackages(sidecar.stderr());
      assert.ok(packages.has('prom-client'), 'the module trace is read (prom-client is loaded)');
      assert.ok(!packages.has('yaml'), 'yaml loaded without --config');
      assert.ok(!packages.has('node-forge'), 'node-forge loaded by a sidecar');
      const deadline = Date.now() + TRIM_WAIT_MS;
      let youngBytes = Number.POSITIVE_INFINITY;
      const readings: number[] = [];
      while (Date.now() < deadline) {
        youngBytes = await scrapeMetric({ adminUrl: adminUrl ?? '' }, 'trellis_sidecar_process_nodejs_heap_space_size_total_bytes', { space: 'new' });
        readings.push(youngBytes);
        assert.ok(youngBytes > 0, 'the young generation size is among the metrics');
        if (youngBytes <= YOUNG_GENERATION_TRIMMED_BYTES) break;
        await new Promise((resolve) => setTimeout(resolve, SCRAPE_EVERY_MS));
      }
      assert.ok(youngBytes <= YOUNG_GENERATION_TRIMMED_BYTES, `young generation still ${youngBytes} bytes after ${TRIM_WAIT_MS} ms idle (readings: ${readings.join(' ')})`);
    } finally {
      await sidecar.stop();
    }
  });

  it('loads yaml when given --config', async () => {
    const file = join(cp.dataDir, 'broken.yaml');
    await writeFile(file, 'service: [web\n');
    const result = await runTrellis(['sidecar', '--config', file], { NODE_DEBUG: 'module' });
    assert.equal(result.code, 2);
    assert.match(result.stderr, /\[TRELLIS_ERR_CONFIG_FILE\]/);
    assert.ok(loadedPackages(result.stderr).has('yaml'));
  });
});
