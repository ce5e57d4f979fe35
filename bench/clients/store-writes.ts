/**
 * Micro-benchmark of the file store's writes with a state of ENTRIES endpoint-sized values (what
 * ENTRIES registered sidecars leave in it): one writer awaiting each put, then WRITERS writers
 * at once (group commit), each case for SECONDS. Prints one JSON line (StoreWritesReport) with
 * writes per second, latency and the process's CPU per write, the cost that grows with the
 * state when every write serialises all of it.
 *
 * usage: node store-writes.js ENTRIES SECONDS [WRITERS]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileStore } from '../../control-plane/store/file-store.js';
import { percentile } from '../stats.js';

/** Puts per transaction while filling the store, so that filling stays quick. */
const FILL_BATCH = 500;
const DEFAULT_WRITERS = 64;

export interface StoreWritesCase {
  writes: number;
  writesPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  cpuUsPerWrite: number;
}

export interface StoreWritesReport {
  entries: number;
  sequential: StoreWritesCase;
  concurrent: StoreWritesCase & { writers: number };
}

const [entries, seconds, writers] = [Number(process.argv[2]), Number(process.argv[3]), Number(process.argv[4] ?? DEFAULT_WRITERS)];
if (!Number.isInteger(entries) || entries < 0 || !(seconds > 0) || !Number.isInteger(writers) || writers < 1) {
  process.stderr.write('usage: store-writes ENTRIES SECONDS [WRITERS]\n');
  process.exit(2);
}

/** An endpoint as the registry stores it, about 250 bytes of JSON. */
function endpoint(i: number, weight: number): { sidecarId: string; service: string; addresses: string[]; zone: string; weight: number; healthy: boolean } {
  return { sidecarId: `sc-${i.toString(16).padStart(12, '0')}`, service: `svc-${Math.floor(i / 10)}`, addresses: [`tls://10.0.${(i >> 8) & 255}.${i & 255}:7443`], zone: 'zone-a', weight, healthy: true };
}

async function runCase(store: FileStore, concurrency: number): Promise<StoreWritesCase> {
  const latencies: number[] = [];
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  const stopAt = started + seconds * 1000;
  let next = 0;
  const writer = async (): Promise<void> => {
    while (performance.now() < stopAt) {
      const i = next++ % Math.max(1, entries);
      const t0 = performance.now();
      await store.transaction([
        { type: 'put', key: `config/entries/endpoint/${i}`, value: endpoint(i, next) },
        { type: 'put', key: 'config/version', value: next },
      ]);
      latencies.push(performance.now() - t0);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, writer));
  const elapsedMs = performance.now() - started;
  const cpu = process.cpuUsage(cpuBefore);
  return {
    writes: latencies.length,
    writesPerSecond: (latencies.length * 1000) / elapsedMs,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    cpuUsPerWrite: (cpu.user + cpu.system) / latencies.length,
  };
}

const dir = await mkdtemp(join(tmpdir(), 'trellis-store-writes-'));
try {
  const store = await FileStore.open(dir);
  for (let from = 0; from < entries; from += FILL_BATCH) {
    const ops = [];
    for (let i = from; i < Math.min(entries, from + FILL_BATCH); i++) ops.push({ type: 'put' as const, key: `config/entries/endpoint/${i}`, value: endpoint(i, 1) });
    await store.transaction(ops);
  }
  const sequential = await runCase(store, 1);
  const concurrent = await runCase(store, writers);
  await store.close();
  const report: StoreWritesReport = { entries, sequential, concurrent: { ...concurrent, writers } };
  process.stdout.write(`${JSON.stringify(report)}\n`);
} finally {
  await rm(dir, { recursive: true, force: true });
}
