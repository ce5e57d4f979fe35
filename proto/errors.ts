/**
 * Errors: one base class with a stable string code for every condition, and the numeric codes
 * that travel in RESET and GOAWAY frames. Tests assert codes, never messages.
 */

import type { TrellisErrorCode } from './error-codes.js';

/** Numeric error codes carried on the wire (RESET, GOAWAY). Stable across versions. */
export const ErrorCode = {
  /** Graceful: no error. */
  NONE: 0,
  /** The peer broke the framing or state rules of the protocol. */
  PROTOCOL_ERROR: 1,
  /** The peer sent more DATA than the credit it was given. */
  FLOW_CONTROL_ERROR: 2,
  /** A declared length exceeded a limit. */
  FRAME_TOO_LARGE: 3,
  /** No shared protocol version. */
  UNSUPPORTED_VERSION: 4,
  /** The destination's policy denies the caller's identity. */
  POLICY_DENIED: 5,
  /** The destination sidecar could not reach its app. */
  APP_UNREACHABLE: 6,
  /** The destination sidecar does not serve the requested service. */
  UNKNOWN_SERVICE: 7,
  /** The stream was aborted (socket error, app reset). */
  STREAM_ABORTED: 8,
  /** The sidecar is draining and takes no new streams. */
  GOING_AWAY: 9,
  /** Too many streams or buffered bytes. */
  RESOURCE_EXHAUSTED: 10,
  /** An internal failure. */
  INTERNAL_ERROR: 11,
  /** No bytes crossed the stream either way for the sidecar's idle timeout. */
  IDLE_TIMEOUT: 12,
  /** Version 2: a gateway or destination refused a tunnel (not a published route, wrong hop or peer). */
  ROUTE_REFUSED: 13,
  /** Version 2: no path to the destination, or the next hop of a tunnel could not be reached. */
  NO_ROUTE: 14,
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

const errorCodeNames = new Map<number, string>(Object.entries(ErrorCode).map(([name, code]) => [code, name]));

/** The name of a wire error code, or `UNKNOWN(<n>)` for a code this build does not know. */
export function errorCodeName(code: number): string {
  return errorCodeNames.get(code) ?? `UNKNOWN(${code})`;
}

/** Base class of every error Trellis throws on purpose. `code` is stable; match on it. */
export class TrellisError extends Error {
  override readonly name: string = 'TrellisError';
  constructor(
    readonly code: TrellisErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A malformed or over-limit frame, or a frame that breaks the protocol's rules. */
export class ProtocolError extends TrellisError {
  override readonly name = 'ProtocolError';
  constructor(
    code: ProtocolErrorCode,
    message: string,
    /** The wire code to send in the GOAWAY that closes the link. */
    readonly wireCode: ErrorCode = ErrorCode.PROTOCOL_ERROR,
  ) {
    super(code, message);
  }
}

export type ProtocolErrorCode =
  | 'TRELLIS_ERR_FRAME_TOO_LARGE'
  | 'TRELLIS_ERR_HEADER_TOO_LARGE'
  | 'TRELLIS_ERR_BAD_HEADER'
  | 'TRELLIS_ERR_UNKNOWN_FRAME_TYPE'
  | 'TRELLIS_ERR_BAD_FIELD'
  | 'TRELLIS_ERR_UNSUPPORTED_VERSION'
  | 'TRELLIS_ERR_UNEXPECTED_FRAME'
  | 'TRELLIS_ERR_FLOW_CONTROL'
  | 'TRELLIS_ERR_STREAM_ID';

/** A control-plane message or external input (flag, token, config) that failed validation. */
export class ValidationError extends TrellisError {
  override readonly name = 'ValidationError';
  constructor(message: string, code: TrellisErrorCode = 'TRELLIS_ERR_INVALID') {
    super(code, message);
  }
}
