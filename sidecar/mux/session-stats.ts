/** The counters a session reports through `Session.stats`, for metrics and tests. */

/** Counters of a session. */
export interface SessionStats {
  /** Streams open now, both directions. */
  activeStreams: number;
  /** Streams opened since the session started, both directions (refused ones excluded). */
  openedStreams: number;
  /** Link bytes read from and written to the socket. */
  bytesIn: number;
  bytesOut: number;
  /** Round-trip time of the last answered ping(), in ms. */
  rttMs?: number;
  /** The protocol version agreed in the HELLO exchange. */
  negotiatedVersion?: number;
  /** Bytes written but not yet taken by the kernel (plus frames held for the HELLO exchange). */
  bufferedBytes: number;
}
