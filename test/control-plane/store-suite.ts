/**
 * The compliance suite of the {@link Store} seam: every implementation runs it (see
 * store.test.ts). Each test gets a fresh, empty store from the implementation's fixture.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { StoreError } from '../../control-plane/store/errors.js';
import { StoreErrorCode } from '../../control-plane/store/errors.js';
import type { Store, StoreEvent, StoreWatchListener } from '../../control-plane/store/store.js';

/** One fresh store of the implementation under test. */
export interface StoreFixture {
  store: Store;
  /**
   * Another instance on the same state: a second client, or (for a backend that allows one
   * instance at a time) the same state reopened after closing `store`.
   */
  openPeer(): Promise<{ peer: Store; concurrent: boolean }>;
  /** A lease time to live the backend accepts; short, to keep the suite fast. */
  leaseTtlMs: number;
  /** Closes whatever is still open and removes the state. */
  dispose(): Promise<void>;
}

/** Records what a watch delivers, and waits for it with a deadline. */
export class WatchRecorder implements StoreWatchListener {
  readonly events: StoreEvent[] = [];
  readonly batches: StoreEvent[][] = [];
  readonly relists: StoreError[] = [];
  readonly errors: StoreError[] = [];
  #wake: (() => void) | undefined;

  onEvents(events: readonly StoreEvent[]): void {
    this.batches.push([...events]);
    this.events.push(...events);
    this.#wake?.();
  }

  onRelist(err: StoreError): void {
    this.relists.push(err);
    this.#wake?.();
  }

  onError(err: StoreError): void {
    this.errors.push(err);
    this.#wake?.();
  }

