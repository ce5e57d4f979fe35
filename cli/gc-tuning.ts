import { setFlagsFromString } from 'node:v8';

/**
 * Tunes V8's garbage collector for a process that forwards traffic (a sidecar): turns
 * incremental marking off.
 *
 * Why: a sidecar's heap is small (12–15 MB, mostly module code) while it reads and writes
 * buffers at line rate. In that regime V8 starts an incremental mark after nearly every
 * scavenge, whatever the old generation's real headroom: forwarding 2 GiB cost each sidecar
 * 60–75 full mark-compacts, each marking the whole heap, about a quarter of its CPU (a plain
 * Node TLS pipe with a 4 MB heap had none). Without incremental marking a full GC runs only
 * when the old generation reaches its limit: 0–1 per 2 GiB, and the pair's CPU fell from
 * 5–7 s to 4.3 s (bench/NOTES.md). The price is that such a GC is one pause instead of many
 * slices: 12–14 ms at this heap size.
 *
 * The flag is read each time V8 decides whether to start marking, so setting it at start-up,
 * before traffic, takes effect for the whole process.
 */
export function tuneGarbageCollectorForForwarding(): void {
  setFlagsFromString('--no-incremental-marking');
}
