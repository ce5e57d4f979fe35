/**
 * The compliance suite of the {@link CaPersistence} seam: the data directory and the shared
 * store both run it (see ca-persistence.test.ts). What only shared persistences do (two
 * writers at once, watching each other) runs when the fixture says it has several writers.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { CaPersistence, CaState, LeafRecord } from '../../control-plane/ca.js';
import { CertificateAuthority } from '../../control-plane/ca.js';
import { silentLogger } from './helpers.js';

const TD = 'persistence.test';

/** One fresh, empty CA state of the implementation under test. */
export interface CaPersistenceFixture {
  /** A persistence on the fixture's state for writer `writerId`. */
  open(writerId: string): Promise<CaPersistence>;
  /** Whether several writers may have it open at once (replicas on one store). */
  concurrent: boolean;
  dispose(): Promise<void>;
}

/** Waits until `done()` holds, polling; fails after `timeoutMs` naming `what`. */
export async function until(what: string, done: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function openCa(persistence: CaPersistence): Promise<CertificateAuthority> {
  return CertificateAuthority.open({ persistence, trustDomain: TD, logger: silentLogger, now: Date.now });
}

/** Every root's certificate, the lineage and the phase: what two writers must agree on. */
function publicView(state: CaState | undefined): unknown {
  if (state === undefined) return undefined;
  return { signer: state.signer.certPem, next: state.next?.certPem, retiring: state.retiring?.certPem, lineage: state.lineage, rotation: state.rotation };
}

function leaf(id: string, rootFingerprint: string, issuedAt: number): LeafRecord {
  return { id, rootFingerprint, issuedAt, expiresAt: issuedAt + 3_600_000 };
}

export function caPersistenceSuite(name: string, makeFixture: () => Promise<CaPersistenceFixture>): void {
  const withFixture = async (run: (f: CaPersistenceFixture) => Promise<void>): Promise<void> => {
    const fixture = await makeFixture();
    try {
      await run(fixture);
    } finally {
      await fixture.dispose();
    }
  };

  describe(`CaPersistence compliance: ${name}`, () => {
    it('has nothing at first, then keeps every rotation step with its keys', () =>
      withFixture(async (f) => {
        const empty = await f.open('a');
        assert.equal(await empty.load(), undefined);
        assert.deepEqual(await empty.loadLeaves(), []);
        const ca = await openCa(empty);
        const steps: unknown[] = [];
        const check = async (): Promise<void> => {
          const reader = await f.open('reader');
          const loaded = await reader.load();
          await reader.close();
          assert.deepEqual(publicView(loaded), steps.at(-1));
          // The keys came back too: a CA opened on them signs with the same root.
          assert.equal(loaded?.signer.keyPem.includes('PRIVATE KEY'), true);
          assert.equal(loaded?.next === undefined, ca.phase !== 'distributing');
        };
        const record = (): void => {
          steps.push({
            signer: ca.certPem,
            next: ca.roots().find((root) => root.role === 'next')?.certPem,
            retiring: ca.roots().find((root) => root.role === 'retiring')?.certPem,
            lineage: ca.lineage(),
            rotation: ca.rotation,
          });
        };
        record();
        await check();
        await ca.addNextRoot();
        record();
        await check();
        assert.equal(await ca.promoteNextRoot(), true);
        record();
        await check();
        assert.equal(await ca.retireOldRoot(), true);
        record();
        await check();
        await ca.close();
      }));

    it('keeps the leaf ledger, the latest leaf per holder', () =>
      withFixture(async (f) => {
        const writer = await f.open('a');
        await openCa(writer);
        const leaves = [leaf('s1', 'r1', 1000), leaf('s2', 'r2', 2000)];
        await writer.saveLeaves(leaves);
        const reader = await f.open('a');
        await reader.load();
        assert.deepEqual(
          (await reader.loadLeaves()).sort((x, y) => x.id.localeCompare(y.id)),
          leaves,
        );
        await writer.saveLeaves([leaf('s1', 'r2', 3000)]);
        const again = await f.open('a');
        await again.load();
        assert.deepEqual(await again.loadLeaves(), [leaf('s1', 'r2', 3000)]);
        for (const p of [writer, reader, again]) await p.close();
      }));

    it('saves only in place of the state it last saw', () =>
      withFixture(async (f) => {
        if (!f.concurrent) {
          // One writer: every save applies, one after the other.
          const only = await f.open('a');
          const ca = await openCa(only);
          await ca.addNextRoot();
          assert.equal(await ca.promoteNextRoot(), true);
          await ca.close();
          return;
        }
        const [a, b] = [await f.open('a'), await f.open('b')];
        const caA = await openCa(a);
        // B opens after A created the CA: it serves A's CA.
        const caB = await openCa(b);
        assert.equal(caB.fingerprint, caA.fingerprint);
        // Both rotate at once: exactly one wins, the other is refused and follows the winner.
        const results = await Promise.allSettled([caA.addNextRoot(), caB.addNextRoot()]);
        assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1, JSON.stringify(results.map((r) => r.status)));
        const refused = results.find((r) => r.status === 'rejected');
        assert.equal((refused?.reason as { code?: string }).code, 'TRELLIS_ERR_CA_ROTATION_IN_PROGRESS');
        await until('both CAs to be distributing the same next root', () => caA.phase === 'distributing' && caB.phase === 'distributing');
        assert.deepEqual(caB.caPems(), caA.caPems());
        // A step taken from a stale state writes nothing.
        const stale = await f.open('c');
        const seen = await stale.load();
        assert.ok(seen !== undefined);
        assert.equal(await caA.promoteNextRoot(), true);
        assert.equal(await stale.save({ ...seen, rotation: { startedAt: 1 } }), false);
        await until('B to follow the promotion', () => caB.phase === 'reissuing');
        assert.equal(caB.fingerprint, caA.fingerprint);
        for (const closing of [caA.close(), caB.close(), stale.close()]) await closing;
      }));

    it('tells each writer of the others\' states and leaves, not of its own', () =>
      withFixture(async (f) => {
        if (!f.concurrent) return;
        const [a, b] = [await f.open('a'), await f.open('b')];
        const caA = await openCa(a);
        const caB = await openCa(b);
        const changes = { a: 0, b: 0 };
        caA.onChange(() => (changes.a += 1));
        caB.onChange(() => (changes.b += 1));
        await caA.addNextRoot();
        await until('B to hear of the rotation', () => changes.b === 1 && caB.phase === 'distributing');
        assert.equal(changes.a, 0, 'A hears nothing of its own save');
        // A leaf B saw counts at A, the latest per holder across both ledgers.
        const now = Date.now();
        await a.saveLeaves([leaf('s1', 'old', now - 1000), leaf('s2', 'old', now - 1000)]);
        await b.saveLeaves([leaf('s1', 'new', now)]);
        await until('A to see the leaves B saw', () => caA.liveLeaves().some((l) => l.id === 's1'));
        await until('B to see the leaves A saw', () => caB.liveLeaves().length === 2);
        const byId = (ca: CertificateAuthority): Record<string, string> => Object.fromEntries(ca.liveLeaves().map((l) => [l.id, l.rootFingerprint]));
        assert.deepEqual(byId(caA), { s1: 'new' });
        assert.deepEqual(byId(caB), { s1: 'old', s2: 'old' });
        const fresh = await f.open('c');
        await fresh.load();
        assert.deepEqual(Object.fromEntries((await fresh.loadLeaves()).map((l) => [l.id, l.rootFingerprint])), { s1: 'new', s2: 'old' });
        for (const closing of [caA.close(), caB.close(), fresh.close()]) await closing;
      }));
  });
}
