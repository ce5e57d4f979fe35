/**
 * Pushes config to sidecar sessions, each only what is in its scope (push-scope.ts).
 *
 * Changes are coalesced over a short window. At the end of a window each change is in one
 * bucket (the endpoints of one service, the rules protecting one service, or mesh-wide), and
 * only the sessions in a bucket's audience are visited: a registration costs a write to each
 * subscriber of its service, not to every session. Sessions that were sent the same version
 * and are in the same buckets get the same bytes, encoded once.
 *
 * A session that falls behind (its socket does not drain, or it does not ack) is sent nothing
 * more; what it should have got is merged into its backlog, last write per key, and sent as one
 * delta when it catches up (a snapshot if the backlog grew past its bound). Every delta's base
 * is the version that session was last sent, so versions stay consistent per session.
 */
import type { ConfigChange, ControlPlaneMessage } from '../proto/control.js';
import { encodeControlMessage } from '../proto/control.js';
import { ChangeLog } from './change-log.js';
import type { ConfigState } from './config-state.js';
import type { ControlPlaneMetrics } from './metrics.js';
import { BucketIndex, bucketOf, endpointBucket, inScope, MESH_BUCKET, policyBucket } from './push-scope.js';
import type { PushSessionInit, PushTarget } from './push-session.js';
import { DEFAULT_PUSH_WINDOW_BYTES, MAX_BACKLOG_KEYS, PushSession } from './push-session.js';

export type { PushTarget, PushSessionInit } from './push-session.js';

/** One window's changes, by bucket, last write per key. */
type Window = ReadonlyMap<string, ReadonlyMap<string, ConfigChange[1]>>;
/** Messages encoded in one flush, by what makes them equal, with how many sessions got each. */
type EncodedCache = Map<string, { bytes: Uint8Array; type: 'snapshot' | 'delta'; sessions: number }>;

/** Default coalescing window for config changes. */
export const DEFAULT_PUSH_COALESCE_MS = 20;
/** How often sessions that are behind on their socket are looked at again. */
const BEHIND_POLL_MS = 50;

/** Options of {@link ConfigPublisher}. */
export interface ConfigPublisherInit {
  /** @default DEFAULT_PUSH_COALESCE_MS */
  coalesceMs?: number;
  /** Bytes sent and not acked after which a session counts as behind. @default 1 MiB */
  windowBytes?: number;
}

/** Sends snapshots and coalesced, scoped deltas of a {@link ConfigState} to its sessions. */
export class ConfigPublisher {
  readonly #config: ConfigState;
  readonly #metrics: ControlPlaneMetrics;
  readonly #coalesceMs: number;
  readonly #windowBytes: number;
  readonly #index: BucketIndex;
  readonly #log: ChangeLog;
  readonly #sessions = new Map<PushTarget, PushSession>();
  /** bucket → sessions subscribed to it (endpoint and policy buckets; `all` sessions are apart). */
  readonly #audiences = new Map<string, Set<PushSession>>();
  readonly #allScope = new Set<PushSession>();
  /** This window's changes, by bucket, last write per key. */
  #window = new Map<string, Map<string, ConfigChange[1]>>();
  /** Sessions with work of their own at the next flush (snapshot, resume, new subscription, caught up). */
  readonly #due = new Set<PushSession>();
  /** Sessions that were behind at a flush and must be looked at again. */
  readonly #behind = new Set<PushSession>();
  #firstPendingAtMs: number | undefined;
  #flushTimer: NodeJS.Timeout | undefined;
  #behindTimer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(config: ConfigState, metrics: ControlPlaneMetrics, init: ConfigPublisherInit = {}) {
    this.#config = config;
    this.#metrics = metrics;
    this.#coalesceMs = init.coalesceMs ?? DEFAULT_PUSH_COALESCE_MS;
    this.#windowBytes = init.windowBytes ?? DEFAULT_PUSH_WINDOW_BYTES;
    this.#index = new BucketIndex(config.list());
    this.#log = new ChangeLog(config.version);
    config.onChange((version, changes) => this.#onChange(version, changes));
  }

  /** Registered sessions. */
  get sessionCount(): number {
    return this.#sessions.size;
  }

