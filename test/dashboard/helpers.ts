/** HTTPS calls to the dashboard's routes as a browser makes them: JSON, the session cookie, the CSRF header. */
import { request as httpsRequest } from 'node:https';
import type { ControlPlane } from '../../control-plane/index.js';
import { controlPlaneIdentityCheck } from '../control-plane/helpers.js';

export interface UiAnswer {
  status: number;
  json: unknown;
  setCookie: string[];
}

export function uiCall(
  cp: ControlPlane,
  caPem: string,
  method: string,
  path: string,
  options: { body?: unknown; cookie?: string; csrf?: string } = {},
): Promise<UiAnswer> {
  const url = new URL(path, cp.url);
  const payload = options.body === undefined ? undefined : JSON.stringify(options.body);
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method,
        ca: caPem,
        checkServerIdentity: controlPlaneIdentityCheck(cp.trustDomain),
        headers: {
          ...(payload === undefined ? {} : { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(payload) }),
          ...(options.cookie === undefined ? {} : { Cookie: options.cookie }),
          ...(options.csrf === undefined ? {} : { 'X-Trellis-Csrf': options.csrf }),
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
          resolve({ status: res.statusCode ?? 0, json, setCookie: res.headers['set-cookie'] ?? [] });
        });
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

/** Logs in with `adminToken`; the cookie (name=value) and CSRF token to send after. */
export async function uiLogin(cp: ControlPlane, caPem: string, adminToken: string): Promise<{ cookie: string; csrf: string }> {
  const answer = await uiCall(cp, caPem, 'POST', '/ui/login', { body: { token: adminToken } });
  if (answer.status !== 200) throw new Error(`login answered ${answer.status}: ${JSON.stringify(answer.json)}`);
  const cookie = (answer.setCookie[0] ?? '').split(';')[0] ?? '';
  return { cookie, csrf: (answer.json as { csrfToken: string }).csrfToken };
}
