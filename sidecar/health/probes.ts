import http from 'node:http';
import net from 'node:net';
import type { HostPort } from '../net/address.js';
import type { HealthCheck } from './health-check.js';

/** The outcome of one check, with a few words for the logs. */
export interface ProbeResult {
  ok: boolean;
  detail: string;
}

/** Runs one check of the app; settles within `timeoutMs` and never rejects. */
export type HealthProbe = (timeoutMs: number) => Promise<ProbeResult>;

/** The probe for `check` against the app at `app`. */
export function probeFor(check: HealthCheck, app: HostPort): HealthProbe {
  return check.kind === 'tcp' ? tcpProbe(app) : httpProbe(app, check.path, check.expectedStatus);
}

/** Passes when a TCP connection to the app is accepted (it is closed at once). */
export function tcpProbe(app: HostPort): HealthProbe {
  return (timeoutMs) =>
    new Promise((resolve) => {
      const socket = net.connect({ host: app.host, port: app.port });
      const timer = setTimeout(() => settle({ ok: false, detail: `no connection within ${timeoutMs} ms` }), timeoutMs);
      const settle = (result: ProbeResult): void => {
        clearTimeout(timer);
        socket.destroy();
        resolve(result);
      };
      socket.once('connect', () => settle({ ok: true, detail: 'connected' }));
      socket.once('error', (error: NodeJS.ErrnoException) => settle({ ok: false, detail: `connect: ${error.code ?? error.message}` }));
    });
}

/** Passes when `GET path` is answered with `expectedStatus`, or any 2xx when it is unset. */
export function httpProbe(app: HostPort, path: string, expectedStatus?: number): HealthProbe {
  return (timeoutMs) =>
    new Promise((resolve) => {
      let settled = false;
      const settle = (result: ProbeResult): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        request.destroy();
        resolve(result);
      };
      // A fresh connection per check (no agent): a kept-alive socket would hide an app that
      // stopped accepting connections.
      const request = http.get({ host: app.host, port: app.port, path, agent: false, headers: { 'user-agent': 'trellis-health-check' } }, (response) => {
        const status = response.statusCode ?? 0;
        response.resume();
        const ok = expectedStatus === undefined ? status >= 200 && status < 300 : status === expectedStatus;
        settle({ ok, detail: `GET ${path}: ${status}` });
      });
      const timer = setTimeout(() => settle({ ok: false, detail: `GET ${path}: no answer within ${timeoutMs} ms` }), timeoutMs);
      request.once('error', (error: NodeJS.ErrnoException) => settle({ ok: false, detail: `GET ${path}: ${error.code ?? error.message}` }));
    });
}
