/**
 * Test helpers: a control plane on 127.0.0.1:0 in a temporary data directory, an HTTPS client
 * that trusts only its CA and checks its SPIFFE id, CSRs from real keys, and a sidecar
 * channel client.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import type { IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ConnectionOptions, PeerCertificate } from 'node:tls';
import forge from 'node-forge';
import { pino } from 'pino';
import { WebSocket } from 'ws';
import type { ControlPlane, ControlPlaneInit } from '../../control-plane/index.js';
import { startControlPlane } from '../../control-plane/index.js';
import type { ControlPlaneMessage, JoinGatewayResponse, JoinResponse, SidecarMessage } from '../../proto/control.js';
import { decodeControlPlaneMessage, encodeControlMessage } from '../../proto/control.js';

export const silentLogger = pino({ level: 'silent' });

/** A fresh temporary data directory, removed by the returned cleanup. */
export async function tempDir(): Promise<{ path: string; remove: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), 'trellis-cp-test-'));
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
}

/** Starts a control plane for tests on a loopback port. */
export function startTestControlPlane(dataDir: string, overrides: Partial<ControlPlaneInit> = {}): Promise<ControlPlane> {
  return startControlPlane({ dataDir, listenHost: '127.0.0.1', listenPort: 0, logger: silentLogger, pushCoalesceMs: 5, ...overrides });
}

/**
 * Runs `run` against a control plane started for it on a fresh data directory, then closes
 * the control plane and removes the directory, whatever `run` did.
 */
export async function withTestControlPlane(
  overrides: Partial<ControlPlaneInit>,
  run: (cp: ControlPlane, dir: { path: string }) => Promise<void>,
): Promise<void> {
  const dir = await tempDir();
  try {
    const cp = await startTestControlPlane(dir.path, overrides);
    try {
      await run(cp, dir);
    } finally {
      await cp.close();
    }
  } finally {
    await dir.remove();
  }
}

export async function caPemOf(dataDir: string): Promise<string> {
  return readFile(join(dataDir, 'ca.crt'), 'utf8');
}

export async function adminTokenOf(cp: ControlPlane): Promise<string> {
  return (await readFile(cp.adminTokenPath, 'utf8')).trim();
}

/** What an HTTPS request answered. */
export interface Answer {
  status: number;
  json: unknown;
  text: string;
}

/** What an HTTPS request answered, with its headers. */
export interface RawAnswer extends Answer {
  headers: IncomingHttpHeaders;
}

/**
 * One HTTPS request to the control plane, trusting only `caPem` and checking that the server's
 * URI SAN is the control plane's SPIFFE id; `payload` goes as JSON.
 */
export function httpsCall(
  cp: Pick<ControlPlane, 'url' | 'trustDomain'>,
  caPem: string,
  method: string,
  path: string,
  options: { payload?: string | Buffer; headers?: Record<string, string>; localAddress?: string } = {},
): Promise<RawAnswer> {
  const url = new URL(path, cp.url);
  const { payload } = options;
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method,
        ca: caPem,
        localAddress: options.localAddress,
        checkServerIdentity: controlPlaneIdentityCheck(cp.trustDomain),
        headers: {
          ...(payload === undefined ? {} : { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(payload) }),
          ...options.headers,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, json, text, headers: res.headers });
        });
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

/** Calls the REST API the way sidecars and the CLI do (see httpsCall), with the admin token if given. */
export async function call(
  cp: Pick<ControlPlane, 'url' | 'trustDomain'>,
  dataDir: string,
  method: string,
  path: string,
  options: { body?: unknown; rawBody?: string | Buffer; token?: string; localAddress?: string } = {},
): Promise<Answer> {
  const payload = options.rawBody ?? (options.body === undefined ? undefined : JSON.stringify(options.body));
  const headers: Record<string, string> = options.token === undefined ? {} : { Authorization: `Bearer ${options.token}` };
  const { status, json, text } = await httpsCall(cp, await caPemOf(dataDir), method, path, { payload, headers, localAddress: options.localAddress });
  return { status, json, text };
}

/** Asserts an error answer's status and code. */
export function assertError(answer: Answer, status: number, code: string): string {
  assert.equal(answer.status, status, answer.text);
  const body = answer.json as { error?: { code?: string; message?: string } };
  assert.equal(body.error?.code, code, answer.text);
  return body.error?.message ?? '';
}

/** Accepts only a server certificate whose URI SAN is the control plane's SPIFFE id. */
export function controlPlaneIdentityCheck(trustDomain: string): (host: string, cert: PeerCertificate) => Error | undefined {
  return (_host, cert) =>
    cert.subjectaltname?.split(', ').includes(`URI:spiffe://${trustDomain}/control-plane`)
      ? undefined
      : new Error(`unexpected server identity ${cert.subjectaltname ?? ''}`);
}

/** A CSR from a fresh node:crypto RSA key, made with node-forge. */
export function makeCsr(bits = 2048, commonName = 'asks-for-anything'): { csrPem: string; keyPem: string } {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: bits, privateKeyEncoding: { type: 'pkcs8', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } });
  const key = forge.pki.privateKeyFromPem(privateKey);
  const csr = forge.pki.createCertificationRequest();
  csr.publicKey = forge.pki.setRsaPublicKey(key.n, key.e);
  csr.setSubject([{ name: 'commonName', value: commonName }]);
  csr.sign(key, forge.md.sha256.create());
  return { csrPem: forge.pki.certificationRequestToPem(csr), keyPem: privateKey };
}

