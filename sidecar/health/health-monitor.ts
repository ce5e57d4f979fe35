import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import type { HealthProbe, ProbeResult } from './probes.js';

/**
 * The health verdict from a run of check results. Unknown until the first check, whose result
 * is the first verdict (so an endpoint is never reported healthy before its app has answered
 * a check); then healthy until `unhealthyAfterFailures` checks in a row fail, and unhealthy
 * until `healthyAfterSuccesses` in a row pass. Unknown reads as unhealthy.
 */
export class HealthVerdict {
  #healthy: boolean | undefined;
  #streak = 0;

  constructor(
    readonly unhealthyAfterFailures: number,
    readonly healthyAfterSuccesses: number,
  ) {}

  get healthy(): boolean {
    return this.#healthy ?? false;
  }

  /** Whether a check has run yet. */
  get known(): boolean {
    return this.#healthy !== undefined;
  }

  /** Takes one check result; returns true when the verdict changed (the first result always does). */
  record(ok: boolean): boolean {
    if (this.#healthy === undefined) {
      this.#healthy = ok;
      return true;
    }
    // The streak counts results that disagree with the current verdict.
    if (ok === this.#healthy) {
      this.#streak = 0;
      return false;
    }
    this.#streak += 1;
    if (this.#streak < (this.#healthy ? this.unhealthyAfterFailures : this.healthyAfterSuccesses)) return false;
    this.#healthy = ok;
    this.#streak = 0;
    return true;
  }
}

export interface HealthMonitorInit {
  probe: HealthProbe;
  intervalMs: number;
  timeoutMs: number;
  unhealthyAfterFailures: number;
  healthyAfterSuccesses: number;
}

/**
 * Checks the app every `intervalMs` (from the start of one check to the start of the next; a
 * check never overlaps the previous one) and emits 'change' (healthy: boolean, last:
 * ProbeResult) when the verdict flips.
 */
export class HealthMonitor extends EventEmitter {
  readonly #init: HealthMonitorInit;
  readonly #verdict: HealthVerdict;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(init: HealthMonitorInit) {
    super();
    this.#init = init;
    this.#verdict = new HealthVerdict(init.unhealthyAfterFailures, init.healthyAfterSuccesses);
  }

  get healthy(): boolean {
    return this.#verdict.healthy;
  }

  /** Runs the first check now, then one per interval until `stop`. */
  start(): void {
    this.#runCheck();
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
  }

  #runCheck(): void {
    if (this.#stopped) return;
    const startedMs = performance.now();
    const checked = this.#init.probe(this.#init.timeoutMs).catch((error: unknown): ProbeResult => ({ ok: false, detail: `check failed: ${String(error)}` }));
    void checked.then((result) => {
      if (this.#stopped) return;
      if (this.#verdict.record(result.ok)) this.emit('change', this.#verdict.healthy, result);
      const elapsedMs = performance.now() - startedMs;
      this.#timer = setTimeout(() => this.#runCheck(), Math.max(0, this.#init.intervalMs - elapsedMs));
      // Checks must not keep a closing sidecar alive.
      this.#timer.unref();
    });
  }
}
