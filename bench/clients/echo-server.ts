/**
 * The app of the many-streams, idle and head-of-line workloads, in its own process: echoes
 * every byte back and half-closes when the client does. A connection whose first bytes are
 * {@link STALL_MARKER} is never read again: a reader that stopped. Prints
 * `echo listening on PORT` once ready.
 */
import net from 'node:net';
import { STALL_MARKER } from './stall-marker.js';

/** Deep enough for the bursts of connections the many-streams client opens. */
const LISTEN_BACKLOG = 4096;

const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
  // A reset from a client that is being torn down is not this app's concern.
  socket.on('error', () => socket.destroy());
  let echoing = false;
  socket.once('data', (first: Buffer) => {
    if (first.subarray(0, STALL_MARKER.length).toString('latin1') === STALL_MARKER) {
      socket.pause();
      return;
    }
    echoing = true;
    socket.write(first);
    socket.pipe(socket);
  });
  // A client that half-closes before sending anything gets the same back.
  socket.once('end', () => {
    if (!echoing) socket.end();
  });
});
server.listen({ host: '127.0.0.1', port: 0, backlog: LISTEN_BACKLOG }, () => {
  process.stdout.write(`echo listening on ${(server.address() as net.AddressInfo).port}\n`);
});
process.on('SIGTERM', () => process.exit(0));
