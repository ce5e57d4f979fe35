import { setFlagsFromString } from 'node:v8';

/**
 * Tunes V8's garbage collector for a process that forwards traffic (a sidecar, a gateway, a
 * forwarding worker). Call it before the process loads its forwarding code: both flags are
 * read by V8 each time it decides, so they hold from then on, but start-up's own allocation
 * would already have grown the young generation.
 *
 * Incremental marking off: a forwarding process's heap is small (12–15 MB, mostly module code)
 * while it reads and writes buffers at line rate. In that regime V8 starts an incremental mark
 * after nearly every scavenge, whatever the old generation's real headroom: forwarding 2 GiB
 * cost each sidecar 60–75 full mark-compacts, each marking the whole heap, about a quarter of
 * its CPU. Without incremental marking a full GC runs only when the old generation reaches its
 * limit: 0–1 per 2 GiB, and the pair's CPU fell from 5–7 s to 4.3 s (bench/NOTES.md). The
 * price is that such a GC is one pause instead of many slices: 12–14 ms at this heap size.
 *
 * The young generation kept at its initial size (`--semi-space-growth-factor=1`): V8 doubles
 * it, up to 16 MiB per semi-space (32 MB of memory), whenever more bytes survive scavenges
 * than it holds. Start-up does that (module compilation, keys, TLS contexts), and so do
 * thousands of long-lived streams, which survive by design. The extra room bought nothing
 * measurable in bulk, request and churn CPU, and cost 25–30 MB of peak memory with 10,000
 * streams and 5–8 MB idle (bench/NOTES.md, 2026-12-06).
 */
export function tuneGarbageCollectorForForwarding(): void {
  setFlagsFromString('--no-incremental-marking');
  setFlagsFromString('--semi-space-growth-factor=1');
}
