/** HTTPS calls to the dashboard's routes as a browser makes them: JSON, the session cookie, the CSRF header. */
import type { ControlPlane } from '../../control-plane/index.js';
import { httpsCall } from '../control-plane/helpers.js';

export interface UiAnswer {
  status: number;
  json: unknown;
  setCookie: string[];
}

export async function uiCall(
  cp: ControlPlane,
  caPem: string,
  method: string,
  path: string,
  options: { body?: unknown; cookie?: string; csrf?: string } = {},
): Promise<UiAnswer> {
  const headers: Record<string, string> = {
    ...(options.cookie === undefined ? {} : { Cookie: options.cookie }),
    ...(options.csrf === undefined ? {} : { 'X-Trellis-Csrf': options.csrf }),
  };
  const payload = options.body === undefined ? undefined : JSON.stringify(options.body);
  const answer = await httpsCall(cp, caPem, method, path, { payload, headers });
  return { status: answer.status, json: answer.json, setCookie: answer.headers['set-cookie'] ?? [] };
}

/** Logs in with `adminToken`; the cookie (name=value) and CSRF token to send after. */
export async function uiLogin(cp: ControlPlane, caPem: string, adminToken: string): Promise<{ cookie: string; csrf: string }> {
  const answer = await uiCall(cp, caPem, 'POST', '/ui/login', { body: { token: adminToken } });
  if (answer.status !== 200) throw new Error(`login answered ${answer.status}: ${JSON.stringify(answer.json)}`);
  const cookie = (answer.setCookie[0] ?? '').split(';')[0] ?? '';
  return { cookie, csrf: (answer.json as { csrfToken: string }).csrfToken };
}
