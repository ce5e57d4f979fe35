/**
 * Who needs which config entry (PROTOCOL.md, "Scoped push"): endpoints go to the sessions
 * subscribed to their service, a policy rule to the sidecars of the service it protects, and
 * everything else (the default policy, gateways, routes, kinds added later) to every session.
 * Each entry falls in exactly one **bucket**, so that the changes of one push window can be
 * grouped by bucket and every session's delta assembled from the buckets it is in.
 */
import type { ConfigChange, ConfigEntry, ConfigValue } from '../proto/control.js';
import { ENDPOINT_KEY_PREFIX, POLICY_RULE_KEY_PREFIX } from '../proto/control.js';

/** Bucket of the entries every session gets. */
export const MESH_BUCKET = 'mesh';

/** `endpoint:<service>` for endpoints, `policy:<service>` for rules protecting it, {@link MESH_BUCKET} otherwise. */
export function bucketOf(key: string): string {
  if (key.startsWith(ENDPOINT_KEY_PREFIX)) {
    const service = key.slice(ENDPOINT_KEY_PREFIX.length).split('/', 1)[0];
    if (service !== undefined && service !== '') return endpointBucket(service);
  } else if (key.startsWith(POLICY_RULE_KEY_PREFIX)) {
    // policy/rule/<from>/<to>: neither name holds a '/'.
    const to = key.slice(POLICY_RULE_KEY_PREFIX.length).split('/')[1];
    if (to !== undefined && to !== '') return policyBucket(to);
  }
  return MESH_BUCKET;
}

export function endpointBucket(service: string): string {
  return `endpoint:${service}`;
}

export function policyBucket(service: string): string {
  return `policy:${service}`;
}

/** What one session gets: everything (channel 1, gateways), or the scope of one sidecar. */
export type PushScope = { kind: 'all' } | { kind: 'service'; service: string; services: ReadonlySet<string> };

/**
 * The config map kept by bucket, so that a session's scope is read without walking every
 * entry: a snapshot of one sidecar's scope costs what it holds, not the size of the mesh.
 */
export class BucketIndex {
  readonly #buckets = new Map<string, Map<string, ConfigValue>>();

  constructor(entries: Iterable<ConfigEntry>) {
    for (const [key, value] of entries) this.#bucket(bucketOf(key)).set(key, value);
  }

  apply(changes: readonly ConfigChange[]): void {
    for (const [key, value] of changes) {
      const id = bucketOf(key);
      if (value !== null) this.#bucket(id).set(key, value);
      else {
        const bucket = this.#buckets.get(id);
        bucket?.delete(key);
        if (bucket?.size === 0) this.#buckets.delete(id);
      }
    }
  }

  /** The entries of one bucket. */
  entriesOf(bucket: string): Iterable<[string, ConfigValue]> {
    return this.#buckets.get(bucket) ?? [];
  }

  /** Every entry in `scope`. */
  entriesIn(scope: PushScope): ConfigEntry[] {
    const entries: ConfigEntry[] = [];
    const add = (bucket: string): void => {
      for (const entry of this.entriesOf(bucket)) entries.push(entry);
    };
    if (scope.kind === 'all') {
      for (const bucket of this.#buckets.keys()) add(bucket);
      return entries;
    }
    add(MESH_BUCKET);
    add(policyBucket(scope.service));
    for (const service of scope.services) add(endpointBucket(service));
    return entries;
  }

  #bucket(id: string): Map<string, ConfigValue> {
    let bucket = this.#buckets.get(id);
    if (bucket === undefined) this.#buckets.set(id, (bucket = new Map<string, ConfigValue>()));
    return bucket;
  }
}

/** Whether `key` is in `scope`, for a session whose own endpoint services are `heldServices`. */
export function inScope(key: string, scope: PushScope, heldServices: ReadonlySet<string>): boolean {
  if (scope.kind === 'all') return true;
  const bucket = bucketOf(key);
  if (bucket === MESH_BUCKET) return true;
  if (bucket === policyBucket(scope.service)) return true;
  const endpointPrefix = endpointBucket('');
  return bucket.startsWith(endpointPrefix) && heldServices.has(bucket.slice(endpointPrefix.length));
}
