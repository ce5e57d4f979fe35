/**
 * The app of the many-streams and idle workloads, in its own process: echoes every byte back
 * and half-closes when the client does. Prints `echo listening on PORT` once ready.
 */
import net from 'node:net';

/** Deep enough for the bursts of connections the many-streams client opens. */
const LISTEN_BACKLOG = 4096;

const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
  // A reset from a client that is being torn down is not this app's concern.
  socket.on('error', () => socket.destroy());
  socket.pipe(socket);
});
server.listen({ host: '127.0.0.1', port: 0, backlog: LISTEN_BACKLOG }, () => {
  process.stdout.write(`echo listening on ${(server.address() as net.AddressInfo).port}\n`);
});
process.on('SIGTERM', () => process.exit(0));
