// What a real sidecar process holds once started: no modules it does not use (the YAML parser
// without --config, node-forge, which only the CA needs), and a young generation still at its
// initial size (cli/gc-tuning.ts; start-up alone grew it to 16–32 MB before the tuning came
// first). Modules are read from Node's own trace of CommonJS loads (NODE_DEBUG=module).
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createToken, scrapeMetric, startControlPlane } from '../support/mesh.js';
import type { ControlPlaneProcess } from '../support/mesh.js';
import { runTrellis, spawnTrellis } from '../support/processes.js';
import { INITIAL_YOUNG_GENERATION_BYTES } from '../support/young-generation.js';

/** Packages whose files Node loaded, from its `NODE_DEBUG=module` lines on stderr. */
function loadedPackages(stderr: string): Set<string> {
  const packages = new Set<string>();
  for (const match of stderr.matchAll(/^MODULE \d+: load "[^"]*\/node_modules\/((?:@[^/]+\/)?[^/"]+)/gm)) packages.add(match[1] ?? '');
  return packages;
}


describe('sidecar start-up footprint', () => {
  let cp: ControlPlaneProcess;
  before(async () => {
    cp = await startControlPlane();
  });
  after(() => cp.proc.stop());

  it('loads neither yaml nor node-forge without --config, and keeps its young generation at its initial size', async () => {
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
      const youngBytes = await scrapeMetric({ adminUrl: adminUrl ?? '' }, 'trellis_sidecar_process_nodejs_heap_space_size_total_bytes', { space: 'new' });
      assert.ok(youngBytes > 0, 'the young generation size is among the metrics');
      assert.ok(youngBytes <= INITIAL_YOUNG_GENERATION_BYTES, `young generation grew to ${youngBytes} bytes by the time the sidecar was ready`);
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
