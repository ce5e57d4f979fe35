// The other traffic of the adversarial tests, run as its own process: an echo app, and a flow
// through a sidecar to it. Commands on stdin, one a line: `flow PORT` starts the flow through
// 127.0.0.1:PORT (answers `flowing`); `mark` answers `mark BYTES_ECHOED MS`, or `error WHY`
// once the flow failed. The first line out is `echo PORT`.
import { once } from 'node:events';
import net from 'node:net';
import { createInterface } from 'node:readline';

const FLOW_CHUNK_BYTES = 16 * 1024;
const FLOW_IN_FLIGHT_BYTES = 512 * 1024;

/**
 * A connection that keeps `FLOW_IN_FLIGHT_BYTES` in flight and checks every echoed byte against
 * what it sent (a fixed pattern, so the check is a compare at the right offset).
 */
class EchoFlow {
  readonly #socket: net.Socket;
  readonly #pattern = Buffer.alloc(FLOW_CHUNK_BYTES);
  #sentBytes = 0;
  echoedBytes = 0;
  failure: string | undefined;

  constructor(socket: net.Socket) {
    this.#socket = socket;
    for (let i = 0; i < FLOW_CHUNK_BYTES; i += 1) this.#pattern[i] = (i * 131 + 7) & 0xff;
    socket.on('data', (chunk: Buffer) => this.#onEcho(chunk));
    socket.on('error', (error) => (this.failure ??= `the flow's connection failed: ${error.message}`));
    socket.on('close', () => (this.failure ??= 'the flow\'s connection closed'));
    this.#pump();
  }

  #onEcho(chunk: Buffer): void {
    for (let offset = 0; offset < chunk.length; ) {
      const at = this.echoedBytes % FLOW_CHUNK_BYTES;
      const length = Math.min(FLOW_CHUNK_BYTES - at, chunk.length - offset);
      if (!chunk.subarray(offset, offset + length).equals(this.#pattern.subarray(at, at + length))) {
        this.failure ??= `echoed bytes differ at offset ${this.echoedBytes}`;
        this.#socket.destroy();
        return;
      }
      offset += length;
      this.echoedBytes += length;
    }
    this.#pump();
  }

  #pump(): void {
    while (this.failure === undefined && this.#sentBytes - this.echoedBytes < FLOW_IN_FLIGHT_BYTES) {
      this.#socket.write(this.#pattern);
      this.#sentBytes += FLOW_CHUNK_BYTES;
    }
  }
}

const echo = net.createServer({ allowHalfOpen: true }, (socket) => {
  socket.on('error', () => undefined);
  socket.pipe(socket);
});
echo.listen(0, '127.0.0.1');
await once(echo, 'listening');
process.stdout.write(`echo ${(echo.address() as net.AddressInfo).port}\n`);

let flow: EchoFlow | undefined;
for await (const line of createInterface({ input: process.stdin })) {
  const [command, argument] = line.split(' ');
  if (command === 'flow') {
    const socket = net.connect(Number(argument), '127.0.0.1');
    socket.setNoDelay(true);
    await once(socket, 'connect');
    flow = new EchoFlow(socket);
    process.stdout.write('flowing\n');
  } else if (command === 'mark') {
    const failure = flow === undefined ? 'no flow started' : flow.failure;
    process.stdout.write(failure === undefined ? `mark ${flow?.echoedBytes ?? 0} ${performance.now()}\n` : `error ${failure}\n`);
  }
}
