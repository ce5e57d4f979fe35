// The health a sidecar reports with its registration: read when the message is encoded, so a
// reconnect carries the verdict of that moment; optional on the wire for version-1 sidecars.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeSidecarMessage, encodeControlMessage, parseSidecarMessage } from '../../proto/control.js';
import { sidecarRegistration } from '../../sidecar/control/registration.js';

describe('sidecar registration', () => {
  it('carries the app health as it is at each encoding', () => {
    let healthy = false;
    const registration = sidecarRegistration({ address: '127.0.0.1:7001', zone: 'default', weight: 2 }, () => healthy);
    assert.deepEqual(decodeSidecarMessage(encodeControlMessage(registration)), { type: 'register', address: '127.0.0.1:7001', zone: 'default', weight: 2, healthy: false });
    healthy = true;
    assert.equal((decodeSidecarMessage(encodeControlMessage(registration)) as { healthy?: boolean }).healthy, true);
  });

  it('accepts a version-1 register without health, and refuses a health that is not a boolean', () => {
    const v1 = parseSidecarMessage({ type: 'register', address: '127.0.0.1:7001', zone: 'default', weight: 1 });
    assert.equal((v1 as { healthy?: boolean }).healthy, undefined);
    assert.throws(() => parseSidecarMessage({ type: 'register', address: '127.0.0.1:7001', zone: 'default', weight: 1, healthy: 'yes' }), { code: 'TRELLIS_ERR_INVALID' });
  });
});
