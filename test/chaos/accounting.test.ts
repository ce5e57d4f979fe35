// The judge of the chaos runs must catch every way a stream can break its promise.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { judge, judgeStreams, recoveryTimesMs, tally } from './accounting.js';
import type { ClientRecord, ServerRecord } from './traffic.js';

const client = (overrides: Partial<ClientRecord> = {}): ClientRecord => ({
  event: 'stream',
  kind: 'bulk',
  id: 'a1',
  outcome: 'ok',
  sent: 1000,
  received: 1000,
  sentSha256: 'h',
  receivedSha256: 'h',
  startedAt: 100,
  endedAt: 200,
  ...overrides,
});
const server = (overrides: Partial<ServerRecord> = {}): ServerRecord => ({ event: 'close', id: 'a1', mode: 'E', received: 1000, sha256: 'h', outcome: 'end', at: 190, ...overrides });

describe('chaos accounting', () => {
  it('a byte-exact echo with a clean end on the server is whole', () => {
    assert.equal(judge(client(), server()).verdict, 'whole');
  });

  it('a clean end with bytes missing is truncated and counts the missing bytes as lost', () => {
    const judged = judge(client({ outcome: 'truncated', received: 600 }), server({ outcome: 'error' }));
    assert.equal(judged.verdict, 'truncated');
    assert.equal(judged.bytesLost, 400);
  });

  it('an echo that came back whole but reached the server altered is a mismatch', () => {
    assert.equal(judge(client(), server({ sha256: 'other' })).verdict, 'mismatch');
    assert.equal(judge(client(), server({ received: 999 })).verdict, 'mismatch');
    assert.equal(judge(client(), undefined).verdict, 'mismatch');
  });

  it('a reset the server saw as a clean end, or never heard of, is one-sided', () => {
    assert.equal(judge(client({ outcome: 'reset' }), server({ outcome: 'end', received: 999 })).verdict, 'reset-client-only');
    assert.equal(judge(client({ outcome: 'reset' }), server({ event: 'open', outcome: undefined })).verdict, 'reset-client-only');
    assert.equal(judge(client({ outcome: 'reset' }), server({ outcome: 'error' })).verdict, 'reset-both');
    // Refused before it reached the server's app.
    assert.equal(judge(client({ outcome: 'reset' }), undefined).verdict, 'reset-both');
  });

  it('a reset after the server app had every byte and closed is reported apart; with bytes missing at the server it is one-sided', () => {
    assert.equal(judge(client({ outcome: 'reset', received: 0 }), server({ outcome: 'end' })).verdict, 'reset-after-server-done');
    assert.equal(judge(client({ outcome: 'reset', received: 0 }), server({ outcome: 'end', received: 500 })).verdict, 'reset-client-only');
    assert.equal(judge(client({ outcome: 'reset', received: 0 }), server({ outcome: 'end', sha256: 'other' })).verdict, 'reset-client-only');
  });

  it('a stream nobody told anything is hung', () => {
    assert.equal(judge(client({ outcome: 'timeout' }), server({ event: 'open' })).verdict, 'hung');
  });

  it('an app that resets must be heard as a reset, never as a clean end', () => {
    assert.equal(judge(client({ kind: 'reset', outcome: 'reset' }), server({ outcome: 'app-reset' })).verdict, 'expected');
    assert.equal(judge(client({ kind: 'reset', outcome: 'truncated', received: 17 }), server({ outcome: 'app-reset' })).verdict, 'truncated');
  });

  it('an EOF after a kill of the app\'s own sidecar is a known limit only while the other end was told', () => {
    const kills = [{ side: 'client' as const, at: 150 }];
    assert.equal(judge(client({ kind: 'idle', outcome: 'truncated' }), server({ outcome: 'error' }), kills).verdict, 'eof-own-sidecar-killed');
    // Not when the kill came after the stream ended, nor when the server was not told either.
    assert.equal(judge(client({ kind: 'idle', outcome: 'truncated' }), server({ outcome: 'error' }), [{ side: 'client', at: 250 }]).verdict, 'truncated');
    assert.equal(judge(client({ kind: 'idle', outcome: 'truncated' }), server({ outcome: 'end', received: 500 }), kills).verdict, 'truncated');
    // The server had every byte and finished its part: only the client's own sidecar lost the echo.
    assert.equal(judge(client({ kind: 'idle', outcome: 'truncated', received: 0 }), server({ outcome: 'end' }), kills).verdict, 'eof-own-sidecar-killed');
    const serverKills = [{ side: 'server' as const, at: 150 }];
    assert.equal(judge(client({ outcome: 'reset' }), server({ outcome: 'end' }), serverKills).verdict, 'eof-own-sidecar-killed');
  });

  it('tallies bytes carried, lost and untold streams, and keeps the known limit apart', () => {
    const judged = judgeStreams(
      [client({ id: 'x' }), client({ id: 'y', outcome: 'truncated', received: 10 }), client({ id: 'z', outcome: 'reset' })],
      [server({ id: 'x', event: 'open', outcome: undefined }), server({ id: 'x' }), server({ id: 'y', outcome: 'error' }), server({ id: 'z', outcome: 'end' })],
      [{ side: 'server', at: 150 }],
    );
    const result = tally(judged);
    assert.deepEqual(result.byVerdict, { whole: 1, truncated: 1, 'eof-own-sidecar-killed': 1 });
    assert.equal(result.bytesCarried, 1000);
    assert.equal(result.bytesLost, 990);
    assert.equal(result.bytesLostKnownLimit, 0);
    assert.equal(result.untold, 1);
    assert.equal(result.knownLimit, 1);
  });

  it('recovery runs from the end of each fault to the end of the last failed short connection that failed before the next fault', () => {
    const streams = judgeStreams(
      [
        client({ id: 's1', kind: 'short', outcome: 'reset', startedAt: 1_000, endedAt: 1_400 }),
        client({ id: 's2', kind: 'short', outcome: 'reset', startedAt: 1_500, endedAt: 1_900 }),
        client({ id: 's3', kind: 'short', startedAt: 2_000, endedAt: 2_100 }),
        client({ id: 's4', kind: 'short', outcome: 'reset', startedAt: 5_100, endedAt: 5_300 }),
      ],
      ['s1', 's2', 's3', 's4'].map((id) => server({ id, outcome: id === 's3' ? 'end' : 'error' })),
    );
    assert.deepEqual(
      recoveryTimesMs(streams, [
        { at: 900, endsAt: 1_200 },
        { at: 5_000, endsAt: 5_000 },
        { at: 8_000, endsAt: 8_000 },
      ]),
      [700, 300, 0],
    );
    // A failure that began once the next fault (at 5 000) was under way belongs to it, not to the first.
    const spanning = judgeStreams([client({ id: 's5', kind: 'short', outcome: 'reset', startedAt: 5_050, endedAt: 6_000 })], [server({ id: 's5', outcome: 'error' })]);
    assert.deepEqual(recoveryTimesMs(spanning, [{ at: 1_000, endsAt: 2_000 }, { at: 5_000, endsAt: 5_500 }]), [0, 500]);
  });

  it('a short connection in flight when the next fault strikes is not counted as a slow recovery from the one before', () => {
    // Begun 10 ms before the next kill (at 5 000) and reset by it: the first fault had recovered at 2 100.
    const streams = judgeStreams(
      [
        client({ id: 's1', kind: 'short', outcome: 'reset', startedAt: 2_050, endedAt: 2_100 }),
        client({ id: 's2', kind: 'short', startedAt: 2_200, endedAt: 2_300 }),
        client({ id: 's3', kind: 'short', outcome: 'reset', startedAt: 4_990, endedAt: 5_020 }),
      ],
      ['s1', 's2', 's3'].map((id) => server({ id, outcome: id === 's2' ? 'end' : 'error' })),
    );
    assert.deepEqual(recoveryTimesMs(streams, [{ at: 1_000, endsAt: 2_000 }, { at: 5_000, endsAt: 6_000 }]), [100, 0]);
  });
});
