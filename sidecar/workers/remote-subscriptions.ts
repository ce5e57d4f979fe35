import { EventEmitter } from 'node:events';
import type { EndpointSubscriptions } from '../forward/outbound.js';
import type { HeldServices } from './messages.js';

/**
 * How often a worker tells the primary again that it uses a service (ms): well within the
 * primary's idle release (`DEFAULT_SUBSCRIPTION_IDLE_MS`, ten minutes), and rare next to connections.
 */
export const WANT_REFRESH_MS = 10_000;

/**
 * A worker's view of the primary's subscriptions: what the primary holds arrives with each
 * config copy, and a first use of a service is sent to the primary, which subscribes.
 */
export class RemoteSubscriptions implements EndpointSubscriptions {
  readonly #sendWant: (service: string) => void;
  readonly #now: () => number;
  readonly #lastSentAt = new Map<string, number>();
  readonly #changes = new EventEmitter();
  #held: HeldServices = { all: false, services: [] };
  #heldSet = new Set<string>();

  constructor(sendWant: (service: string) => void, now: () => number = Date.now) {
    this.#sendWant = sendWant;
    this.#now = now;
    this.#changes.setMaxListeners(0);
  }

  /** The primary's held services changed. */
  update(held: HeldServices): void {
    this.#held = held;
    this.#heldSet = new Set(held.services);
    this.#changes.emit('change');
  }

  holds(service: string): boolean {
    return this.#held.all || this.#heldSet.has(service);
  }

  want(service: string): void {
    const now = this.#now();
    const last = this.#lastSentAt.get(service);
    if (last !== undefined && now - last < WANT_REFRESH_MS && this.holds(service)) return;
    this.#lastSentAt.set(service, now);
    this.#sendWant(service);
  }

  ready(service: string, timeoutMs: number): Promise<boolean> {
    if (this.holds(service)) return Promise.resolve(true);
    return new Promise((resolve) => {
      const check = (): void => {
        if (this.holds(service)) done();
      };
      const done = (): void => {
        clearTimeout(timer);
        this.#changes.off('change', check);
        resolve(this.holds(service));
      };
      const timer = setTimeout(done, timeoutMs);
      timer.unref();
      this.#changes.on('change', check);
    });
  }
}
