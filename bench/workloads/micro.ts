/** Micro-benchmarks of Trellis's frame codec and hash ring (clients/micro-benchmarks.ts). */
import { fileURLToPath } from 'node:url';
import type { MicroReport } from '../clients/micro-benchmarks.js';
import { CONTENDER_IDS, isTrellisVariant, VARIANT_NOT_RUN } from '../results.js';
import type { Workload, WorkloadContext } from './workload.js';
import { explainAll, rowsOf, shortError } from './workload.js';

const CASES = 5;
/** Endpoints on the ring of the lookup case: a large service. */
const RING_ENDPOINTS = 100;

export const microWorkload: Workload = {
  id: 'micro',
  title: 'micro-benchmarks (frame codec, hash ring)',
  async run(context: WorkloadContext) {
    const rows = rowsOf('micro', [
      { metric: 'micro.encode_16k.mb_s', label: 'encode 16 KiB DATA frames (header only; payload not copied)', unit: 'MB/s', better: 'higher' },
      { metric: 'micro.encode_16k.ns', label: 'encode 16 KiB DATA frame', unit: 'ns/frame', better: 'lower' },
      { metric: 'micro.decode_16k.mb_s', label: 'decode 16 KiB DATA frames from 64 KiB reads', unit: 'MB/s', better: 'higher' },
      { metric: 'micro.decode_16k.ns', label: 'decode 16 KiB DATA frame', unit: 'ns/frame', better: 'lower' },
      { metric: 'micro.encode_64.mb_s', label: 'encode 64-byte DATA frames', unit: 'MB/s', better: 'higher' },
      { metric: 'micro.encode_64.ns', label: 'encode 64-byte DATA frame', unit: 'ns/frame', better: 'lower' },
      { metric: 'micro.decode_64.mb_s', label: 'decode 64-byte DATA frames from 64 KiB reads', unit: 'MB/s', better: 'higher' },
      { metric: 'micro.decode_64.ns', label: 'decode 64-byte DATA frame', unit: 'ns/frame', better: 'lower' },
      { metric: 'micro.ring.ns', label: `hash-ring lookup, 3 candidates of ${RING_ENDPOINTS} endpoints`, unit: 'ns/lookup', better: 'lower' },
    ]);
    for (const id of CONTENDER_IDS) explainAll(rows, id, isTrellisVariant(id) ? VARIANT_NOT_RUN : 'n/a (Trellis internals)');
    const script = fileURLToPath(new URL('../clients/micro-benchmarks.js', import.meta.url));
    const timeoutMs = 60_000 + CASES * context.sizes.microSeconds * 1.5 * 1000;
    try {
      const result = await context.supervisor.run('micro-benchmarks', process.execPath, [script, String(context.sizes.microSeconds), String(RING_ENDPOINTS)], timeoutMs);
      if (result.code !== 0) throw new Error(`micro-benchmarks exited ${result.code}: ${result.stderr.trim()}`);
      const report = JSON.parse(result.stdout.trim()) as MicroReport;
      const figures: Record<string, number> = {
        'micro.encode_16k.mb_s': report.encodeLarge.mbPerSecond,
        'micro.encode_16k.ns': report.encodeLarge.nsPerFrame,
        'micro.decode_16k.mb_s': report.decodeLarge.mbPerSecond,
        'micro.decode_16k.ns': report.decodeLarge.nsPerFrame,
        'micro.encode_64.mb_s': report.encodeSmall.mbPerSecond,
        'micro.encode_64.ns': report.encodeSmall.nsPerFrame,
        'micro.decode_64.mb_s': report.decodeSmall.mbPerSecond,
        'micro.decode_64.ns': report.decodeSmall.nsPerFrame,
        'micro.ring.ns': report.ringNsPerLookup,
      };
      for (const row of rows) row.cells.trellis = figures[row.metric] ?? 'no figure';
    } catch (error) {
      context.observe(`micro: ${(error as Error).message}`);
      explainAll(rows, 'trellis', `failed: ${shortError(error)}`);
    }
    return rows;
  },
};
