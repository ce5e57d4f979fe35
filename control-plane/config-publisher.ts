/**
 * Pushes config to sidecar sessions. Changes are coalesced over a short window and each window
 * becomes one delta, encoded once and handed to every session: with thousands of sidecars the
 * cost of a change is one encode plus one write per session.
 *
 * Sessions that register inside a window get their snapshot at the end of it, encoded once for
 * all of them. So at every flush all subscribed sessions stand at the same version, which is
 * exactly the next delta's `baseVersion`.
 */
import type { ConfigChange, ConfigValue } from '../proto/control.js';
import { encodeControlMessage } from '../proto/control.js';
import type { ConfigState } from './config-state.js';
import type { ControlPlaneMetrics } from './metrics.js';

/** Default coalescing window for config changes. */
export const DEFAULT_PUSH_COALESCE_MS = 20;

/** A session that receives config messages, already encoded. */
export interface PushTarget {
  sendEncoded(bytes: Uint8Array): void;
}

/** Sends snapshots and coalesced deltas of a {@link ConfigState} to its subscribers. */
export class ConfigPublisher {
  /** Sessions that have the config as of `publishedVersion`. */
  private readonly subscribers = new Set<PushTarget>();
  /** Sessions waiting for their snapshot at the next flush. */
  private readonly awaitingSnapshot = new Set<PushTarget>();
  /** Changes since `publishedVersion`, last write per key. */
  private readonly pending = new Map<string, ConfigValue | null>();
  private publishedVersion: number;
  private firstPendingAtMs: number | undefined;
  private flushTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly config: ConfigState,
    private readonly metrics: ControlPlaneMetrics,
    private readonly coalesceMs = DEFAULT_PUSH_COALESCE_MS,
  ) {
    this.publishedVersion = config.version;
    config.onChange((_version, changes) => this.onChange(changes));
  }

  /** Sends `target` a snapshot at the end of the current window, then every delta. */
  subscribe(target: PushTarget): void {
    if (this.subscribers.has(target)) return;
    this.awaitingSnapshot.add(target);
    this.scheduleFlush();
  }

  unsubscribe(target: PushTarget): void {
    this.subscribers.delete(target);
    this.awaitingSnapshot.delete(target);
  }

  /** Stops pushing; pending changes are dropped (sidecars get a snapshot on reconnect). */
  close(): void {
    this.closed = true;
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
  }

  private onChange(changes: readonly ConfigChange[]): void {
    for (const [key, value] of changes) this.pending.set(key, value);
    this.firstPendingAtMs ??= performance.now();
    this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.flushTimer !== undefined || this.closed) return;
    this.flushTimer = setTimeout(() => this.flush(), this.coalesceMs);
  }

  private flush(): void {
    this.flushTimer = undefined;
    const version = this.config.version;
    // A version step without changes (the store's own changes sealed elsewhere) still moves
    // every subscriber on, or the next delta's base would not be theirs.
    if ((this.pending.size > 0 || version !== this.publishedVersion) && this.subscribers.size > 0) {
      const bytes = encodeControlMessage({ type: 'delta', version, baseVersion: this.publishedVersion, changes: [...this.pending] });
      for (const target of this.subscribers) target.sendEncoded(bytes);
      this.metrics.configPushed('delta', bytes.byteLength, this.subscribers.size);
    }
    if (this.firstPendingAtMs !== undefined) this.metrics.pushLatencyObserved(performance.now() - this.firstPendingAtMs);
    this.pending.clear();
    this.firstPendingAtMs = undefined;
    this.publishedVersion = version;
    if (this.awaitingSnapshot.size > 0) {
      const bytes = encodeControlMessage({ type: 'snapshot', version, entries: this.config.list() });
      for (const target of this.awaitingSnapshot) {
        this.subscribers.add(target);
        target.sendEncoded(bytes);
      }
      this.metrics.configPushed('snapshot', bytes.byteLength, this.awaitingSnapshot.size);
      this.awaitingSnapshot.clear();
    }
  }
}
