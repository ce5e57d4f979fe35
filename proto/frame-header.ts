/**
 * Frame headers as msgpack arrays, and the field rules both codec directions enforce: the
 * encoder refuses to write what the decoder would refuse to read. Internal to `proto/`.
 */

import { ErrorCode, ProtocolError } from './errors.js';
import { FrameType, Limits } from './frames.js';
import type { Frame } from './frames.js';
import { GATEWAY_KEY_PATTERN, SERVICE_NAME_PATTERN, SIDECAR_ID_PATTERN } from './names.js';

const MAX_UINT16 = 0xffff;
const MAX_UINT32 = 0xffffffff;

/** Header array lengths, indexed by frame type. */
const HEADER_ARITY: readonly number[] = [4, 2, 2, 3, 3, 3, 3, 2, 4, 5, 3];

/** Throws the error of a field that breaks its rule. */
function badField(what: string): never {
  throw new ProtocolError('TRELLIS_ERR_BAD_FIELD', `invalid ${what}`);
}

function integerIn(value: unknown, min: number, max: number, what: string): number {
  // Number.isInteger accepts any msgpack encoding of an integral value (fixint, uint64, float
  // 1.0): peers are not required to pick the shortest form.
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    badField(what);
  }
  return value;
}

/** A stream id: 1..MAX_STREAM_ID. */
export function checkStreamId(value: unknown): number {
  return integerIn(value, 1, Limits.MAX_STREAM_ID, 'stream id');
}

function checkVersion(value: unknown): number {
  return integerIn(value, 1, MAX_UINT16, 'protocol version');
}

function checkNonce(value: unknown): number {
  return integerIn(value, 0, MAX_UINT32, 'nonce');
}

/** Wire error codes are uint32: codes this build does not know are still carried. */
function checkErrorCode(value: unknown): number {
  return integerIn(value, 0, MAX_UINT32, 'error code');
}

function checkService(value: unknown): string {
  // Length first: the pattern only ever sees short strings.
  if (typeof value !== 'string' || value.length > Limits.MAX_SERVICE_NAME_BYTES || !SERVICE_NAME_PATTERN.test(value)) {
    badField('service name');
  }
  return value;
}

function checkTunnelName(value: unknown, pattern: RegExp, what: string): string {
  if (typeof value !== 'string' || value.length > Limits.MAX_TUNNEL_NAME_BYTES || !pattern.test(value)) badField(what);
  return value;
}

/** A TUNNEL path: 1..MAX_TUNNEL_HOPS gateway keys, no gateway twice (a loop). */
function checkTunnelPath(value: unknown): string[] {
  if (!Array.isArray(value) || value.length === 0 || value.length > Limits.MAX_TUNNEL_HOPS) badField('tunnel path');
  const path = value.map((key) => checkTunnelName(key, GATEWAY_KEY_PATTERN, 'tunnel path'));
  if (new Set(path).size !== path.length) badField('tunnel path');
  return path;
}

function checkMessage(value: unknown): string {
  if (typeof value !== 'string') badField('message');
  // A UTF-16 unit takes 1 to 3 UTF-8 bytes: only strings in between need counting.
  if (value.length > Limits.MAX_MESSAGE_BYTES) badField('message');
  if (value.length * 3 > Limits.MAX_MESSAGE_BYTES && Buffer.byteLength(value, 'utf8') > Limits.MAX_MESSAGE_BYTES) {
    badField('message');
  }
  return value;
}

/**
 * The frame type of a decoded header, after checking that it is an array of the right length.
 * @throws ProtocolError `TRELLIS_ERR_BAD_HEADER` (not an array, wrong length) or
 *   `TRELLIS_ERR_UNKNOWN_FRAME_TYPE`.
 */
export function headerFrameType(header: unknown): FrameType {
  if (!Array.isArray(header) || header.length === 0) {
    throw new ProtocolError('TRELLIS_ERR_BAD_HEADER', 'frame header is not a non-empty array');
  }
  const type: unknown = header[0];
  const arity = typeof type === 'number' ? HEADER_ARITY[type] : undefined;
  if (arity === undefined) {
    throw new ProtocolError('TRELLIS_ERR_UNKNOWN_FRAME_TYPE', 'unknown frame type');
  }
  if (header.length !== arity) {
    throw new ProtocolError('TRELLIS_ERR_BAD_HEADER', `frame header of type ${type as number} has the wrong length`);
  }
  return type as FrameType;
}

/**
 * The declared payload length of a DATA header, checked against `maxPayloadBytes`.
 * @throws ProtocolError `TRELLIS_ERR_BAD_FIELD`, or `TRELLIS_ERR_FRAME_TOO_LARGE` (wire code
 *   FRAME_TOO_LARGE) for an integer above the limit.
 */
