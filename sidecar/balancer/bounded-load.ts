/**
 * Consistent hashing with bounded loads (Mirrokni, Thorup, Zadimoghaddam, 2018): a new stream
 * may go to an endpoint only while that endpoint, counting the new stream, stays within
 * `ceil(c × its weighted share of all active streams)`. The sum of the bounds is at least
 * `c × (streams + 1)`, so with `c ≥ 1` some endpoint always has room, and a hot key spills
 * over to the next endpoints on the ring instead of sinking its own.
 */

/** The default `c`: an endpoint may carry 25 % more than its share. */
export const DEFAULT_LOAD_FACTOR = 1.25;

/** Floating-point slack, so that `1.2 × 5 / 2` counts as 3 and not as a hair above it. */
const EPSILON = 1e-9;

/**
 * The most streams an endpoint of `weight` may carry once one more stream is added, when the
 * endpoints that share the load carry `totalActiveStreams` and weigh `totalWeight`.
 */
export function loadBound(weight: number, totalActiveStreams: number, totalWeight: number, loadFactor: number): number {
  return Math.ceil((loadFactor * (totalActiveStreams + 1) * weight) / totalWeight - EPSILON);
}

/** An endpoint as the bounded-load walk sees it. */
export interface LoadedEndpoint {
  weight: number;
  activeStreams: number;
}

/**
 * Walks `ringOrder` (the key's owner first) to the first endpoint with room under its bound.
 * Returns its index and how many endpoints were passed over for load; when none has room
 * (the bound was computed over endpoints not all in `ringOrder`), the least loaded for its
 * weight, with nothing counted as passed over.
 */
export function pickUnderBound(
  ringOrder: readonly LoadedEndpoint[],
  totalActiveStreams: number,
  totalWeight: number,
  loadFactor: number,
): { index: number; skipped: number } {
  for (let index = 0; index < ringOrder.length; index++) {
    const endpoint = ringOrder[index]!;
    if (endpoint.activeStreams + 1 <= loadBound(endpoint.weight, totalActiveStreams, totalWeight, loadFactor)) {
      return { index, skipped: index };
    }
  }
  let best = 0;
  for (let index = 1; index < ringOrder.length; index++) {
    const endpoint = ringOrder[index]!;
    const current = ringOrder[best]!;
    if ((endpoint.activeStreams + 1) / endpoint.weight < (current.activeStreams + 1) / current.weight) best = index;
  }
  return { index: best, skipped: 0 };
}
