import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { afterWarmUp, fitLine, trendsUp, windowMinima } from './trend.js';

const series = (values: number[], minutesApart = 0.1): { minutes: number; value: number }[] => values.map((value, index) => ({ minutes: index * minutesApart, value }));

describe('soak trend', () => {
  it('fits the slope of a straight line exactly, with no error', () => {
    const trend = fitLine(series([10, 12, 14, 16, 18], 1));
    assert.equal(trend.slopePerMinute, 2);
    assert.equal(trend.standardError, 0);
    assert.ok(trendsUp(trend, 1));
    assert.ok(!trendsUp(trend, 2));
  });

  it('a flat noisy series does not trend up; a steady leak under the same noise does', () => {
    const noise = [3, -2, 4, -4, 1, -3, 2, 0, -1, 3, -2, 1, 4, -3, 0, 2, -4, 1, -1, 3];
    const flat = fitLine(series(noise.map((n) => 100 + n)));
    assert.ok(!trendsUp(flat, 0.5), JSON.stringify(flat));
    const leak = fitLine(series(noise.map((n, i) => 100 + n + 30 * i * 0.1)));
    assert.ok(trendsUp(leak, 0.5), JSON.stringify(leak));
    assert.ok(Math.abs(leak.slopePerMinute - 30) < 10, JSON.stringify(leak));
  });

  it('says nothing about fewer than three points', () => {
    const trend = fitLine(series([1, 100]));
    assert.ok(!trendsUp(trend, 0));
    assert.equal(trend.standardError, Number.POSITIVE_INFINITY);
  });

  it('drops the warm-up share of the run', () => {
    assert.deepEqual(afterWarmUp(series([1, 2, 3, 4, 5], 1), 0.5).map((point) => point.value), [3, 4, 5]);
    assert.deepEqual(afterWarmUp([], 0.5), []);
  });

  it('a sawtooth (garbage collection) has a flat floor; a sawtooth on a rising floor does not', () => {
    const saw = Array.from({ length: 60 }, (_, i) => 100 + (i % 10) * 3);
    const flat = fitLine(windowMinima(series(saw), 6));
    assert.equal(flat.slopePerMinute, 0);
    const leak = fitLine(windowMinima(series(saw.map((v, i) => v + i * 0.5)), 6));
    assert.ok(trendsUp(leak, 1), JSON.stringify(leak));
    assert.deepEqual(windowMinima(series([5, 1, 7, 2]), 2).map((p) => p.value), [1, 2]);
  });
});
