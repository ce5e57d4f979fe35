/**
 * Properties of the journal format (control-plane/store/journal.ts): records round-trip; a
 * journal cut at any byte is a torn tail that keeps every whole record before the cut; one
 * damaged byte in the last record is a torn tail, in any earlier record a refusal at that
 * record's offset.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { JournalRecord } from '../../control-plane/store/journal.js';
import { decodeJournal, encodeHeader, encodeRecord } from '../../control-plane/store/journal.js';
import type { StoreValue } from '../../control-plane/store/store.js';

const key = fc.string({ minLength: 1, maxLength: 12 });
const value: fc.Arbitrary<StoreValue> = fc.jsonValue({ maxDepth: 2 }).map((v) => JSON.parse(JSON.stringify(v)) as StoreValue);
const op = fc.oneof(
  fc.record({ put: key, value }),
  fc.record({ put: key, value, lease: fc.constant('l1') }),
  fc.record({ delete: key }),
);

/** Records whose transactions follow revision `base` one by one. */
function journalOf(base: number): fc.Arbitrary<JournalRecord[]> {
  return fc.array(fc.array(fc.array(op, { minLength: 1, maxLength: 3 }), { minLength: 1, maxLength: 3 }), { minLength: 1, maxLength: 6 }).map((shape) => {
    let revision = base;
    return shape.map((txns) => ({ txns: txns.map((ops) => ({ revision: ++revision, ops })), leases: { l1: 1000 } }));
  });
}

function encode(base: number, records: JournalRecord[]): { bytes: Buffer; starts: number[] } {
  const parts = [encodeHeader(base)];
  const starts: number[] = [];
  let offset = parts[0]!.length;
  for (const record of records) {
    const line = encodeRecord(record);
    starts.push(offset);
    offset += line.length;
    parts.push(line);
  }
  return { bytes: Buffer.concat(parts), starts };
}

describe('journal format', () => {
  it('round-trips records, with their offsets', () => {
    fc.assert(
      fc.property(fc.nat(1000).chain((base) => journalOf(base).map((records) => ({ base, records }))), ({ base, records }) => {
        const { bytes, starts } = encode(base, records);
        const decoded = decodeJournal(bytes);
        assert.ok(decoded.ok);
        assert.equal(decoded.base, base);
        assert.equal(decoded.validBytes, bytes.length);
        assert.deepEqual(
          decoded.records.map((r) => r.offset),
          starts,
        );
        // As JSON: the arbitraries build objects without a prototype, a parse builds plain ones.
        assert.deepEqual(
          decoded.records.map((r) => r.record),
          JSON.parse(JSON.stringify(records)),
        );
      }),
    );
  });

  it('reads a journal cut at any byte as its whole records before the cut (a torn tail)', () => {
    fc.assert(
      fc.property(journalOf(0), fc.double({ min: 0, max: 1, noNaN: true }), (records, at) => {
        const { bytes, starts } = encode(0, records);
        const headerEnd = starts[0]!;
        const cut = headerEnd + Math.floor(at * (bytes.length - headerEnd));
        const decoded = decodeJournal(bytes.subarray(0, cut));
        assert.ok(decoded.ok);
        const whole = starts.filter((start, i) => (starts[i + 1] ?? bytes.length) <= cut && start < cut).length;
        assert.equal(decoded.records.length, whole);
        assert.equal(decoded.validBytes, starts[whole] ?? bytes.length);
      }),
    );
  });

  it('drops a damaged last record, and refuses a damaged earlier one at its offset', () => {
    fc.assert(
      fc.property(journalOf(0), fc.nat(), fc.integer({ min: 1, max: 255 }), (records, where, flip) => {
        const { bytes, starts } = encode(0, records);
        const victim = where % records.length;
        const start = starts[victim]!;
        const end = starts[victim + 1] ?? bytes.length;
        const damaged = Buffer.from(bytes);
        const at = start + (where % (end - start));
        damaged.writeUInt8(damaged.readUInt8(at) ^ flip, at);
        const decoded = decodeJournal(damaged);
        if (victim === records.length - 1) {
          assert.ok(decoded.ok, 'a damaged last record is a torn tail');
          assert.equal(decoded.records.length, records.length - 1);
          assert.equal(decoded.validBytes, start);
        } else {
          assert.ok(!decoded.ok, 'a damaged record before the last is refused');
          assert.equal(decoded.offset, start);
        }
      }),
    );
  });

  it('refuses a journal without its header, and a header of another format', () => {
    assert.deepEqual(decodeJournal(Buffer.alloc(0)), { ok: false, offset: 0, reason: 'no journal header' });
    const other = encodeRecord({ txns: [], leases: {} });
    assert.equal(decodeJournal(other).ok, false);
  });
});
