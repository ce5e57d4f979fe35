import { createHash } from 'node:crypto';

/** @default 5000 — a first hop that failed is tried again only after this, unless nothing else is left. */
const DEFAULT_FAILURE_HOLD_MS = 5000;
/** @default 30 s (a gateway's drain time) — a gateway that said it is draining is crossed only when nothing else is left. */
const DEFAULT_DRAIN_HOLD_MS = 30_000;
/** Weight of a new RTT sample in the smoothed RTT. */
const RTT_SMOOTHING = 0.25;
/**
 * A path counts as slower than the best only when its first link's RTT exceeds the best's by
 * this factor plus RTT_MARGIN_MS: small differences and single slow probes do not reorder
 * paths (hysteresis), large ones do.
 */
const RTT_FACTOR = 1.5;
const RTT_MARGIN_MS = 2;

interface HopState {
  smoothedRttMs: number | undefined;
  failedAtMs: number | undefined;
  drainingAtMs: number | undefined;
}

/**
 * Orders a route's candidate paths for one sidecar pair: paths whose first gateway failed
 * recently, or that cross a gateway that said it is draining, go last; then shorter paths first; among paths of one length, those whose first
 * link's smoothed RTT is close to the best come first; and within that class the order is a
 * rendezvous hash of the pair, so different pairs spread over gateways of equal standing while
 * one pair keeps its choice.
 */
export class PathSelector {
  readonly #hops = new Map<string, HopState>();
  readonly #failureHoldMs: number;
  readonly #drainHoldMs: number;
  readonly #now: () => number;

  /** `now` is the clock the holds are measured on (ms). @default Date.now */
  constructor(init: { failureHoldMs?: number; drainHoldMs?: number; now?: () => number } = {}) {
    this.#failureHoldMs = init.failureHoldMs ?? DEFAULT_FAILURE_HOLD_MS;
    this.#drainHoldMs = init.drainHoldMs ?? DEFAULT_DRAIN_HOLD_MS;
    this.#now = init.now ?? Date.now;
  }

  /** A round trip measured on the link to gateway `gatewayKey`. */
  observeRtt(gatewayKey: string, rttMs: number): void {
    const state = this.#state(gatewayKey);
    state.smoothedRttMs = state.smoothedRttMs === undefined ? rttMs : state.smoothedRttMs + RTT_SMOOTHING * (rttMs - state.smoothedRttMs);
  }

  /** Dialling or tunnelling through `gatewayKey` failed: prefer other first hops for a while. */
  failed(gatewayKey: string): void {
    const state = this.#state(gatewayKey);
    state.failedAtMs = this.#now();
    state.smoothedRttMs = undefined;
  }

  /** Gateway `gatewayKey` is draining (GOAWAY on the link to it, or TUNNEL_DRAIN): prefer paths that do not cross it for a while. */
  draining(gatewayKey: string): void {
    this.#state(gatewayKey).drainingAtMs = this.#now();
  }

  /** A tunnel through `gatewayKey` came up. */
  succeeded(gatewayKey: string): void {
    const state = this.#state(gatewayKey);
    state.failedAtMs = undefined;
    state.drainingAtMs = undefined;
  }

  /** `paths` in the order to try them for the pair `pairKey`. */
  order(paths: readonly (readonly string[])[], pairKey: string): string[][] {
    const now = this.#now();
    const bestRtt = Math.min(...paths.map((path) => this.#hops.get(path[0] ?? '')?.smoothedRttMs ?? Infinity));
    const scored = paths.map((path) => {
      const state = this.#hops.get(path[0] ?? '');
      const recentlyFailed = (state?.failedAtMs !== undefined && now - state.failedAtMs < this.#failureHoldMs) || path.some((hop) => this.#isDraining(hop, now));
      const rtt = state?.smoothedRttMs;
      const slow = rtt !== undefined && Number.isFinite(bestRtt) && rtt > bestRtt * RTT_FACTOR + RTT_MARGIN_MS;
      return { path: [...path], recentlyFailed, slow, spread: rendezvous(pairKey, path.join('>')) };
    });
    scored.sort(
      (a, b) =>
        Number(a.recentlyFailed) - Number(b.recentlyFailed) ||
        a.path.length - b.path.length ||
        Number(a.slow) - Number(b.slow) ||
        a.spread.localeCompare(b.spread),
    );
    return scored.map((entry) => entry.path);
  }

  /** The smoothed RTT to each first hop that has one, for `/status`. */
  rtts(): Record<string, number> {
    const rtts: Record<string, number> = {};
    for (const [key, state] of this.#hops) if (state.smoothedRttMs !== undefined) rtts[key] = Math.round(state.smoothedRttMs * 1000) / 1000;
    return rtts;
  }

  #isDraining(gatewayKey: string, now: number): boolean {
    const since = this.#hops.get(gatewayKey)?.drainingAtMs;
    return since !== undefined && now - since < this.#drainHoldMs;
  }

  #state(gatewayKey: string): HopState {
    let state = this.#hops.get(gatewayKey);
    if (state === undefined) {
      state = { smoothedRttMs: undefined, failedAtMs: undefined, drainingAtMs: undefined };
      this.#hops.set(gatewayKey, state);
    }
    return state;
  }
}

function rendezvous(pairKey: string, pathKey: string): string {
  return createHash('sha1').update(pairKey).update('\0').update(pathKey).digest('hex');
}
