// A hand-driven mesh client for tests that must see one destination sidecar's answer: joins as a
// service with a real token (sidecar/join.ts), dials a sidecar's link with the repo's own TLS
// transport and mux Session, and opens streams on it; also tries the control plane's channel
// with a sidecar's saved certificate.
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import { SIDECAR_CHANNEL_PATH } from '../../proto/control.js';
import { parseJoinToken } from '../../proto/tokens.js';
import type { CredentialsInit } from '../../sidecar/identity/credentials.js';
import { Credentials } from '../../sidecar/identity/credentials.js';
import { joinMesh } from '../../sidecar/join.js';
import { TlsLinkTransport } from '../../sidecar/links/tls-transport.js';
import type { MuxStream } from '../../sidecar/mux/index.js';
import { Session } from '../../sidecar/mux/index.js';
import type { ControlPlaneProcess } from './mesh.js';
import { createToken } from './mesh.js';

/** How a destination answered a stream: its app's first bytes, or a RESET with a wire code. */
export type StreamAnswer = { outcome: 'data'; text: string } | { outcome: 'reset'; code: number } | { outcome: 'closed' };

/** Credentials of a new sidecar identity of `service`, joined with a fresh token. */
export async function joinAs(cp: ControlPlaneProcess, service: string): Promise<Credentials> {
  const raw = await createToken(cp, service);
  return new Credentials(await joinMesh([cp.url], parseJoinToken(raw), raw, service));
}

/** One link, dialled by `credentials` to the sidecar of `service` at `address`. */
export async function dialLink(credentials: Credentials, address: string, service: string): Promise<Session> {
  const link = await new TlsLinkTransport(credentials).dial({ address, peer: { kind: 'service', service } });
  const session = new Session(link.socket, { role: 'dialer' });
  await session.whenReady();
  return session;
}

/** Resolves with the first thing `stream` says: data, a reset (with its code), or the link's end. */
export function firstAnswer(stream: MuxStream, session: Session): Promise<StreamAnswer> {
  return new Promise((resolve) => {
    const done = (answer: StreamAnswer): void => {
      stream.off('data', onData);
      stream.off('reset', onReset);
      session.off('close', onClose);
      resolve(answer);
    };
    const onData = (chunk: Buffer): void => done({ outcome: 'data', text: chunk.toString() });
    const onReset = (code: number): void => done({ outcome: 'reset', code });
    const onClose = (): void => done({ outcome: 'closed' });
    stream.once('data', onData);
    stream.once('reset', onReset);
    session.once('close', onClose);
  });
}

/**
 * Opens a stream to `service` on `session`, sends a line, and waits for the answer. An
 * answered stream is then half-closed and waited for, so that the app sees a clean end.
 */
export async function ask(session: Session, service: string): Promise<StreamAnswer> {
  const stream = session.openStream(service);
  const answer = firstAnswer(stream, session);
  stream.write(Buffer.from('probe\n'));
  const result = await answer;
  if (result.outcome === 'data' && stream.state !== 'closed') {
    const closed = once(stream, 'close');
    stream.on('data', () => undefined);
    stream.end();
    await closed;
  }
  return result;
}

/** A sidecar's saved identity (key and certificate) from its data directory. */
export async function savedCredentials(dataDir: string): Promise<CredentialsInit> {
  const identity = JSON.parse(await readFile(join(dataDir, 'identity.json'), 'utf8')) as Omit<CredentialsInit, 'privateKeyPem'>;
  return { ...identity, privateKeyPem: await readFile(join(dataDir, 'sidecar.key'), 'utf8') };
}

/**
 * Opens the sidecar channel with `identity`'s certificate; resolves with the HTTP status and
 * error code of a refused upgrade, or 101 when the channel opened (it is closed at once).
 */
export function tryChannel(cpUrl: string, identity: CredentialsInit): Promise<{ status: number; code?: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${cpUrl.replace('https:', 'wss:')}${SIDECAR_CHANNEL_PATH}`, {
      cert: identity.certPem,
      key: identity.privateKeyPem,
      ca: identity.caPems,
    });
    ws.once('open', () => {
      ws.close();
      resolve({ status: 101 });
    });
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => {
        const parsed = JSON.parse(body) as { error?: { code?: string } };
        resolve({ status: res.statusCode ?? 0, code: parsed.error?.code });
      });
    });
    ws.once('error', reject);
  });
}
