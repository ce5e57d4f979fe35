import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { YoungGenerationTrimmer } from './young-generation-trimmer.js';

/**
 * Tunes V8's garbage collector for a process that forwards traffic (a sidecar): turns
 * incremental marking off, and gives back the young generation that start-up grew once the
 * process is idle.
 *
 * Why incremental marking off: a sidecar's heap is small (12–15 MB, mostly module code) while
 * it reads and writes buffers at line rate. In that regime V8 starts an incremental mark after
 * nearly every scavenge, whatever the old generation's real headroom: forwarding 2 GiB cost
 * each sidecar 60–75 full mark-compacts, each marking the whole heap, about a quarter of its
 * CPU (a plain Node TLS pipe with a 4 MB heap had none). Without incremental marking a full GC
 * runs only when the old generation reaches its limit: 0–1 per 2 GiB, and the pair's CPU fell
 * from 5–7 s to 4.3 s (bench/NOTES.md). The price is that such a GC is one pause instead of
 * many slices: 12–14 ms at this heap size.
 *
 * The flag is read each time V8 decides whether to start marking, so setting it at start-up,
 * before traffic, takes effect for the whole process.
 *
 * Why the trimmer: start-up (module compilation, key generation, TLS contexts) grows the young
 * generation to its 16 MiB maximum, and V8 shrinks it only in a full GC that runs while little
 * is allocated, the one its memory reducer would start in an idle process; the memory reducer
 * starts its GCs as incremental marks, which are off. So an idle sidecar kept 15 MB of young
 * generation it did not use (bench/NOTES.md, 2026-12-02).
 *
 * @returns the trimmer, already running on an unreferenced timer (stop it to end its checks).
 */
export function tuneGarbageCollectorForForwarding(): YoungGenerationTrimmer {
  setFlagsFromString('--no-incremental-marking');
  const trimmer = new YoungGenerationTrimmer({ readYoungGeneration, collectGarbage: fullGarbageCollection() });
  trimmer.start();
  return trimmer;
}

function readYoungGeneration(): { sizeBytes: number; usedBytes: number } {
  const space = getHeapSpaceStatistics().find((candidate) => candidate.space_name === 'new_space');
  return { sizeBytes: space?.space_size ?? 0, usedBytes: space?.space_used_size ?? 0 };
}

/**
 * V8's `gc()`, without starting the process with `--expose-gc`: the flag, set now, exposes it
 * in contexts made from now on, and the main context stays as it was.
 */
function fullGarbageCollection(): () => void {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  setFlagsFromString('--no-expose-gc');
  return gc;
}
