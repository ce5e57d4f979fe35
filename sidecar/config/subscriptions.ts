import { EventEmitter } from 'node:events';

/**
 * Which services' endpoints this sidecar wants pushed, and which it holds in full (PROTOCOL.md,
 * "Scoped push"). Upstream services are wanted from the start; a service first reached through
 * the proxy port is wanted on first use, and that connection waits until its endpoints are held.
 * Emits 'subscribe' and 'unsubscribe' with a service name when the wanted set changes; the
 * control-plane session sends them on.
 */
export class ConfigSubscriptions extends EventEmitter {
  readonly #wanted = new Set<string>();
  readonly #held = new Set<string>();
  /** The control plane speaks channel 1 and pushes every endpoint: every service is held. */
  #holdsAll = false;
  readonly #waiters = new Map<string, Set<() => void>>();

  constructor(services: Iterable<string> = []) {
    super();
    for (const service of services) this.#wanted.add(service);
  }

  /** Services whose endpoints are wanted. */
  get wanted(): ReadonlySet<string> {
    return this.#wanted;
  }

  /** Wanted services whose endpoints are held in full. */
  held(): string[] {
    return [...this.#held].filter((service) => this.#wanted.has(service));
  }

  /** Whether the endpoints of `service` are held in full (its changes apply). */
  holds(service: string): boolean {
    return this.#holdsAll || this.#held.has(service);
  }

  /** Asks for the endpoints of `service` (no-op if already wanted). */
  want(service: string): void {
    if (this.#wanted.has(service)) return;
    this.#wanted.add(service);
    this.emit('subscribe', service);
  }

  /** Stops wanting `service`; its endpoints are forgotten. */
  release(service: string): void {
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

  #wake(services: readonly string[]): void {
    for (const service of services) for (const wake of [...(this.#waiters.get(service) ?? [])]) wake();
  }
}
