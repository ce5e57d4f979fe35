import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { EndpointValue, SidecarMessage } from '../../proto/control.js';
import {
  decodeControlPlaneMessage,
  decodeSidecarMessage,
  encodeControlMessage,
  parseConfigEntry,
  parseControlPlaneMessage,
  parseSidecarMessage,
} from '../../proto/control.js';
import { ValidationError } from '../../proto/errors.js';

const endpoint: EndpointValue = { sidecarId: 'sc-0123456789ab', service: 'db', address: '10.0.0.1:7401', zone: 'eu-1', weight: 100, healthy: true };

function assertInvalid(fn: () => unknown, messagePart: RegExp): void {
  assert.throws(fn, (err: unknown) => err instanceof ValidationError && err.code === 'TRELLIS_ERR_INVALID' && messagePart.test(err.message));
}

describe('control-plane messages', () => {
  it('accepts every sidecar message and round-trips it through msgpack', () => {
    const messages: SidecarMessage[] = [
      { type: 'register', address: '[::1]:7401', zone: '', weight: 1 },
      { type: 'register', address: 'wss://10.0.0.1:7443/trellis/v2/link', zone: 'a', weight: 1 },
      { type: 'register', address: 'tls://10.0.0.1:7401', zone: 'a', weight: 1 },
      { type: 'register-gateway', addresses: ['tls://10.0.0.1:7600', 'wss://gw.example:443'] },
      { type: 'gateway-links', peers: ['a/ga', 'c/gc'] },
      { type: 'ack', version: 42 },
      { type: 'renew', csrPem: '-----BEGIN CERTIFICATE REQUEST-----' },
      { type: 'health', healthy: false },
      { type: 'register', address: '10.0.0.1:7401', zone: 'a', weight: 1, channel: 2, services: ['db', 'cache'], resume: { version: 17, services: ['db'] } },
      { type: 'register-gateway', addresses: [], channel: 2, resume: { version: 9 } },
      { type: 'subscribe', services: ['db'] },
      { type: 'unsubscribe', services: ['db', 'cache'] },
      { type: 'nack', version: 12, haveVersion: 10 },
    ];
    for (const message of messages) assert.deepEqual(decodeSidecarMessage(encodeControlMessage(message)), message);
  });

  it('names the bad field of an invalid sidecar message', () => {
    assertInvalid(() => parseSidecarMessage({ type: 'register', address: 'nohostport', zone: 'a', weight: 1 }), /address/);
    assertInvalid(() => parseSidecarMessage({ type: 'register', address: 'h:1', zone: 'a', weight: 0 }), /weight/);
    assertInvalid(() => parseSidecarMessage({ type: 'register', address: 'ws://h:1', zone: 'a', weight: 1 }), /address/);
    assertInvalid(() => parseSidecarMessage({ type: 'register', address: 'tls://h:1/path', zone: 'a', weight: 1 }), /address/);
    assertInvalid(() => parseSidecarMessage({ type: 'dance' }), /type/);
    // Channel 2: subscriptions name services, one to 256 at a time; a register names at most 1024.
    assertInvalid(() => parseSidecarMessage({ type: 'subscribe', services: [] }), /services/);
    assertInvalid(() => parseSidecarMessage({ type: 'subscribe', services: Array.from({ length: 257 }, (_, i) => `s${i}`) }), /services/);
    assertInvalid(() => parseSidecarMessage({ type: 'unsubscribe', services: ['Not_A_Name'] }), /services\.0/);
    assertInvalid(() => parseSidecarMessage({ type: 'register', address: 'h:1', zone: 'a', weight: 1, services: Array.from({ length: 1025 }, (_, i) => `s${i}`) }), /services/);
    assertInvalid(() => parseSidecarMessage({ type: 'register', address: 'h:1', zone: 'a', weight: 1, channel: 0 }), /channel/);
    assertInvalid(() => parseSidecarMessage({ type: 'register', address: 'h:1', zone: 'a', weight: 1, resume: { version: -1 } }), /resume\.version/);
    assertInvalid(() => parseSidecarMessage({ type: 'nack', version: 3 }), /haveVersion/);
    assertInvalid(() => parseSidecarMessage('register'), /sidecar message/);
    assertInvalid(() => decodeSidecarMessage(Buffer.from([0x92, 0x01])), /not msgpack/);
  });

  it('validates config entries in snapshots and deltas and drops unknown kinds', () => {
    const snapshot = parseControlPlaneMessage({
      type: 'snapshot',
      version: 3,
      entries: [
        ['endpoint/db/sc-0123456789ab', endpoint],
        ['policy/default', { action: 'deny' }],
        ['policy/rule/*/db', { from: '*', to: 'db', action: 'allow' }],
        ['future-kind/x', { anything: true }],
      ],
    });
    assert.equal(snapshot.type, 'snapshot');
    assert.equal(snapshot.type === 'snapshot' && snapshot.entries.length, 3);
    const delta = decodeControlPlaneMessage(encodeControlMessage({ type: 'delta', version: 4, baseVersion: 3, changes: [['endpoint/db/sc-0123456789ab', null]] }));
    assert.deepEqual(delta, { type: 'delta', version: 4, baseVersion: 3, changes: [['endpoint/db/sc-0123456789ab', null]] });
    assertInvalid(() => parseConfigEntry('endpoint/web/sc-0123456789ab', endpoint), /does not match/);
    assertInvalid(() => parseConfigEntry('policy/rule/a/b', { from: 'a', to: 'b', action: 'maybe' }), /action/);
  });

  it('throws only ValidationError on arbitrary bytes and values', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        for (const decode of [decodeSidecarMessage, decodeControlPlaneMessage]) {
          try {
            decode(bytes);
          } catch (err) {
            assert.ok(err instanceof ValidationError, String(err));
          }
        }
      }),
    );
    fc.assert(
      fc.property(fc.anything(), (value) => {
        try {
          parseControlPlaneMessage({ type: 'snapshot', version: 1, entries: [['endpoint/a/b', value]] });
        } catch (err) {
          assert.ok(err instanceof ValidationError, String(err));
        }
      }),
    );
  });
});
