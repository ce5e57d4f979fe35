import { EventEmitter } from 'node:events';

/**
 * Which services' endpoints this sidecar wants pushed, and which it holds in full (PROTOCOL.md,
 * "Scoped push"). Upstream services are wanted from the start; a service first reached through
 * the proxy port is wanted on first use, and that connection waits until its endpoints are held.
 * A service wanted on use (not an upstream) that sees no connection for `idleReleaseMs` is
 * released, so a sidecar that once reached many services does not hold all of them forever.
 * Emits 'subscribe' and 'unsubscribe' with a service name when the wanted set changes; the
 * control-plane session sends them on.
 */
/** @default 600_000 — a service reached on use is released after 10 minutes without a connection. */
export const DEFAULT_SUBSCRIPTION_IDLE_MS = 600_000;

export class ConfigSubscriptions extends EventEmitter {
  readonly #wanted = new Set<string>();
  /** Upstream services: wanted for the sidecar's whole life. */
  readonly #pinned: Set<string>;
  /** Services wanted on use, and when they were last used. */
  readonly #lastUsedAt = new Map<string, number>();
  readonly #idleReleaseMs: number;
  readonly #sweepTimer: NodeJS.Timeout;
  readonly #held = new Set<string>();
  /** The control plane speaks channel 1 and pushes every endpoint: every service is held. */
  #holdsAll = false;
  readonly #waiters = new Map<string, Set<() => void>>();

  /** `services`: the upstreams, wanted from the start and never released. */
  constructor(services: Iterable<string> = [], options: { idleReleaseMs?: number } = {}) {
    super();
    for (const service of services) this.#wanted.add(service);
    this.#pinned = new Set(this.#wanted);
    this.#idleReleaseMs = options.idleReleaseMs ?? DEFAULT_SUBSCRIPTION_IDLE_MS;
    this.#sweepTimer = setInterval(() => this.#releaseIdle(), Math.max(10, this.#idleReleaseMs / 2));
    this.#sweepTimer.unref();
  }

  /** Stops releasing idle services. */
  close(): void {
    clearInterval(this.#sweepTimer);
  }

  /** Services whose endpoints are wanted. */
  get wanted(): ReadonlySet<string> {
    return this.#wanted;
  }

  /** Whether the control plane pushes every endpoint (channel 1), so that every service is held. */
  get holdsAll(): boolean {
    return this.#holdsAll;
  }

  /** Wanted services whose endpoints are held in full. */
  held(): string[] {
    return [...this.#held].filter((service) => this.#wanted.has(service));
  }

  /** Whether the endpoints of `service` are held in full (its changes apply). */
  holds(service: string): boolean {
    return this.#holdsAll || this.#held.has(service);
  }

  /** Asks for the endpoints of `service`, or marks it used if already wanted. */
  want(service: string): void {
    if (!this.#pinned.has(service)) this.#lastUsedAt.set(service, Date.now());
    if (this.#wanted.has(service)) return;
    this.#wanted.add(service);
    this.emit('subscribe', service);
  }

  /** Stops wanting `service`; its endpoints are forgotten. */
  release(service: string): void {
    this.#lastUsedAt.delete(service);
    if (!this.#wanted.delete(service)) return;
    this.#held.delete(service);
    this.emit('unsubscribe', service);
  }

  /**
   * Resolves true once the endpoints of `service` are held (at once if they are), false after
   * `timeoutMs`: the caller then goes on with what it has.
   */
  ready(service: string, timeoutMs: number): Promise<boolean> {
    if (this.holds(service)) return Promise.resolve(true);
    return new Promise((resolve) => {
      const waiters = this.#waiters.get(service) ?? new Set<() => void>();
      this.#waiters.set(service, waiters);
      const done = (): void => {
        clearTimeout(timer);
        waiters.delete(done);
        if (waiters.size === 0 && this.#waiters.get(service) === waiters) this.#waiters.delete(service);
        resolve(this.holds(service));
      };
      const timer = setTimeout(done, timeoutMs);
      timer.unref();
      waiters.add(done);
    });
  }

  /** A snapshot named exactly these services (channel 2). */
  holdExactly(services: readonly string[]): void {
    this.#holdsAll = false;
    this.#held.clear();
    this.hold(services);
  }

  /** A message carried these services in full. */
  hold(services: readonly string[]): void {
    for (const service of services) this.#held.add(service);
    this.#wake(services);
  }

  /** The control plane pushes everything (channel 1). */
  holdAll(): void {
    this.#holdsAll = true;
    this.#wake([...this.#waiters.keys()]);
  }

  #releaseIdle(): void {
    const before = Date.now() - this.#idleReleaseMs;
    for (const [service, usedAt] of this.#lastUsedAt) if (usedAt <= before) this.release(service);
  }

  #wake(services: readonly string[]): void {
    for (const service of services) for (const wake of [...(this.#waiters.get(service) ?? [])]) wake();
  }
}