  /**
   * Starts pushing to `target`: a snapshot at the end of the current window, or a delta from
   * the version it resumes from when the log still reaches back to it. A second call for the
   * same target (a repeated register) changes nothing.
   */
  attach(target: PushTarget, init: PushSessionInit): void {
    if (this.#sessions.has(target)) return;
    const session = new PushSession(target, init);
    this.#sessions.set(target, session);
    if (session.scope.kind === 'all') this.#allScope.add(session);
    else {
      this.#audienceOf(policyBucket(session.scope.service)).add(session);
      for (const service of session.services) this.#audienceOf(endpointBucket(service)).add(session);
    }
    if (init.resume !== undefined && init.channel >= 2) this.#resume(session, init.resume.version, new Set(init.resume.services ?? []));
    this.#due.add(session);
    this.#scheduleFlush();
  }

  detach(target: PushTarget): void {
    const session = this.#sessions.get(target);
    if (session === undefined) return;
    this.#sessions.delete(target);
    this.#allScope.delete(session);
    if (session.scope.kind === 'service') this.#leave(policyBucket(session.scope.service), session);
    for (const service of session.services) this.#leave(endpointBucket(service), session);
    this.#due.delete(session);
    this.#behind.delete(session);
  }

  /**
   * Adds endpoint subscriptions; their endpoints follow in full in the next delta. Returns
   * false (and adds none) if the session would pass `limit` services.
   */
  subscribe(target: PushTarget, services: readonly string[], limit: number): boolean {
    const session = this.#sessions.get(target);
    if (session === undefined || session.scope.kind === 'all') return true;
    const added = services.filter((service) => !session.services.has(service));
    if (session.services.size + new Set(added).size > limit) return false;
    for (const service of added) {
      session.services.add(service);
      session.fullServices.add(service);
      this.#audienceOf(endpointBucket(service)).add(session);
    }
    if (added.length > 0) {
      this.#due.add(session);
      this.#scheduleFlush();
    }
    return true;
  }

  unsubscribe(target: PushTarget, services: readonly string[]): void {
    const session = this.#sessions.get(target);
    if (session === undefined || session.scope.kind === 'all') return;
    for (const service of services) {
      session.services.delete(service);
      session.fullServices.delete(service);
      this.#leave(endpointBucket(service), session);
    }
  }

  /**
   * The version of the last config message sent to `target`. With scoped push it trails the
   * config's own version: a session hears only of changes in its scope.
   */
  sentVersionOf(target: PushTarget): number | undefined {
    return this.#sessions.get(target)?.sentVersion;
  }

  /** The peer applied everything up to `version`: if it was behind, it may be caught up now. */
  acked(target: PushTarget, version: number): void {
    const session = this.#sessions.get(target);
    if (session === undefined) return;
    session.acked(version);
    if (this.#behind.has(session) && !session.isBehind(this.#windowBytes)) this.#caughtUp(session);
  }

  /** The peer could not apply a message: it gets a snapshot at the next flush. */
  nacked(target: PushTarget): void {
    const session = this.#sessions.get(target);
    if (session === undefined) return;
    this.#metrics.pushEvent('nack');
    session.nacked();
    this.#behind.delete(session);
    this.#due.add(session);
    this.#scheduleFlush();
  }

  /** Stops pushing; pending changes are dropped (sidecars get a snapshot or a resume on reconnect). */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#flushTimer);
    clearInterval(this.#behindTimer);
    this.#flushTimer = undefined;
    this.#behindTimer = undefined;
  }

  #onChange(version: number, changes: readonly ConfigChange[]): void {
    this.#log.append(version, changes);
    this.#index.apply(changes);
    for (const [key, value] of changes) {
      const bucket = bucketOf(key);
      let changed = this.#window.get(bucket);
      if (changed === undefined) this.#window.set(bucket, (changed = new Map<string, ConfigChange[1]>()));
      changed.set(key, value);
    }
    this.#firstPendingAtMs ??= performance.now();
    this.#scheduleFlush();
  }

  #resume(session: PushSession, version: number, held: Set<string>): void {
    const current = this.#config.version;
    const wanted = session.services;
    const heldWanted = new Set([...held].filter((service) => wanted.has(service)));
    const changes = version <= current ? this.#log.since(version, MAX_BACKLOG_KEYS, (key) => inScope(key, session.scope, heldWanted)) : undefined;
    if (changes === undefined) {
      this.#metrics.pushEvent('resume-snapshot');
      return;
    }
    this.#metrics.pushEvent('resume-delta');
    session.needsSnapshot = false;
    session.sentVersion = version;
    session.backlog = changes;
    if (session.scope.kind === 'service') for (const service of wanted) if (!heldWanted.has(service)) session.fullServices.add(service);
  }

  #scheduleFlush(): void {
    if (this.#flushTimer !== undefined || this.#closed) return;
    this.#flushTimer = setTimeout(() => this.#flush(), this.#coalesceMs);
  }

