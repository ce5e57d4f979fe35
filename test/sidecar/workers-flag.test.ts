import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { UsageError } from '../../cli/args.js';
import { MAX_WORKERS, parseWorkers, workerPlan } from '../../cli/workers-flag.js';
import { runTrellis } from '../support/processes.js';

describe('--workers', () => {
  it('takes a whole number or auto (one per core, capped)', () => {
    assert.equal(parseWorkers(undefined), 1);
    assert.equal(parseWorkers('1'), 1);
    assert.equal(parseWorkers('4'), 4);
    assert.equal(parseWorkers('auto', 2), 2);
    assert.equal(parseWorkers('auto', 1000), MAX_WORKERS);
  });

  it('refuses anything else with TRELLIS_ERR_USAGE', () => {
    for (const text of ['0', '-1', '1.5', 'two', '', String(MAX_WORKERS + 1), '2x']) {
      assert.throws(() => parseWorkers(text), (error: unknown) => error instanceof UsageError && error.code === 'TRELLIS_ERR_USAGE', text);
    }
  });

  it('forwards in the process itself for one worker', () => {
    assert.equal(workerPlan(1, { logName: 'sidecar:web', logFormat: 'json' }), undefined);
    const plan = workerPlan(2, { logName: 'sidecar:web', logFormat: 'json' });
    assert.equal(plan?.count, 2);
    assert.match(plan?.entry ?? '', /sidecar-worker\.js$/);
  });

  it('exits 2 for a bad --workers, before joining, in sidecar and run', async () => {
    const sidecar = await runTrellis(['sidecar', '--service', 'web', '--token', 'x', '--control-plane', 'https://127.0.0.1:1', '--listen', '127.0.0.1:0', '--workers', 'many']);
    assert.equal(sidecar.code, 2, sidecar.stderr);
    assert.ok(sidecar.stderr.includes('--workers must be a whole number') && sidecar.stderr.includes('[TRELLIS_ERR_USAGE]'), sidecar.stderr);
    const run = await runTrellis(['run', '--service', 'web', '--token', 'x', '--control-plane', 'https://127.0.0.1:1', '--workers', '0', '--', 'true']);
    assert.equal(run.code, 2, run.stderr);
    assert.ok(run.stderr.includes('[TRELLIS_ERR_USAGE]'), run.stderr);
  });
});
