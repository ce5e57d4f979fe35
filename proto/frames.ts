/**
 * Link frames: the units that travel on a link between two sidecars (see PROTOCOL.md).
 *
 * Every frame is `u16 headerLength | msgpack header | raw payload` where only DATA has a
 * payload. The header is a msgpack array whose first element is the frame type.
 */

/** Frame type codes, as they appear as the first element of the header array. */
export const FrameType = {
  HELLO: 0,
  PING: 1,
  PONG: 2,
  GOAWAY: 3,
  OPEN: 4,
  DATA: 5,
  WINDOW: 6,
  FIN: 7,
  RESET: 8,
  /** Protocol version 2: opens a tunnel stream along a path of gateways (see PROTOCOL.md). */
  TUNNEL: 9,
  /** Protocol version 3: the gateway named is draining; the tunnel on this stream should move (see PROTOCOL.md). */
  TUNNEL_DRAIN: 10,
} as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

/** Sent first by both ends of a link; the link uses the highest version both support. */
export interface HelloFrame {
  type: typeof FrameType.HELLO;
  /** Lowest protocol version this end speaks. */
  minVersion: number;
  /** Highest protocol version this end speaks. */
  maxVersion: number;
  /** Initial credit, in bytes, that this end grants every stream it receives or opens. */
  initialWindowBytes: number;
}

export interface PingFrame {
  type: typeof FrameType.PING;
  /** Echoed in the PONG; lets the sender match answers to questions. */
  nonce: number;
}

export interface PongFrame {
  type: typeof FrameType.PONG;
  nonce: number;
}

/** The sender opens no more streams and will close the link once its streams are done. */
export interface GoAwayFrame {
  type: typeof FrameType.GOAWAY;
  /** An ErrorCode; `ErrorCode.NONE` for a graceful drain. */
  code: number;
  message: string;
}

/** Opens a stream to `service` at the receiving sidecar. Data may follow at once. */
export interface OpenFrame {
  type: typeof FrameType.OPEN;
  streamId: number;
  /** Destination service name. The source identity is the link's peer certificate. */
  service: string;
}

/** Stream payload. `payload` is a view of the bytes read whenever possible. */
export interface DataFrame {
  type: typeof FrameType.DATA;
  streamId: number;
  payload: Buffer;
}

/** Grants the peer `creditBytes` more bytes of DATA on `streamId`. */
export interface WindowFrame {
  type: typeof FrameType.WINDOW;
  streamId: number;
  creditBytes: number;
}

/** Half-close: the sender will send no more DATA on this stream. */
export interface FinFrame {
  type: typeof FrameType.FIN;
  streamId: number;
}

/** Aborts a stream in both directions with an error code. */
export interface ResetFrame {
  type: typeof FrameType.RESET;
  streamId: number;
  /** An ErrorCode. */
  code: number;
  message: string;
}

/**
 * Opens a tunnel stream (version 2): the stream carries the two end sidecars' own mutual TLS
 * session, relayed by the gateways of `path`. `hop` is the index in `path` of the gateway that
 * receives this frame, or `path.length` when the receiver is the destination sidecar itself.
 */
export interface TunnelFrame {
  type: typeof FrameType.TUNNEL;
  streamId: number;
  /** Gateway keys (`<zone>/<name>`), from the source's zone to the destination's; 1..MAX_TUNNEL_HOPS. */
  path: string[];
  /** 0..path.length: who receives this frame (see above). */
  hop: number;
  /** The destination sidecar's id. */
  target: string;
}

/**
 * Sent on a tunnel stream (version 3) by a gateway that is draining, on both segments of each
 * tunnel it splices, and passed on by every gateway in between: the end sidecars move their
 * end-to-end link to another tunnel, letting its open streams finish on this one.
 */
export interface TunnelDrainFrame {
  type: typeof FrameType.TUNNEL_DRAIN;
  streamId: number;
  /** The key (`<zone>/<name>`) of the gateway that is draining. */
  gateway: string;
}

export type Frame =
  | HelloFrame
  | PingFrame
  | PongFrame
  | GoAwayFrame
  | OpenFrame
  | DataFrame
  | WindowFrame
  | FinFrame
  | ResetFrame
  | TunnelFrame
  | TunnelDrainFrame;

/** Protocol versions this build speaks. */
export const PROTOCOL_MIN_VERSION = 1;
export const PROTOCOL_MAX_VERSION = 3;
/** The first version with TUNNEL frames and gateway peers. */
export const TUNNEL_PROTOCOL_VERSION = 2;
/** The first version with TUNNEL_DRAIN frames: gateways that drain. */
export const TUNNEL_DRAIN_PROTOCOL_VERSION = 3;

/** Limits checked by the decoder before anything is buffered. */
export const Limits = {
  /** Largest msgpack header accepted, in bytes. */
  MAX_HEADER_BYTES: 1024,
  /** Largest DATA payload accepted in one frame, in bytes. */
  MAX_DATA_PAYLOAD_BYTES: 256 * 1024,
  /** Longest service name, in UTF-8 bytes. */
  MAX_SERVICE_NAME_BYTES: 253,
  /** Longest GOAWAY/RESET message, in UTF-8 bytes. */
  MAX_MESSAGE_BYTES: 512,
  /** Stream ids are positive integers below 2^31. */
  MAX_STREAM_ID: 0x7fffffff,
  /** Largest credit a single WINDOW frame may grant, and largest window overall. */
  MAX_WINDOW_BYTES: 0x7fffffff,
  /** Most gateways a tunnel may cross (the hop limit): a path is source-routed and loop-free. */
  MAX_TUNNEL_HOPS: 4,
  /** Longest sidecar id or gateway key in a TUNNEL frame, in bytes. */
  MAX_TUNNEL_NAME_BYTES: 128,
} as const;