  #flush(): void {
    this.#flushTimer = undefined;
    const version = this.#config.version;
    const window = this.#window;
    this.#window = new Map();
    // Which of this window's buckets each session is in, in window order (so equal lists mean equal deltas).
    const bucketsOf = new Map<PushSession, string[]>();
    const addTo = (session: PushSession, bucket: string): void => {
      const list = bucketsOf.get(session);
      if (list === undefined) bucketsOf.set(session, [bucket]);
      else list.push(bucket);
    };
    for (const bucket of window.keys()) {
      const audience = bucket === MESH_BUCKET ? this.#sessions.values() : [...(this.#audiences.get(bucket) ?? []), ...this.#allScope];
      for (const session of audience) addTo(session, bucket);
    }
    const visit = new Set<PushSession>([...bucketsOf.keys(), ...this.#due]);
    this.#due.clear();
    const encoded: EncodedCache = new Map();
    for (const session of visit) {
      const buckets = bucketsOf.get(session) ?? [];
      if (session.isBehind(this.#windowBytes)) {
        this.#fallBehind(session, buckets, window);
        continue;
      }
      const bytes = this.#messageFor(session, version, buckets, window, encoded);
      if (bytes === undefined) continue;
      session.target.sendEncoded(bytes);
      session.sent(version, bytes.byteLength);
    }
    for (const { type, bytes, sessions } of encoded.values()) this.#metrics.configPushed(type, bytes.byteLength, sessions);
    if (this.#firstPendingAtMs !== undefined) this.#metrics.pushLatencyObserved(performance.now() - this.#firstPendingAtMs);
    this.#firstPendingAtMs = undefined;
  }

  /** The bytes for `session`, shared with every session that gets the same (cached in `encoded`). */
  #messageFor(session: PushSession, version: number, buckets: readonly string[], window: Window, encoded: EncodedCache): Uint8Array | undefined {
    const scoped = session.channel >= 2;
    if (session.needsSnapshot || session.sentVersion === undefined) {
      const services = scoped && session.scope.kind === 'service' ? [...session.services].sort() : undefined;
      const cacheKey = `snapshot ${version} ${session.channel} ${session.scope.kind === 'all' ? '*' : session.scope.service} ${services?.join(',') ?? ''}`;
      // Every channel-2 snapshot names the channel: the first one after register must, and a later one may.
      return this.#cached(encoded, cacheKey, 'snapshot', () => ({
        type: 'snapshot',
        version,
        entries: this.#index.entriesIn(session.scope),
        ...(scoped ? { channel: session.channel } : {}),
        ...(services === undefined ? {} : { subscribed: services }),
      }));
    }
    const baseVersion = session.sentVersion;
    if (!session.hasOwnWork) {
      if (buckets.length === 0) return undefined;
      return this.#cached(encoded, `delta ${baseVersion} ${buckets.join(' ')}`, 'delta', () => ({
        type: 'delta',
        version,
        baseVersion,
        changes: buckets.flatMap((bucket) => [...(window.get(bucket) ?? [])]),
      }));
    }
    // A resume, a new subscription or a caught-up backlog: this session's own bytes.
    const changes = new Map(session.backlog);
    for (const bucket of buckets) for (const [key, value] of window.get(bucket) ?? []) changes.set(key, value);
    const full = [...session.fullServices].sort();
    for (const service of full) for (const [key, value] of this.#index.entriesOf(endpointBucket(service))) changes.set(key, value);
    const channel = session.announceChannel ? { channel: session.channel } : {};
    const message: ControlPlaneMessage = { type: 'delta', version, baseVersion, changes: [...changes], ...channel, ...(scoped && full.length > 0 ? { subscribed: full } : {}) };
    const bytes = encodeControlMessage(message);
    this.#metrics.configPushed('delta', bytes.byteLength, 1);
    return bytes;
  }

  #cached(encoded: EncodedCache, cacheKey: string, type: 'snapshot' | 'delta', build: () => ControlPlaneMessage): Uint8Array {
    let found = encoded.get(cacheKey);
    if (found === undefined) encoded.set(cacheKey, (found = { bytes: encodeControlMessage(build()), type, sessions: 0 }));
    found.sessions++;
    return found.bytes;
  }

  /** Keeps what `session` could not be sent now, and looks at it again once it may have caught up. */
  #fallBehind(session: PushSession, buckets: readonly string[], window: Window): void {
    const changes: ConfigChange[] = [];
    for (const bucket of buckets) for (const change of window.get(bucket) ?? []) changes.push(change);
    const merged = session.absorb(changes);
    if (merged > 0) this.#metrics.pushEvent('coalesced', merged);
    this.#behind.add(session);
    this.#behindTimer ??= setInterval(() => this.#pollBehind(), BEHIND_POLL_MS);
    this.#behindTimer.unref();
  }

  /** Sockets drain without telling: sessions behind on their socket are looked at on a timer. */
  #pollBehind(): void {
    for (const session of this.#behind) if (!session.isBehind(this.#windowBytes)) this.#caughtUp(session);
    if (this.#behind.size === 0) {
      clearInterval(this.#behindTimer);
      this.#behindTimer = undefined;
    }
  }

  #caughtUp(session: PushSession): void {
    this.#behind.delete(session);
    if (!session.hasOwnWork) return;
    this.#due.add(session);
    this.#scheduleFlush();
  }

  #audienceOf(bucket: string): Set<PushSession> {
    let audience = this.#audiences.get(bucket);
    if (audience === undefined) this.#audiences.set(bucket, (audience = new Set()));
    return audience;
  }

  #leave(bucket: string, session: PushSession): void {
    const audience = this.#audiences.get(bucket);
    audience?.delete(session);
    if (audience?.size === 0) this.#audiences.delete(bucket);
  }
}
