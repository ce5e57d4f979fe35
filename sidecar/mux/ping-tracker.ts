/**
 * Outstanding PINGs of a session: nonces matched to their PONGs to measure round trips.
 */

/** Nonces stay below 2^31 so that every implementation reads them as plain integers. */
const NONCE_LIMIT = 0x80000000;

interface PendingPing {
  readonly sentAtMs: number;
  readonly resolve: (rttMs: number) => void;
  readonly reject: (error: Error) => void;
}

/** Matches PONGs to PINGs and keeps the last measured round-trip time. */
export class PingTracker {
  readonly #pending = new Map<number, PendingPing>();
  #nextNonce = 1;
  #lastRttMs: number | undefined;

  /** Registers a new PING; returns its nonce and the promise of its RTT in ms. */
  start(): { nonce: number; rtt: Promise<number> } {
    const nonce = this.#nextNonce;
    this.#nextNonce = (this.#nextNonce + 1) % NONCE_LIMIT;
    const rtt = new Promise<number>((resolve, reject) => {
      this.#pending.set(nonce, { sentAtMs: performance.now(), resolve, reject });
    });
    return { nonce, rtt };
  }

  /** Settles the PING a PONG answers. A PONG for no outstanding PING is ignored. */
  onPong(nonce: number): void {
    const ping = this.#pending.get(nonce);
    if (ping === undefined) return;
    this.#pending.delete(nonce);
    const rttMs = performance.now() - ping.sentAtMs;
    this.#lastRttMs = rttMs;
    ping.resolve(rttMs);
  }

  /** Rejects every outstanding PING: the link is gone. */
  failAll(error: Error): void {
    for (const ping of this.#pending.values()) ping.reject(error);
    this.#pending.clear();
  }

  /** The round-trip time of the last answered PING, in ms. */
  get lastRttMs(): number | undefined {
    return this.#lastRttMs;
  }
}
