import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ValidationError } from '../../proto/errors.js';
import type { JoinToken } from '../../proto/tokens.js';
import { encodeAdminToken, encodeJoinToken, parseAdminToken, parseJoinToken } from '../../proto/tokens.js';

const joinToken: JoinToken = {
  id: '0123456789abcdef',
  secret: Buffer.alloc(32, 7).toString('base64url'),
  caFingerprint: 'ab'.repeat(32),
  trustDomain: 'trellis.local',
  service: 'db',
  expiresAt: 1_900_000_000_000,
};

function assertBadToken(fn: () => unknown, messagePart: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ValidationError);
    assert.equal(err.code, 'TRELLIS_ERR_BAD_TOKEN');
    assert.match(err.message, messagePart);
    return true;
  });
}

describe('tokens', () => {
  it('round-trips join and admin tokens, ignoring surrounding whitespace', () => {
    const text = encodeJoinToken(joinToken);
    assert.ok(text.startsWith('trellis-join-v1.'));
    assert.deepEqual(parseJoinToken(`${text}\n`), joinToken);
    const { service: _s, expiresAt: _e, ...admin } = joinToken;
    const adminText = encodeAdminToken(admin);
    assert.ok(adminText.startsWith('trellis-admin-v1.'));
    assert.deepEqual(parseAdminToken(adminText), admin);
  });

  it('names what is wrong with a malformed token', () => {
    const text = encodeJoinToken(joinToken);
    assertBadToken(() => parseAdminToken(text), /wrong prefix/);
    assertBadToken(() => parseJoinToken('trellis-join-v1.not base64!'), /not base64url/);
    assertBadToken(() => parseJoinToken(`trellis-join-v1.${Buffer.from('{nope').toString('base64url')}`), /not JSON/);
    assertBadToken(() => parseJoinToken(`trellis-join-v1.${Buffer.from('[1]').toString('base64url')}`), /not a JSON object/);
    const { service: _service, ...withoutService } = joinToken;
    assertBadToken(() => parseJoinToken(`trellis-join-v1.${Buffer.from(JSON.stringify(withoutService)).toString('base64url')}`), /missing field "service"/);
    const badFingerprint = { ...joinToken, caFingerprint: 'XYZ' };
    assertBadToken(() => parseJoinToken(`trellis-join-v1.${Buffer.from(JSON.stringify(badFingerprint)).toString('base64url')}`), /caFingerprint/);
    assertBadToken(() => parseJoinToken('x'.repeat(5000)), /longer than/);
  });

  it('throws only ValidationError on arbitrary input', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.string().map((s) => `trellis-join-v1.${Buffer.from(s).toString('base64url')}`)), (text) => {
        try {
          parseJoinToken(text);
        } catch (err) {
          assert.ok(err instanceof ValidationError);
          assert.equal(err.code, 'TRELLIS_ERR_BAD_TOKEN');
        }
      }),
    );
  });
});
