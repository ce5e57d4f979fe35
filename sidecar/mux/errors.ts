/**
 * Errors of the stream multiplexer. Protocol violations by the peer are `ProtocolError`s from
 * `proto/`; everything else a session reports is a {@link MuxError} with a stable code.
 */

import { ProtocolError, TrellisError } from '../../proto/index.js';

/** Stable codes of {@link MuxError}. */
export type MuxErrorCode =
  /** A GOAWAY was sent or received: the link takes no new streams. */
  | 'TRELLIS_ERR_GOING_AWAY'
  /** The session is closed: nothing can be opened or sent on it any more. */
  | 'TRELLIS_ERR_SESSION_CLOSED'
  /** The peer's HELLO did not arrive within `helloTimeoutMs`. */
  | 'TRELLIS_ERR_HELLO_TIMEOUT'
  /** The link's socket ended or failed while the session was in use. */
  | 'TRELLIS_ERR_LINK_CLOSED'
  /** The peer closed the link with an error GOAWAY; `wireCode` says why. */
  | 'TRELLIS_ERR_PEER_GOAWAY'
  /** `write()` or `end()` after the stream's sending side was already ended. */
  | 'TRELLIS_ERR_STREAM_CLOSED'
  /** A listener threw while the session handled a frame; the link is closed. */
  | 'TRELLIS_ERR_INTERNAL'
  /** A stream carried as a Duplex (a tunnel) was reset; `wireCode` is the reset's code. */
  | 'TRELLIS_ERR_STREAM_RESET'
  /** A tunnel was asked of a link whose peer speaks protocol version 1. */
  | 'TRELLIS_ERR_TUNNEL_UNSUPPORTED'
  /** No PONG came back within the ping timeout: the link is taken for dead. */
  | 'TRELLIS_ERR_PING_TIMEOUT'
  /**
   * The peer kept sending but read nothing, until more than four times the link's write budget
   * was queued for it (PROTOCOL.md, "Budget"); the link is closed with GOAWAY RESOURCE_EXHAUSTED.
   */
  | 'TRELLIS_ERR_PEER_NOT_READING';

/** An error of the multiplexer that is not the peer breaking the protocol. */
export class MuxError extends TrellisError {
  override readonly name = 'MuxError';
  constructor(
    code: MuxErrorCode,
    message: string,
    options?: {
      cause?: unknown;
      /** The wire ErrorCode involved (the peer's GOAWAY code, for `TRELLIS_ERR_PEER_GOAWAY`). */
      wireCode?: number;
    },
  ) {
    super(code, message, options);
    this.wireCode = options?.wireCode;
  }

  /** The wire ErrorCode involved, when there is one. */
  readonly wireCode: number | undefined;
}

/**
 * Whether a session closed because the peer misbehaved (broke the protocol, never sent HELLO,
 * or stopped reading while it kept sending): what the metrics count as a protocol violation, whichever end dialled.
 */
export function isPeerViolation(error: unknown): error is TrellisError {
  return error instanceof ProtocolError || (error instanceof MuxError && (error.code === 'TRELLIS_ERR_PEER_NOT_READING' || error.code === 'TRELLIS_ERR_HELLO_TIMEOUT'));
}
