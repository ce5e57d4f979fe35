import { performance } from 'node:perf_hooks';
import { ErrorCode } from '../../proto/errors.js';

/** Shortest and longest time between two sweeps, whatever the idle timeout. */
const MIN_SWEEP_INTERVAL_MS = 50;
const MAX_SWEEP_INTERVAL_MS = 5000;

/** What the sweeper needs of a stream: its byte events, its end, and a way to reset it. */
export interface SweepableStream {
  on(event: 'data' | 'close', listener: () => void): unknown;
  reset(code: number, message: string): void;
}

/** Anything else whose 'data' events count as activity of a stream (the app's socket). */
export interface ActivitySource {
  on(event: 'data', listener: () => void): unknown;
}

export interface IdleStreamSweeperInit {
  /** A stream with no bytes either way for this long is reset with IDLE_TIMEOUT. */
  idleTimeoutMs: number;
  /** Told of every stream reset for idleness. */
  onIdleReset?: () => void;
  /** @default a quarter of the idle timeout, within 50 ms .. 5 s */
  sweepIntervalMs?: number;
  /** Monotonic milliseconds; tests inject a fake clock. @default performance.now */
  now?: () => number;
}

interface Watched {
  readonly stream: SweepableStream;
  /** Bytes moved since the last sweep. */
  active: boolean;
  /** When a sweep last saw the stream active (or began watching it). */
  idleSinceMs: number;
}

/**
 * Resets streams that carry no bytes either way for the idle timeout, with one timer for all
 * of them: a byte only sets a flag on its stream, and a periodic sweep turns the flags into
 * idle-since stamps. So a stream is reset between `idleTimeoutMs` and `idleTimeoutMs + 2 ×
 * sweepIntervalMs` after its last byte, never earlier. The timer runs only while some stream
 * is watched.
 */
export class IdleStreamSweeper {
  readonly #watched = new Set<Watched>();
  readonly #idleTimeoutMs: number;
  readonly #sweepIntervalMs: number;
  readonly #onIdleReset: () => void;
  readonly #now: () => number;
  #timer: NodeJS.Timeout | undefined;

  constructor(init: IdleStreamSweeperInit) {
    this.#idleTimeoutMs = init.idleTimeoutMs;
    this.#sweepIntervalMs =
      init.sweepIntervalMs ?? Math.min(MAX_SWEEP_INTERVAL_MS, Math.max(MIN_SWEEP_INTERVAL_MS, Math.floor(init.idleTimeoutMs / 4)));
    this.#onIdleReset = init.onIdleReset ?? (() => undefined);
    this.#now = init.now ?? (() => performance.now());
  }

  /** Streams watched now. */
  get size(): number {
    return this.#watched.size;
  }

  /** Watches `stream` until it closes; bytes on it or on any of `sources` count as activity. */
  watch(stream: SweepableStream, ...sources: ActivitySource[]): void {
    const watched: Watched = { stream, active: false, idleSinceMs: this.#now() };
    const markActive = (): void => {
      watched.active = true;
    };
    stream.on('data', markActive);
    for (const source of sources) source.on('data', markActive);
    stream.on('close', () => {
      this.#watched.delete(watched);
      if (this.#watched.size === 0) this.#stopTimer();
    });
    this.#watched.add(watched);
    if (this.#timer === undefined) {
      this.#timer = setInterval(() => this.sweep(), this.#sweepIntervalMs);
      // Idle streams must not keep a closing sidecar alive.
      this.#timer.unref();
    }
  }

  /** Resets the streams idle for the timeout; returns how many. The timer calls it; tests may too. */
  sweep(nowMs = this.#now()): number {
    const idle: Watched[] = [];
    for (const watched of this.#watched) {
      if (watched.active) {
        watched.active = false;
        watched.idleSinceMs = nowMs;
      } else if (nowMs - watched.idleSinceMs >= this.#idleTimeoutMs) {
        idle.push(watched);
      }
    }
    // Reset after the walk: a reset closes the stream, which leaves the set.
    for (const watched of idle) {
      this.#onIdleReset();
      watched.stream.reset(ErrorCode.IDLE_TIMEOUT, `no bytes either way for ${this.#idleTimeoutMs} ms`);
    }
    return idle.length;
  }

  /** Stops the timer; streams are no longer watched. */
  close(): void {
    this.#watched.clear();
    this.#stopTimer();
  }

  #stopTimer(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
