/**
 * Proof that each proxy pair really does mutual TLS: a TLS client without a certificate must be
 * refused by the server side. Behind it is an echo app, so a server side that let the client in
 * would send its byte back.
 */
import tls from 'node:tls';
import { startEchoServer } from './apps.js';
import type { Contender } from './contenders/contender.js';
import { echoOnce, LOOPBACK } from './net.js';
import type { ContenderId } from './results.js';
import type { ProcessSupervisor } from './supervisor.js';

const CHECK_TIMEOUT_MS = 5_000;

/**
 * Connects to `port` with TLS and no client certificate, and sends one byte.
 * @returns how the server refused (the TLS alert or error code), or a sentence starting with
 *   "NOT refused" when the byte came back or nothing happened in time.
 */
export function probeWithoutClientCert(port: number): Promise<string> {
  return new Promise((resolve) => {
    // The server's certificate is not the question here, only whether it demands ours.
    const socket = tls.connect({ host: LOOPBACK, port, rejectUnauthorized: false });
    const finish = (verdict: string): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(verdict);
    };
    const timer = setTimeout(() => finish('NOT refused: the connection stayed open without a client certificate'), CHECK_TIMEOUT_MS);
    socket.once('secureConnect', () => socket.write('x'));
    socket.once('data', () => finish('NOT refused: the app answered a client without a certificate'));
    socket.once('error', (error: NodeJS.ErrnoException) => finish(`refused (${error.code ?? error.message})`));
    socket.once('close', () => finish('refused (closed)'));
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
        verdicts[contender.id] = await probeWithoutClientCert(pair.serverSidePort);
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
