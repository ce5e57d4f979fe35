/**
 * What the publisher knows of one session: its scope, the version it was last sent (the base
 * of its next delta), what it still has to be sent, and how far behind its reading it is.
 */
import type { ConfigChange } from '../proto/control.js';
import type { PushScope } from './push-scope.js';

/** A session that receives config messages, already encoded. */
export interface PushTarget {
  sendEncoded(bytes: Uint8Array): void;
  /** Bytes handed to the socket and not yet written to it (the WebSocket's `bufferedAmount`). */
  readonly bufferedBytes: number;
}

/** What a session says about itself when it registers. */
export interface PushSessionInit {
  /** Channel version agreed with the peer (1 or 2). */
  channel: number;
  /** `all` for channel-1 sidecars and gateways; otherwise the sidecar's own service. */
  scope: { kind: 'all' } | { kind: 'service'; service: string };
  /** Services whose endpoints it wants (channel 2). */
  services: readonly string[];
  /** The version it holds and the services it holds in full at it (reconnects, channel 2). */
  resume?: { version: number; services?: readonly string[] };
}

/** A session is behind while its socket holds this much unwritten. */
export const PUSH_HIGH_WATER_BYTES = 256 * 1024;
/** …or while this much has been sent and not acked. */
export const DEFAULT_PUSH_WINDOW_BYTES = 1024 * 1024;
/** A session that is behind by more keys than this gets a snapshot once it catches up. */
export const MAX_BACKLOG_KEYS = 4096;

export class PushSession {
  readonly target: PushTarget;
  readonly channel: number;
  readonly scope: PushScope;
  /** The endpoint services in scope (empty for an `all` session, which gets them all). */
  readonly services: Set<string>;
  /** Version of the last snapshot or delta sent; undefined before the first. */
  sentVersion: number | undefined;
  /** The next message must be a snapshot (first contact without resume, nack, too far behind). */
  needsSnapshot = true;
  /** Changes due to this session beyond the current window: merged while it was behind, or from a resume. */
  backlog: Map<string, ConfigChange[1]> | undefined;
  /** Services whose endpoints the next delta carries in full (new subscriptions). */
  readonly fullServices = new Set<string>();
  /** The `channel` field still has to be sent (first message after register). */
  announceChannel: boolean;
  /** Messages sent and not yet acked: version and size. */
  readonly #inFlight: Array<{ version: number; bytes: number }> = [];
  #unackedBytes = 0;

  constructor(target: PushTarget, init: PushSessionInit) {
    this.target = target;
    this.channel = init.channel;
    this.announceChannel = init.channel >= 2;
    this.services = new Set(init.scope.kind === 'all' ? [] : init.services);
    this.scope = init.scope.kind === 'all' ? { kind: 'all' } : { kind: 'service', service: init.scope.service, services: this.services };
  }

  /** Whether its reading lags too far to send it anything now. */
  isBehind(windowBytes: number): boolean {
    return this.target.bufferedBytes > PUSH_HIGH_WATER_BYTES || this.#unackedBytes > windowBytes;
  }

  /** Whether anything beyond the window's buckets is due. */
  get hasOwnWork(): boolean {
    return this.needsSnapshot || this.backlog !== undefined || this.fullServices.size > 0;
  }

  sent(version: number, bytes: number): void {
    this.sentVersion = version;
    this.needsSnapshot = false;
    this.backlog = undefined;
    this.fullServices.clear();
    this.announceChannel = false;
    this.#inFlight.push({ version, bytes });
    this.#unackedBytes += bytes;
  }

  acked(version: number): void {
    while (this.#inFlight.length > 0 && this.#inFlight[0]!.version <= version) this.#unackedBytes -= this.#inFlight.shift()!.bytes;
  }

  /** The peer could not apply what it was sent: everything in flight is moot, a snapshot follows. */
  nacked(): void {
    this.#inFlight.length = 0;
    this.#unackedBytes = 0;
    this.requireSnapshot();
  }

  requireSnapshot(): void {
    this.needsSnapshot = true;
    this.backlog = undefined;
    this.fullServices.clear();
  }

  /** Merges changes it could not be sent now; too many turn into a snapshot. Returns how many were merged. */
  absorb(changes: Iterable<ConfigChange>): number {
    if (this.needsSnapshot) return 0;
    let merged = 0;
    const backlog = (this.backlog ??= new Map());
    for (const [key, value] of changes) {
      backlog.set(key, value);
      merged++;
    }
    if (backlog.size > MAX_BACKLOG_KEYS) this.requireSnapshot();
    return merged;
  }
}
