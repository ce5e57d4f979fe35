/**
 * What the etcd store needs around the `etcd3` client: the client's options (call deadlines,
 * fast reconnects, no hidden retries), key ranges, and the mapping of etcd3's errors onto
 * the store's codes. Only the etcd store imports this; only this and the store import etcd3.
 */
import type { IOptions } from 'etcd3';
import {
  ClientClosedError,
  EtcdLeaseInvalidError,
  EtcdWatchStreamEnded,
  GRPCCancelledError,
  GRPCDeadlineExceededError,
  GRPCUnavailableError,
} from 'etcd3';
import { StoreClosedError, StoreError, StoreLeaseLostError, StoreUnavailableError } from './errors.js';

type FaultHandling = NonNullable<IOptions['faultHandling']>;
type Policy = NonNullable<FaultHandling['global']>;
type Backoff = NonNullable<FaultHandling['watchBackoff']>;

/** What etcd says when a read or watch needs a revision that compaction removed. */
const COMPACTED_MESSAGE = 'required revision has been compacted';

/** Options of the etcd3 client for a store with these deadlines. */
export function etcdClientOptions(hosts: string[], callTimeoutMs: number, maxReconnectDelayMs: number): IOptions {
  return {
    hosts,
    dialTimeout: callTimeoutMs,
    // Unary calls get a deadline; watch and keepalive streams live as long as they are needed.
    defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + callTimeoutMs }),
    grpcOptions: {
      'grpc.initial_reconnect_backoff_ms': 100,
      'grpc.max_reconnect_backoff_ms': maxReconnectDelayMs,
    },
    faultHandling: {
      // etcd3 would retry writes itself (a put applied twice, a CAS that reports a conflict
      // with itself) and open a circuit breaker that stays shut for seconds after etcd is
      // back. Callers see TRELLIS_ERR_STORE_UNAVAILABLE at once and decide instead.
      host: () => passThroughPolicy,
      global: passThroughPolicy,
      watchBackoff: new CappedBackoff(100, maxReconnectDelayMs),
    },
  };
}

/** A cockatiel policy that runs the call once. etcd3 only ever calls `execute`. */
const passThroughPolicy = {
  onSuccess: () => ({ dispose: () => undefined }),
  onFailure: () => ({ dispose: () => undefined }),
  execute: <T>(fn: (context: { signal: AbortSignal }) => PromiseLike<T> | T, signal?: AbortSignal): Promise<T> =>
    Promise.resolve().then(() => fn({ signal: signal ?? new AbortController().signal })),
} as unknown as Policy;

/** Doubles from `durationMs` up to `maxMs`; etcd3 restarts it after each good response. */
class CappedBackoff implements Backoff {
  readonly #maxMs: number;

  constructor(
    readonly duration: number,
    maxMs: number,
  ) {
    this.#maxMs = maxMs;
  }

  next(): Backoff {
    return new CappedBackoff(Math.min(this.duration * 2, this.#maxMs), this.#maxMs);
  }
}

/** The end of the key range of every key starting with `prefix` (etcd's `range_end`). */
export function prefixRangeEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if ((end[i] as number) < 0xff) {
      end[i] = (end[i] as number) + 1;
      return end.subarray(0, i + 1);
    }
  }
  // Every byte is 0xff: the range runs to the end of the key space.
  return Buffer.from([0]);
}

export function isCompactedError(err: unknown): boolean {
  return err instanceof Error && err.message.includes(COMPACTED_MESSAGE);
}

/** The StoreError for a failed etcd call; `what` names the operation in the message. */
export function toStoreError(err: unknown, what: string): StoreError {
  if (err instanceof StoreError) return err;
  const message = `${what}: ${err instanceof Error ? err.message : String(err)}`;
  if (err instanceof ClientClosedError) return new StoreClosedError(message, { cause: err });
  if (err instanceof EtcdLeaseInvalidError) return new StoreLeaseLostError(message, { cause: err });
  if (
    err instanceof GRPCUnavailableError ||
    err instanceof GRPCDeadlineExceededError ||
    err instanceof GRPCCancelledError ||
    err instanceof EtcdWatchStreamEnded ||
    (err instanceof Error && err.name === 'BrokenCircuitError')
  ) {
    return new StoreUnavailableError(message, { cause: err });
  }
  return new StoreError(message, { cause: err });
}

/** Rejects with StoreUnavailableError when `promise` takes longer than `timeoutMs` (for etcd3 calls without deadlines). */
export function withDeadline<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new StoreUnavailableError(`${what}: no answer from etcd within ${timeoutMs} ms`)), timeoutMs);
  });
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}
