import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { SidecarInit } from '../sidecar/sidecar.js';
import { UsageError } from './args.js';
import type { WorkerEntryOptions } from './forwarding-worker-process.js';

/** Most forwarding workers a sidecar takes: beyond any core count it would run on, so mostly a typo catcher. */
export const MAX_WORKERS = 64;

/** The `--workers` flag of `trellis sidecar` and `trellis run`, for `parseFlags`. */
export const workersOption = { workers: { type: 'string' } } as const;

/** Help lines of {@link workersOption}. */
export const workersHelp = `  --workers N|auto          forward in N worker processes sharing the listeners (auto: one per
                            core); one identity and control-plane session either way (default 1:
                            forward in the sidecar's own process; see docs/operations.md, "Workers")`;

/** `--workers`: a whole number 1..{@link MAX_WORKERS}, or `auto` (one per core the process may use). */
export function parseWorkers(text: string | undefined, cores: number = availableParallelism()): number {
  if (text === undefined) return 1;
  if (text.trim() === 'auto') return Math.max(1, Math.min(MAX_WORKERS, cores));
  const value = Number(text);
  if (!/^\d+$/.test(text.trim()) || value < 1 || value > MAX_WORKERS) throw new UsageError(`--workers must be a whole number 1..${MAX_WORKERS} or auto, got "${text}"`);
  return value;
}

/** The worker processes to start for `count`: none for 1, so that the sidecar forwards in its own process. */
export function workerPlan(count: number, entryOptions: WorkerEntryOptions): SidecarInit['workers'] {
  if (count <= 1) return undefined;
  return { count, entry: fileURLToPath(new URL('./sidecar-worker.js', import.meta.url)), entryOptions };
}
