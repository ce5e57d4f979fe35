// A hand-driven sidecar for the across-clouds tests, run as a program inside a host's namespace:
// joins with a service token (sidecar/join.ts), dials a gateway's link (the repo's own TLS
// transport and mux Session) and opens what a well-behaved sidecar never would, printing how
// the gateway answered as one JSON line.
//   node tunnel-probe.js CP_URL TOKEN SERVICE GATEWAY_ADDRESS ZONE NAME ACTION [PATH TARGET]
// ACTION: `tunnel` (opens TUNNEL hop 0 along PATH, comma-separated, to TARGET) or `stream` (a plain OPEN of SERVICE).
import { fileURLToPath } from 'node:url';
import { parseJoinToken } from '../../proto/tokens.js';
import { Credentials } from '../../sidecar/identity/credentials.js';
import { joinMesh } from '../../sidecar/join.js';
import { TlsLinkTransport } from '../../sidecar/links/tls-transport.js';
import type { MuxStream } from '../../sidecar/mux/index.js';
import { Session } from '../../sidecar/mux/index.js';

export interface ProbeResult {
  /** `reset`: the gateway reset the stream; `data`/`end`: it let something through; `timeout`: it said nothing. */
  readonly outcome: 'reset' | 'data' | 'end' | 'timeout' | 'session-closed';
  readonly code?: number;
  readonly message?: string;
}

const ANSWER_TIMEOUT_MS = 10_000;

function answer(stream: MuxStream, session: Session): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve({ outcome: 'timeout' }), ANSWER_TIMEOUT_MS);
    const done = (result: ProbeResult): void => {
      clearTimeout(timer);
      resolve(result);
    };
    stream.once('reset', (code: number, message: string) => done({ outcome: 'reset', code, message }));
    stream.once('data', () => done({ outcome: 'data' }));
    stream.once('end', () => done({ outcome: 'end' }));
    session.once('close', () => done({ outcome: 'session-closed' }));
  });
}

async function main(argv: string[]): Promise<void> {
  const [cpUrl = '', rawToken = '', service = '', address = '', zone = '', name = '', action = '', path = '', target = ''] = argv;
  const credentials = new Credentials(await joinMesh([cpUrl], parseJoinToken(rawToken), rawToken, service));
  const link = await new TlsLinkTransport(credentials).dial({ address, peer: { kind: 'gateway', zone, name } });
  const session = new Session(link.socket, { role: 'dialer' });
  session.on('error', () => undefined);
  await session.whenReady();
  const stream = action === 'tunnel' ? session.openTunnel(path.split(','), 0, target) : session.openStream(service);
  // A refused tunnel must relay nothing: these bytes must never reach anyone.
  stream.write(Buffer.from('probe bytes that no hop may relay'));
  const result = await answer(stream, session);
  process.stdout.write(`${JSON.stringify(result)}\n`);
  session.close();
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then(
    () => process.exit(0),
    (error: unknown) => {
      process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      process.exit(1);
    },
  );
}
