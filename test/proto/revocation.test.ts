// The one reading of revocation entries: by id, and by service with a notBefore cut-off.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { RevokedServiceValue, RevokedSidecarValue } from '../../proto/control.js';
import { parseConfigEntry } from '../../proto/control.js';
import { ValidationError } from '../../proto/errors.js';
import type { RevocationLookup } from '../../proto/revocation.js';
import { revocationOf } from '../../proto/revocation.js';

const CUTOFF_MS = Date.parse('2026-12-02T06:00:00Z');

function lookup(sidecars: RevokedSidecarValue[], services: RevokedServiceValue[]): RevocationLookup {
  return {
    sidecar: (id) => sidecars.find((entry) => entry.sidecarId === id),
    service: (name) => services.find((entry) => entry.service === name),
  };
}

describe('revocationOf', () => {
  const revocations = lookup([{ sidecarId: 'sc-aaaaaaaaaaaa', revokedAt: CUTOFF_MS }], [{ service: 'db', revokedAt: CUTOFF_MS + 60_000, notBeforeCutoff: CUTOFF_MS, refuseJoins: false }]);

  it('covers a revoked id, whatever its service or notBefore', () => {
    assert.notEqual(revocationOf(revocations, { id: 'sc-aaaaaaaaaaaa', service: 'web', notBeforeMs: undefined }), undefined);
    assert.equal(revocationOf(revocations, { id: 'sc-bbbbbbbbbbbb', service: 'web', notBeforeMs: CUTOFF_MS }), undefined);
  });

  it('covers a revoked service up to and including the cut-off, not after it', () => {
    assert.notEqual(revocationOf(revocations, { id: 'sc-1', service: 'db', notBeforeMs: CUTOFF_MS - 1000 }), undefined);
    assert.notEqual(revocationOf(revocations, { id: 'sc-1', service: 'db', notBeforeMs: CUTOFF_MS }), undefined);
    assert.equal(revocationOf(revocations, { id: 'sc-1', service: 'db', notBeforeMs: CUTOFF_MS + 1000 }), undefined);
    assert.equal(revocationOf(revocations, { id: 'gw-1', service: undefined, notBeforeMs: CUTOFF_MS - 1000 }), undefined, 'a gateway has no service');
  });

  it('checks only the id when the notBefore is unknown (a resumed dial)', () => {
    assert.equal(revocationOf(revocations, { id: 'sc-1', service: 'db', notBeforeMs: undefined }), undefined);
  });
});

describe('revocation entries', () => {
  it('parse when the key agrees with the value, and fail naming the key otherwise', () => {
    assert.deepEqual(parseConfigEntry('revoked/sidecar/sc-1', { sidecarId: 'sc-1', revokedAt: 5 }), { sidecarId: 'sc-1', revokedAt: 5 });
    const service = { service: 'db', revokedAt: 5, notBeforeCutoff: 1, refuseJoins: true };
    assert.deepEqual(parseConfigEntry('revoked/service/db', service), service);
    assert.throws(() => parseConfigEntry('revoked/sidecar/sc-2', { sidecarId: 'sc-1', revokedAt: 5 }), (error: unknown) => error instanceof ValidationError && error.code === 'TRELLIS_ERR_INVALID');
    assert.throws(() => parseConfigEntry('revoked/service/db', { ...service, refuseJoins: 'yes' }), (error: unknown) => error instanceof ValidationError && error.code === 'TRELLIS_ERR_INVALID');
    assert.equal(parseConfigEntry('revoked/certificate/abc', {}), undefined, 'an unknown kind under revoked/ is dropped, as any unknown kind');
  });
});