  /** Resolves once `done()` holds; fails after `timeoutMs` saying what was awaited. */
  async until(what: string, done: () => boolean, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!done()) {
      const left = deadline - Date.now();
      if (left <= 0) assert.fail(`timed out waiting for ${what}; events: ${JSON.stringify(this.events)}; errors: ${this.errors.map((e) => e.code).join(',')}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 200));
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }
}

/** Asserts that `promise` rejects with a StoreError of `code`. */
export async function rejectsWithCode(promise: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.equal((err as StoreError).code, code, `expected ${code}, got ${String(err)}`);
    return true;
  });
}

function summary(events: readonly StoreEvent[]): string[] {
  return events.map((e) => `${e.type} ${e.key}${e.type === 'put' ? `=${JSON.stringify(e.value)}` : ''} @${e.revision}`);
}

/** Runs the compliance suite against the stores `makeStore` builds. */
export function storeSuite(name: string, makeStore: () => Promise<StoreFixture>): void {
  const withStore = async (run: (f: StoreFixture) => Promise<void>): Promise<void> => {
    const fixture = await makeStore();
    try {
      await run(fixture);
    } finally {
      await fixture.dispose();
    }
  };

  describe(`Store compliance: ${name}`, () => {
    it('gets, puts, deletes and lists by prefix, sorted by key, with increasing revisions', () =>
      withStore(async ({ store }) => {
        assert.equal(await store.get('a/1'), undefined);
        const r1 = await store.put('a/2', { n: 2 });
        const r2 = await store.put('a/1', [1, 'one', null, true]);
        const r3 = await store.put('b/1', 'x');
        assert.ok(r1 > 0 && r2 > r1 && r3 > r2, `revisions ${r1}, ${r2}, ${r3} increase`);
        assert.deepEqual(await store.get('a/1'), [1, 'one', null, true]);
        assert.deepEqual(await store.list('a/'), [
          ['a/1', [1, 'one', null, true]],
          ['a/2', { n: 2 }],
        ]);
        assert.deepEqual((await store.list('')).map(([key]) => key), ['a/1', 'a/2', 'b/1']);
        const before = (await store.getEntry('a/1')).revision;
        assert.equal(before, r3);
        assert.equal(await store.delete('missing'), false);
        assert.equal((await store.getEntry('a/1')).revision, before, 'deleting a missing key makes no revision');
        assert.equal(await store.delete('a/1'), true);
        assert.ok((await store.getEntry('a/1')).revision > before);
        assert.deepEqual(await store.list('a/'), [['a/2', { n: 2 }]]);
      }));

    it('returns entries with the revision that last changed them and the revision read at', () =>
      withStore(async ({ store }) => {
        const r1 = await store.put('k/1', 1);
        const r2 = await store.put('k/2', 2);
        const r3 = await store.put('k/1', 11);
        assert.deepEqual(await store.getEntry('k/1'), { revision: r3, entry: { key: 'k/1', value: 11, modRevision: r3 } });
        assert.deepEqual(await store.getEntry('k/none'), { revision: r3, entry: undefined });
        const listed = await store.listEntries('k/');
        assert.equal(listed.revision, r3);
        assert.deepEqual(listed.entries, [
          { key: 'k/1', value: 11, modRevision: r3 },
          { key: 'k/2', value: 2, modRevision: r2 },
        ]);
        assert.ok(r1 < r2);
      }));

    it('hands out copies, never aliases of what it keeps', () =>
      withStore(async ({ store }) => {
        const value = { nested: { n: 1 }, list: [1] };
        await store.put('c', value);
        value.nested.n = 2;
        value.list.push(2);
        const read = (await store.get('c')) as { nested: { n: number }; list: number[] };
        assert.deepEqual(read, { nested: { n: 1 }, list: [1] });
        read.nested.n = 3;
        const listed = (await store.list('c'))[0]?.[1] as { nested: { n: number } };
        assert.equal(listed.nested.n, 1);
        listed.nested.n = 4;
        assert.deepEqual((await store.getEntry('c')).entry?.value, { nested: { n: 1 }, list: [1] });
      }));

    it('applies a transaction atomically as one revision, and refuses one naming a key twice', () =>
      withStore(async ({ store }) => {
        const start = await store.put('t/old', 'old');
        const recorder = new WatchRecorder();
        const watch = store.watch('t/', start, recorder);
        const result = await store.transaction([
          { type: 'put', key: 't/a', value: 'A' },
          { type: 'put', key: 't/b', value: { b: true } },
          { type: 'delete', key: 't/old' },
          { type: 'delete', key: 't/never-there' },
        ]);
        assert.deepEqual(result, { ok: true, revision: start + 1 });
        assert.deepEqual((await store.listEntries('t/')).entries, [
          { key: 't/a', value: 'A', modRevision: start + 1 },
          { key: 't/b', value: { b: true }, modRevision: start + 1 },
        ]);
        await recorder.until('the transaction events', () => recorder.events.length >= 3);
        assert.equal(recorder.batches.length, 1, 'one revision is never split across deliveries');
        assert.deepEqual(summary(recorder.events).sort(), [`delete t/old @${start + 1}`, `put t/a="A" @${start + 1}`, `put t/b={"b":true} @${start + 1}`]);
        await watch.close();
        await rejectsWithCode(
          store.transaction([
            { type: 'put', key: 't/x', value: 1 },
            { type: 'delete', key: 't/x' },
          ]),
          StoreErrorCode.STORE,
        );
        assert.equal(await store.get('t/x'), undefined);
        assert.deepEqual(await store.transaction([]), { ok: true, revision: start + 1 }, 'an empty transaction makes no revision');
      }));

    it('compares and swaps on a key’s mod revision; a failed check changes nothing', () =>
      withStore(async ({ store }) => {
        const created = await store.transaction([{ type: 'put', key: 'lock', value: 'me' }], { ifRevision: { key: 'lock', revision: 0 } });
        assert.equal(created.ok, true);
        const again = await store.transaction(
          [
            { type: 'put', key: 'lock', value: 'you' },
            { type: 'put', key: 'other', value: 1 },
          ],
          { ifRevision: { key: 'lock', revision: 0 } },
        );
        assert.deepEqual(again, { ok: false, revision: created.revision });
        const stale = await store.transaction([{ type: 'delete', key: 'lock' }], { ifRevision: { key: 'lock', revision: created.revision - 1 } });
        assert.deepEqual(stale, { ok: false, revision: created.revision });
        assert.equal(await store.get('lock'), 'me');
        assert.equal(await store.get('other'), undefined);
        const swapped = await store.transaction([{ type: 'put', key: 'lock', value: 'next' }], { ifRevision: { key: 'lock', revision: created.revision } });
        assert.deepEqual(swapped, { ok: true, revision: created.revision + 1 });
        assert.deepEqual((await store.getEntry('lock')).entry, { key: 'lock', value: 'next', modRevision: swapped.revision });
      }));

    it('watches from a revision: exactly the later changes under the prefix, in order, then live ones', () =>
      withStore(async ({ store }) => {
        await store.put('w/1', 1);
        const from = await store.put('w/2', 2);
        const r3 = await store.put('w/3', 3);
        await store.put('elsewhere', 0);
        const r4 = await store.transaction([{ type: 'delete', key: 'w/1' }]);
        const recorder = new WatchRecorder();
        const watch = store.watch('w/', from, recorder);
        await recorder.until('the changes after the start revision', () => recorder.events.length >= 2);
        const r5 = await store.put('w/1', { back: true });
        await recorder.until('the live change', () => recorder.events.length >= 3);
        assert.deepEqual(summary(recorder.events), [`put w/3=3 @${r3}`, `delete w/1 @${r4.revision}`, `put w/1={"back":true} @${r5}`]);
        assert.equal(watch.revision, r5);
        (recorder.events[2]?.value as { back: boolean }).back = false;
        assert.deepEqual(await store.get('w/1'), { back: true }, 'a delivered value is a copy');
        await watch.close();
        await store.put('w/after-close', 1);
        const fresh = new WatchRecorder();
        const current = store.watch('w/', (await store.getEntry('w/')).revision, fresh);
        const r6 = await store.put('w/4', 4);
        await fresh.until('a change after watching from now', () => fresh.events.length >= 1);
        assert.deepEqual(summary(fresh.events), [`put w/4=4 @${r6}`]);
        await current.close();
        assert.equal(recorder.events.length, 3, 'nothing is delivered after close');
      }));

    it('lets a second instance see the writes, at the same revision', () =>
      withStore(async (fixture) => {
        const last = await fixture.store.transaction([
          { type: 'put', key: 's/a', value: 'A' },
          { type: 'put', key: 's/b', value: 'B' },
        ]);
        const { peer, concurrent } = await fixture.openPeer();
        assert.deepEqual(await peer.listEntries('s/'), {
          revision: last.revision,
          entries: [
            { key: 's/a', value: 'A', modRevision: last.revision },
            { key: 's/b', value: 'B', modRevision: last.revision },
          ],
        });
        if (!concurrent) return;
        const recorder = new WatchRecorder();
        const watch = fixture.store.watch('s/', last.revision, recorder);
        const fromPeer = await peer.put('s/c', 'C');
        await recorder.until('the peer’s write', () => recorder.events.length >= 1);
        assert.deepEqual(summary(recorder.events), [`put s/c="C" @${fromPeer}`]);
        await watch.close();
      }));

    it('holds keys under a lease while it is kept alive, and deletes them when it expires', () =>
      withStore(async ({ store, leaseTtlMs }) => {
        const lease = await store.grantLease(leaseTtlMs);
        assert.ok(lease.ttlMs >= leaseTtlMs);
        const start = await store.put('l/held', 'h', { lease });
        await store.transaction([{ type: 'put', key: 'l/also', value: 'a', lease }]);
        await store.put('l/free', 'f');
        assert.equal((await store.getEntry('l/held')).entry?.lease, lease.id);
        assert.equal((await store.getEntry('l/free')).entry?.lease, undefined);
        const recorder = new WatchRecorder();
        const watch = store.watch('l/', start, recorder);
        // Kept alive for twice its time to live, the lease holds.
        const keepUntil = Date.now() + 2 * lease.ttlMs;
        while (Date.now() < keepUntil) {
          await lease.keepAlive();
          await new Promise((resolve) => setTimeout(resolve, lease.ttlMs / 4));
        }
        assert.equal(await store.get('l/held'), 'h');
        await recorder.until('the expiry deletes', () => recorder.events.filter((e) => e.type === 'delete').length >= 2, 4 * lease.ttlMs + 5000);
        const deletes = recorder.events.filter((e) => e.type === 'delete');
        assert.deepEqual(deletes.map((e) => e.key).sort(), ['l/also', 'l/held']);
        assert.equal(deletes[0]?.revision, deletes[1]?.revision, 'a lease ends as one revision');
        assert.deepEqual(await store.list('l/'), [['l/free', 'f']]);
        await rejectsWithCode(lease.keepAlive(), StoreErrorCode.LEASE_LOST);
        await watch.close();
      }));

    it('deletes a revoked lease’s keys at once, and refuses the lease afterwards', () =>
      withStore(async ({ store, leaseTtlMs }) => {
        const lease = await store.grantLease(leaseTtlMs * 10);
        const start = await store.put('r/held', 1, { lease });
        // Put again without the lease: the key leaves it.
        await store.put('r/released', 1, { lease });
        await store.put('r/released', 2);
        const recorder = new WatchRecorder();
        const watch = store.watch('r/', start, recorder);
        await lease.revoke();
        assert.deepEqual(await store.list('r/'), [['r/released', 2]]);
        await recorder.until('the revoke delete', () => recorder.events.some((e) => e.type === 'delete'));
        assert.deepEqual(
          recorder.events.filter((e) => e.type === 'delete').map((e) => e.key),
          ['r/held'],
        );
        await lease.revoke();
        await rejectsWithCode(lease.keepAlive(), StoreErrorCode.LEASE_LOST);
        await rejectsWithCode(store.put('r/late', 1, { lease }), StoreErrorCode.LEASE_LOST);
        await rejectsWithCode(store.grantLease(0), StoreErrorCode.STORE);
        await watch.close();
      }));

    it('refuses every use after close', () =>
      withStore(async ({ store, leaseTtlMs }) => {
        const lease = await store.grantLease(leaseTtlMs * 10);
        await store.put('x', 1);
        const recorder = new WatchRecorder();
        store.watch('', 0, recorder);
        await store.close();
        const closed = StoreErrorCode.CLOSED;
        await rejectsWithCode(store.get('x'), closed);
        await rejectsWithCode(store.getEntry('x'), closed);
        await rejectsWithCode(store.put('x', 2), closed);
        await rejectsWithCode(store.delete('x'), closed);
        await rejectsWithCode(store.list(''), closed);
        await rejectsWithCode(store.listEntries(''), closed);
        await rejectsWithCode(store.transaction([{ type: 'delete', key: 'x' }]), closed);
        await rejectsWithCode(store.grantLease(leaseTtlMs), closed);
        await rejectsWithCode(lease.keepAlive(), closed);
        assert.throws(
          () => store.watch('', 0, new WatchRecorder()),
          (err: unknown) => (err as StoreError).code === closed,
        );
        await store.close();
      }));
  });
}
