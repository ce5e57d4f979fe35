import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ErrorCode } from '../../proto/errors.js';
import { IdleStreamSweeper } from '../../sidecar/forward/idle-streams.js';

/** A stream stand-in: counts bytes, and records its reset and closes on it, as a MuxStream does. */
class FakeStream {
  bytesMoved = 0;
  closed = false;
  resetCode: number | undefined;
  move(bytes: number): void {
    this.bytesMoved += bytes;
  }
  reset(code: number): void {
    this.resetCode = code;
    this.closed = true;
  }
}

function setup(idleTimeoutMs = 1000) {
  const clock = { nowMs: 0 };
  let idleResets = 0;
  // The timer never fires within a test: sweeps are driven by hand on the fake clock.
  const sweeper = new IdleStreamSweeper({ idleTimeoutMs, sweepIntervalMs: 3_600_000, now: () => clock.nowMs, onIdleReset: () => (idleResets += 1) });
  return { clock, sweeper, idleResets: () => idleResets };
}

describe('IdleStreamSweeper', () => {
  it('resets a stream with no bytes either way for the idle timeout, with IDLE_TIMEOUT', () => {
    const { clock, sweeper, idleResets } = setup();
    const stream = new FakeStream();
    sweeper.watch(stream);
    clock.nowMs = 999;
    assert.equal(sweeper.sweep(), 0);
    clock.nowMs = 1000;
    assert.equal(sweeper.sweep(), 1);
    assert.equal(stream.resetCode, ErrorCode.IDLE_TIMEOUT);
    assert.equal(idleResets(), 1);
    assert.equal(sweeper.size, 0, 'a closed stream leaves the sweeper');
    sweeper.close();
  });

  it('keeps streams that move bytes in either direction, and never resets before the timeout after the last byte', () => {
    const { clock, sweeper } = setup();
    const upload = new FakeStream();
    const download = new FakeStream();
    sweeper.watch(upload);
    sweeper.watch(download);
    for (let t = 250; t <= 5000; t += 250) {
      clock.nowMs = t - 100;
      upload.move(100); // bytes from the app
      download.move(1); // bytes from the peer
      clock.nowMs = t;
      assert.equal(sweeper.sweep(), 0, `at ${t} ms`);
    }
    // Last bytes at 4900 ms; sweeps every 250 ms from here on.
    const resetAt: number[] = [];
    for (let t = 5250; t <= 7000; t += 250) {
      clock.nowMs = t;
      if (sweeper.sweep() > 0) resetAt.push(t);
    }
    assert.equal(resetAt.length, 1, 'both streams go in the same sweep');
    assert.ok(resetAt[0]! >= 4900 + 1000, `reset at ${resetAt[0]} ms, before the timeout after the last byte`);
    assert.ok(resetAt[0]! <= 4900 + 1000 + 2 * 250, `reset at ${resetAt[0]} ms, later than timeout + 2 sweeps`);
    assert.equal(upload.resetCode, ErrorCode.IDLE_TIMEOUT);
    assert.equal(download.resetCode, ErrorCode.IDLE_TIMEOUT);
    sweeper.close();
  });

  it('forgets streams that close by themselves', () => {
    const { clock, sweeper, idleResets } = setup();
    const stream = new FakeStream();
    sweeper.watch(stream);
    stream.closed = true;
    clock.nowMs = 10_000;
    assert.equal(sweeper.sweep(), 0);
    assert.equal(idleResets(), 0);
    assert.equal(sweeper.size, 0);
  });
});
