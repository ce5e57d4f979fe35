/**
 * The stream multiplexer: many flow-controlled byte streams over one link (any Duplex; a
 * mutual-TLS socket between two sidecars in production).
 */
export { Session } from './session.js';
export { CLOSE_LINGER_MS } from './frame-writer.js';
export type { SessionStats } from './session-stats.js';
export { MuxStream } from './stream.js';
export type { MuxStreamStats } from './stream.js';
export type { SessionInit } from './session-init.js';
export { MuxError } from './errors.js';
export type { MuxErrorCode } from './errors.js';
export { MuxStreamDuplex } from './stream-duplex.js';
