/**
 * The multiplexer's pure pieces: version negotiation, option checks, message cutting, and
 * the bounded memory of reset streams.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ErrorCode, Limits, ProtocolError } from '../../proto/index.js';
import { negotiateVersion } from '../../sidecar/mux/handshake.js';
import { RecentStreamIds } from '../../sidecar/mux/recent-stream-ids.js';
import { resolveSessionInit } from '../../sidecar/mux/session-init.js';
import { wireMessage } from '../../sidecar/mux/wire-message.js';

describe('mux units', () => {
  it('negotiates the highest shared version, or refuses with UNSUPPORTED_VERSION', () => {
    assert.equal(negotiateVersion({ minVersion: 1, maxVersion: 3 }, { minVersion: 2, maxVersion: 5 }), 3);
    assert.equal(negotiateVersion({ minVersion: 1, maxVersion: 1 }, { minVersion: 1, maxVersion: 9 }), 1);
    assert.throws(
      () => negotiateVersion({ minVersion: 1, maxVersion: 2 }, { minVersion: 3, maxVersion: 4 }),
      (error: unknown) => error instanceof ProtocolError && error.code === 'TRELLIS_ERR_UNSUPPORTED_VERSION' && error.wireCode === ErrorCode.UNSUPPORTED_VERSION,
    );
  });

  it('applies defaults and rejects options out of range', () => {
    const resolved = resolveSessionInit({ role: 'dialer', initialWindowBytes: undefined });
    assert.equal(resolved.initialWindowBytes, 256 * 1024);
    assert.equal(resolved.maxFramePayloadBytes, 64 * 1024);
    assert.equal(resolved.maxConcurrentStreams, 10_000);
    assert.equal(resolved.helloTimeoutMs, 10_000);
    assert.throws(() => resolveSessionInit({ role: 'dialer', maxFramePayloadBytes: Limits.MAX_DATA_PAYLOAD_BYTES + 1 }), { code: 'TRELLIS_ERR_INVALID' });
    assert.throws(() => resolveSessionInit({ role: 'acceptor', initialWindowBytes: 0 }), { code: 'TRELLIS_ERR_INVALID' });
    assert.throws(() => resolveSessionInit({ role: 'peer' as 'dialer' }), { code: 'TRELLIS_ERR_INVALID' });
  });

  it('cuts long messages to the wire limit without splitting a character', () => {
    assert.equal(wireMessage('short'), 'short');
    const ascii = wireMessage('x'.repeat(2000));
    assert.equal(Buffer.byteLength(ascii), Limits.MAX_MESSAGE_BYTES);
    const emoji = wireMessage('😀'.repeat(200));
    assert.ok(Buffer.byteLength(emoji) <= Limits.MAX_MESSAGE_BYTES);
    assert.equal(emoji, '😀'.repeat(Math.floor(Limits.MAX_MESSAGE_BYTES / 4)));
  });

  it('remembers only the most recent reset stream ids', () => {
    const recent = new RecentStreamIds(3);
    for (const id of [1, 3, 5]) recent.add(id);
    recent.add(3);
    assert.ok(recent.has(1) && recent.has(3) && recent.has(5));
    recent.add(7);
    assert.equal(recent.has(1), false);
    assert.ok(recent.has(3) && recent.has(5) && recent.has(7));
  });
});
