/**
 * HELLO exchange: both ends send HELLO first; the link speaks the highest version both support.
 */

import { ErrorCode, FrameType, PROTOCOL_MAX_VERSION, PROTOCOL_MIN_VERSION, ProtocolError } from '../../proto/index.js';
import type { HelloFrame } from '../../proto/index.js';

/** The HELLO this build sends, granting `initialWindowBytes` per stream. */
export function localHello(initialWindowBytes: number, maxVersion: number = PROTOCOL_MAX_VERSION): HelloFrame {
  return { type: FrameType.HELLO, minVersion: PROTOCOL_MIN_VERSION, maxVersion, initialWindowBytes };
}

/**
 * The version both ends speak: min(maxA, maxB), provided it is at least max(minA, minB).
 * @throws ProtocolError `TRELLIS_ERR_UNSUPPORTED_VERSION` (wire code UNSUPPORTED_VERSION)
 *   when the ranges do not overlap.
 */
export function negotiateVersion(local: Pick<HelloFrame, 'minVersion' | 'maxVersion'>, peer: Pick<HelloFrame, 'minVersion' | 'maxVersion'>): number {
  const version = Math.min(local.maxVersion, peer.maxVersion);
  if (version < Math.max(local.minVersion, peer.minVersion)) {
    throw new ProtocolError(
      'TRELLIS_ERR_UNSUPPORTED_VERSION',
      `no shared protocol version: this end speaks ${local.minVersion}..${local.maxVersion}, the peer ${peer.minVersion}..${peer.maxVersion}`,
      ErrorCode.UNSUPPORTED_VERSION,
    );
  }
  return version;
}