/** Creates a join token for `service` through the admin API. */
export async function createJoinToken(cp: ControlPlane, dataDir: string, service: string, ttlSeconds?: number): Promise<string> {
  const answer = await call(cp, dataDir, 'POST', '/v1/tokens', { body: { service, ttlSeconds }, token: await adminTokenOf(cp) });
  assert.equal(answer.status, 201, answer.text);
  return (answer.json as { token: string }).token;
}

/** Joins as `service`: a token, a CSR, a signed certificate. */
export async function joinAs(cp: ControlPlane, dataDir: string, service: string): Promise<JoinResponse & { keyPem: string }> {
  const token = await createJoinToken(cp, dataDir, service);
  const { csrPem, keyPem } = makeCsr();
  const answer = await call(cp, dataDir, 'POST', '/v1/join', { body: { token, csrPem, service } });
  assert.equal(answer.status, 200, answer.text);
  return { ...(answer.json as JoinResponse), keyPem };
}

/** Creates a gateway token for gateway `name` of `zone` through the admin API. */
export async function createGatewayToken(cp: ControlPlane, dataDir: string, zone: string, name: string, ttlSeconds?: number): Promise<string> {
  const answer = await call(cp, dataDir, 'POST', '/v1/tokens', { body: { gateway: name, zone, ttlSeconds }, token: await adminTokenOf(cp) });
  assert.equal(answer.status, 201, answer.text);
  return (answer.json as { token: string }).token;
}

/** Joins as gateway `name` of `zone`: a gateway token, a CSR, a signed certificate. */
export async function joinAsGateway(cp: ControlPlane, dataDir: string, zone: string, name: string): Promise<JoinGatewayResponse & { keyPem: string }> {
  const token = await createGatewayToken(cp, dataDir, zone, name);
  const { csrPem, keyPem } = makeCsr();
  const answer = await call(cp, dataDir, 'POST', '/v1/join-gateway', { body: { token, csrPem, zone, name } });
  assert.equal(answer.status, 200, answer.text);
  return { ...(answer.json as JoinGatewayResponse), keyPem };
}

/** A sidecar channel client that records every message it receives. */
export class ChannelClient {
  readonly messages: ControlPlaneMessage[] = [];
  readonly ws: WebSocket;
  readonly #waiters = new Set<() => void>();
  closeCode: number | undefined;
  readonly opened: Promise<void>;
  readonly closed: Promise<number>;

  constructor(cp: ControlPlane, caPem: string, credentials?: { certPem: string; keyPem: string }) {
    const tlsOptions: ConnectionOptions = {
      ca: caPem,
      cert: credentials?.certPem,
      key: credentials?.keyPem,
      checkServerIdentity: controlPlaneIdentityCheck(cp.trustDomain),
    };
    // Typed as TLS options: ws hands them to tls.connect, and @types/ws declares
    // checkServerIdentity with another shape.
    this.ws = new WebSocket(`${cp.url.replace('https:', 'wss:')}/v1/sidecar`, tlsOptions);
    this.ws.on('message', (data: Buffer) => {
      this.messages.push(decodeControlPlaneMessage(data));
      for (const wake of this.#waiters) wake();
    });
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode ?? 0}`)));
      this.ws.once('error', reject);
    });
    this.closed = new Promise((resolve) => this.ws.once('close', (code) => resolve((this.closeCode = code))));
  }

  send(message: SidecarMessage): void {
    this.ws.send(encodeControlMessage(message));
  }

  /** Waits for a received message (from `fromIndex` on) that satisfies `match`. */
  async waitFor<T extends ControlPlaneMessage>(match: (m: ControlPlaneMessage) => m is T, fromIndex = 0, timeoutMs = 5000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.messages.slice(fromIndex).find(match);
      if (found !== undefined) return found;
      if (Date.now() > deadline) throw new Error(`no matching message; got ${JSON.stringify(this.messages)}`);
      await new Promise<void>((resolve) => {
        const wake = (): void => {
          clearTimeout(timer);
          this.#waiters.delete(wake);
          resolve();
        };
        const timer = setTimeout(wake, Math.max(1, deadline - Date.now()));
        this.#waiters.add(wake);
      });
    }
  }

  close(): Promise<number> {
    this.ws.close();
    return this.closed;
  }
}

export const isSnapshot = (m: ControlPlaneMessage): m is Extract<ControlPlaneMessage, { type: 'snapshot' }> => m.type === 'snapshot';
export const isDelta = (m: ControlPlaneMessage): m is Extract<ControlPlaneMessage, { type: 'delta' }> => m.type === 'delta';
export const isError = (m: ControlPlaneMessage): m is Extract<ControlPlaneMessage, { type: 'error' }> => m.type === 'error';
export const isCertificate = (m: ControlPlaneMessage): m is Extract<ControlPlaneMessage, { type: 'certificate' }> => m.type === 'certificate';