export function checkPayloadLength(value: unknown, maxPayloadBytes: number): number {
  const length = integerIn(value, 0, Number.MAX_SAFE_INTEGER, 'payload length');
  if (length > maxPayloadBytes) {
    throw new ProtocolError(
      'TRELLIS_ERR_FRAME_TOO_LARGE',
      `DATA payload of ${length} bytes exceeds ${maxPayloadBytes}`,
      ErrorCode.FRAME_TOO_LARGE,
    );
  }
  return length;
}

/**
 * The frame of a header of every type but DATA (whose payload the decoder reads separately).
 * `header` must have passed {@link headerFrameType}, which returned `type`.
 * @throws ProtocolError `TRELLIS_ERR_BAD_FIELD`.
 */
export function controlFrameFromHeader(header: readonly unknown[], type: Exclude<FrameType, typeof FrameType.DATA>): Frame {
  switch (type) {
    case FrameType.HELLO: {
      const minVersion = checkVersion(header[1]);
      const maxVersion = checkVersion(header[2]);
      if (minVersion > maxVersion) badField('version range');
      const initialWindowBytes = integerIn(header[3], 0, Limits.MAX_WINDOW_BYTES, 'initial window');
      return { type, minVersion, maxVersion, initialWindowBytes };
    }
    case FrameType.PING:
    case FrameType.PONG:
      return { type, nonce: checkNonce(header[1]) };
    case FrameType.GOAWAY:
      return { type, code: checkErrorCode(header[1]), message: checkMessage(header[2]) };
    case FrameType.OPEN:
      return { type, streamId: checkStreamId(header[1]), service: checkService(header[2]) };
    case FrameType.WINDOW:
      return {
        type,
        streamId: checkStreamId(header[1]),
        creditBytes: integerIn(header[2], 1, Limits.MAX_WINDOW_BYTES, 'credit'),
      };
    case FrameType.FIN:
      return { type, streamId: checkStreamId(header[1]) };
    case FrameType.RESET:
      return {
        type,
        streamId: checkStreamId(header[1]),
        code: checkErrorCode(header[2]),
        message: checkMessage(header[3]),
      };
    case FrameType.TUNNEL: {
      const path = checkTunnelPath(header[2]);
      return {
        type,
        streamId: checkStreamId(header[1]),
        path,
        hop: integerIn(header[3], 0, path.length, 'tunnel hop'),
        target: checkTunnelName(header[4], SIDECAR_ID_PATTERN, 'tunnel target'),
      };
    }
    case FrameType.TUNNEL_DRAIN:
      return { type, streamId: checkStreamId(header[1]), gateway: checkTunnelName(header[2], GATEWAY_KEY_PATTERN, 'draining gateway') };
  }
}

/**
 * The header array of `frame`, after checking every field by the decoder's rules (for DATA,
 * the payload length against the protocol limit).
 * @throws ProtocolError `TRELLIS_ERR_BAD_FIELD`, `TRELLIS_ERR_FRAME_TOO_LARGE` or
 *   `TRELLIS_ERR_UNKNOWN_FRAME_TYPE`.
 */
export function headerOfFrame(frame: Frame): unknown[] {
  switch (frame.type) {
    case FrameType.DATA: {
      if (!(frame.payload instanceof Uint8Array)) badField('payload');
      const length = checkPayloadLength(frame.payload.length, Limits.MAX_DATA_PAYLOAD_BYTES);
      return [frame.type, checkStreamId(frame.streamId), length];
    }
    case FrameType.HELLO:
      return checked([frame.type, frame.minVersion, frame.maxVersion, frame.initialWindowBytes]);
    case FrameType.PING:
    case FrameType.PONG:
      return checked([frame.type, frame.nonce]);
    case FrameType.GOAWAY:
      return checked([frame.type, frame.code, frame.message]);
    case FrameType.OPEN:
      return checked([frame.type, frame.streamId, frame.service]);
    case FrameType.WINDOW:
      return checked([frame.type, frame.streamId, frame.creditBytes]);
    case FrameType.FIN:
      return checked([frame.type, frame.streamId]);
    case FrameType.RESET:
      return checked([frame.type, frame.streamId, frame.code, frame.message]);
    case FrameType.TUNNEL:
      return checked([frame.type, frame.streamId, frame.path, frame.hop, frame.target]);
    case FrameType.TUNNEL_DRAIN:
      return checked([frame.type, frame.streamId, frame.gateway]);
    default:
      throw new ProtocolError('TRELLIS_ERR_UNKNOWN_FRAME_TYPE', 'unknown frame type');
  }
}

/** Runs the decoder's checks on a control header about to be written. */
function checked(header: unknown[]): unknown[] {
  controlFrameFromHeader(header, header[0] as Exclude<FrameType, typeof FrameType.DATA>);
  return header;
}
