// When the trimmer collects: a large young generation in an idle process, and nothing else.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KEPT_BEFORE_BACKING_OFF, YoungGenerationTrimmer } from '../../cli/young-generation-trimmer.js';

const MIB = 1024 * 1024;

/** A young generation that the test sizes and fills by hand; a collection empties it and shrinks it when `shrinks`. */
function fakeHeap(sizeBytes: number, shrinks = true) {
  const heap = { sizeBytes, usedBytes: 0, collections: 0, shrinks };
  const trimmer = new YoungGenerationTrimmer({
    readYoungGeneration: () => ({ sizeBytes: heap.sizeBytes, usedBytes: heap.usedBytes }),
    collectGarbage: () => {
      heap.collections += 1;
      heap.usedBytes = 0;
      if (heap.shrinks) heap.sizeBytes = 1 * MIB;
    },
    checkIntervalMs: 1_000,
    maxCheckIntervalMs: 4_000,
  });
  return { heap, trimmer };
}

describe('young generation trimmer', () => {
  it('collects once when the young generation is large and the process idle, then leaves it alone', () => {
    const { heap, trimmer } = fakeHeap(16 * MIB);
    heap.usedBytes = 100 * 1024;
    assert.equal(trimmer.check(), 'trimmed');
    assert.equal(heap.collections, 1);
    assert.equal(trimmer.check(), 'small');
    assert.equal(heap.collections, 1);
  });

  it('leaves a busy process alone: much allocated since the last check, or a scavenge in between', () => {
    const { heap, trimmer } = fakeHeap(16 * MIB);
    heap.usedBytes = 5 * MIB;
    assert.equal(trimmer.check(), 'busy');
    heap.usedBytes = 2 * MIB; // fell: a scavenge ran
    assert.equal(trimmer.check(), 'busy');
    assert.equal(heap.collections, 0);
  });

  it('checks less often after collections that kept the young generation large, and again as often once it is busy', () => {
    const { heap, trimmer } = fakeHeap(16 * MIB, false);
    const intervals = [];
    for (let i = 0; i < KEPT_BEFORE_BACKING_OFF + 2; i += 1) {
      assert.equal(trimmer.check(), 'kept');
      intervals.push(trimmer.intervalMs);
    }
    assert.deepEqual(intervals, [...Array<number>(KEPT_BEFORE_BACKING_OFF - 1).fill(1_000), 2_000, 4_000, 4_000]);
    heap.usedBytes = 8 * MIB;
    assert.deepEqual([trimmer.check(), trimmer.intervalMs], ['busy', 1_000]);
    assert.equal(heap.collections, KEPT_BEFORE_BACKING_OFF + 2);
  });
});
