import { performance } from 'node:perf_hooks';
import { ErrorCode } from '../../proto/errors.js';

/** Shortest and longest time between two sweeps, whatever the idle timeout. */
const MIN_SWEEP_INTERVAL_MS = 50;
const MAX_SWEEP_INTERVAL_MS = 5000;

/** What the sweeper needs of a stream: a count of the bytes it moved, whether it closed, and a way to reset it. */
export interface SweepableStream {
  /** Bytes written to it and received on it so far. */
  readonly bytesMoved: number;
  /** Its 'close' came. (A stream 'closed' in state may still wait for credit to send: it stays watched.) */
  readonly closed: boolean;
  reset(code: number, message: string): void;
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
  /** The stream's byte count at the last sweep. */
  bytesMoved: number;
  /** When a sweep last saw the stream active (or began watching it). */
  idleSinceMs: number;
}

/**
 * Resets streams that carry no bytes either way for the idle timeout, with one timer for all
 * of them: a stream only counts its bytes, and a periodic sweep turns a changed count into an
 * idle-since stamp. So a stream is reset between `idleTimeoutMs` and `idleTimeoutMs + 2 ×
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

  /** Streams watched now (a stream that closed, until the next sweep). */
  get size(): number {
    return this.#watched.size;
  }

  /**
   * Watches `stream` until it closes. It costs no listener: a sweep compares the stream's byte
   * count with the last sweep's (with 10,000 streams open, three listeners each were megabytes).
   */
  watch(stream: SweepableStream): void {
    this.#watched.add({ stream, bytesMoved: stream.bytesMoved, idleSinceMs: this.#now() });
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
      const { stream } = watched;
      if (stream.closed) {
        this.#watched.delete(watched);
      } else if (stream.bytesMoved !== watched.bytesMoved) {
        watched.bytesMoved = stream.bytesMoved;
        watched.idleSinceMs = nowMs;
      } else if (nowMs - watched.idleSinceMs >= this.#idleTimeoutMs) {
        idle.push(watched);
      }
    }
    // Reset after the walk: a reset closes the stream.
    for (const watched of idle) {
      this.#watched.delete(watched);
      this.#onIdleReset();
      watched.stream.reset(ErrorCode.IDLE_TIMEOUT, `no bytes either way for ${this.#idleTimeoutMs} ms`);
    }
    if (this.#watched.size === 0) this.#stopTimer();
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
