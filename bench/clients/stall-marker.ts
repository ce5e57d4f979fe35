/**
 * First bytes of a connection that the echo app must stop reading: a reader that stopped
 * (clients/echo-server.ts, clients/bulk-beside-stall.ts).
 */
export const STALL_MARKER = 'STALL\n';
