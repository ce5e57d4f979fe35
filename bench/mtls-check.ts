/**
 * Proof that each proxy pair really does mutual TLS: a TLS client without a certificate must be
 * refused by the server side. Behind it is an echo app, so a server side that let the client in
 * would send its byte back.
 */
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import WebSocket, { createWebSocketStream } from 'ws';
import { startEchoServer } from './apps.js';
import type { Contender } from './contenders/contender.js';
import { echoOnce, LOOPBACK } from './net.js';
import type { ContenderId } from './results.js';
import type { ProcessSupervisor } from './supervisor.js';

const CHECK_TIMEOUT_MS = 5_000;

/**
 * Connects to `port` with TLS and no client certificate, and sends one byte. With `wsPath`
 * (a `wss://` link listener, whose outer HTTPS asks for no certificate), the TLS client runs
 * inside a WebSocket opened on that path, as a link's own TLS does.
 * @returns how the server refused (the TLS alert or error code), or a sentence starting with
 *   "NOT refused" when the byte came back or nothing happened in time.
 */
export async function probeWithoutClientCert(port: number, wsPath?: string): Promise<string> {
  let carrier: Duplex | undefined;
  if (wsPath !== undefined) {
    const opened = await openWebSocket(port, wsPath);
    if (typeof opened === 'string') return opened;
    carrier = opened;
  }
  return new Promise((resolve) => {
    // The server's certificate is not the question here, only whether it demands ours.
    const socket = carrier === undefined ? tls.connect({ host: LOOPBACK, port, rejectUnauthorized: false }) : tls.connect({ socket: carrier, rejectUnauthorized: false });
    const finish = (verdict: string): void => {
      clearTimeout(timer);
      socket.destroy();
      carrier?.destroy();
      resolve(verdict);
    };
    const timer = setTimeout(() => finish('NOT refused: the connection stayed open without a client certificate'), CHECK_TIMEOUT_MS);
    socket.once('secureConnect', () => socket.write('x'));
    socket.once('data', () => finish('NOT refused: the app answered a client without a certificate'));
    socket.once('error', (error: NodeJS.ErrnoException) => finish(`refused (${error.code ?? error.message})`));
    socket.once('close', () => finish('refused (closed)'));
  });
}

/** A WebSocket to `wss://LOOPBACK:port/path` as a byte stream, or why it did not open (a verdict). */
function openWebSocket(port: number, path: string): Promise<Duplex | string> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`wss://${LOOPBACK}:${port}${path}`, { rejectUnauthorized: false, perMessageDeflate: false, handshakeTimeout: CHECK_TIMEOUT_MS });
    ws.once('open', () => {
      ws.removeAllListeners('error');
      resolve(createWebSocketStream(ws));
    });
    ws.once('unexpected-response', (_request, response) => {
      ws.terminate();
      resolve(`not checked: the WebSocket upgrade got HTTP ${response.statusCode ?? '?'}`);
    });
    ws.on('error', (error: NodeJS.ErrnoException) => resolve(`not checked: the WebSocket did not open (${error.code ?? error.message})`));
  });
}

/** For each proxy contender: a fresh pair, one echo through it, then the probe of its server side. */
export async function checkMutualTls(supervisor: ProcessSupervisor, contenders: readonly Contender[], progress: (line: string) => void): Promise<Partial<Record<ContenderId, string>>> {
  const verdicts: Partial<Record<ContenderId, string>> = {};
  const echo = await startEchoServer(supervisor);
  try {
    for (const contender of contenders) {
      const pair = await contender.start(echo.port).catch((error: Error) => error);
      if (pair instanceof Error) {
        verdicts[contender.id] = `not checked: ${pair.message.split('\n')[0]}`;
        continue;
      }
      try {
        if (pair.serverSidePort === undefined) continue;
        await echoOnce(pair.clientPort, Buffer.from('mtls check'), CHECK_TIMEOUT_MS);
        verdicts[contender.id] = await probeWithoutClientCert(pair.serverSidePort, pair.serverSideWsPath);
        progress(`  mTLS ${contender.id}: a client without a certificate is ${verdicts[contender.id]}`);
      } catch (error) {
        verdicts[contender.id] = `not checked: ${(error as Error).message}`;
      } finally {
        await pair.stop();
      }
    }
  } finally {
    await echo.process.stop();
  }
  return verdicts;
}
