/**
 * The dashboard at `/ui` on the HTTPS listener: the page and its bundled script (no CDN), a
 * login that swaps the admin token for a session cookie, the mesh view the page polls, and
 * the admin API under `/ui/api/v1/…` for the page's changes (policies), authenticated by the
 * session and its CSRF token instead of the bearer token. Everything else goes to `next`.
 */
import { readFile } from 'node:fs/promises';
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { z } from 'zod';
import { ControlErrorCode, parseWithSchema } from '../../proto/control.js';
import type { DashboardSessions } from '../dashboard/sessions.js';
import { CSRF_HEADER } from '../dashboard/sessions.js';
import type { MeshView } from '../dashboard/view-types.js';
import { ApiError } from '../errors.js';
import type { ControlPlaneMetrics } from '../metrics.js';
import type { TokenService } from '../token-service.js';
import { errorAnswer, readJsonBody, sendJson } from './http.js';
import type { Route } from './router.js';

/** Where the built page lives: `dist/control-plane/dashboard/` (see scripts/build-dashboard.js). */
const ASSETS_DIR = new URL('../dashboard/', import.meta.url);
const ASSETS: Record<string, { file: string; contentType: string }> = {
  '/ui': { file: 'index.html', contentType: 'text/html; charset=utf-8' },
  '/ui/': { file: 'index.html', contentType: 'text/html; charset=utf-8' },
  '/ui/app.js': { file: 'app.js', contentType: 'text/javascript; charset=utf-8' },
  '/ui/style.css': { file: 'style.css', contentType: 'text/css; charset=utf-8' },
};
/** The page runs only its own script; cytoscape sets element styles, hence inline styles. */
const CONTENT_SECURITY_POLICY = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
const API_PREFIX = '/ui/api';
const loginRequestSchema = z.object({ token: z.string().min(1).max(4096) }).strict();

export interface DashboardComponents {
  tokens: TokenService;
  sessions: DashboardSessions;
  /** The current mesh view. */
  view: () => MeshView;
  /** The REST routes; the page reaches the admin ones under `/ui/api`. */
  apiRoutes: readonly Route[];
  metrics: ControlPlaneMetrics;
  logger: Logger;
}

/** `GET /v1/mesh`: the dashboard's view for scripts, behind the admin token like every admin route. */
export function meshViewRoutes(view: () => MeshView): Route[] {
  return [{ method: 'GET', path: '/v1/mesh', admin: true, hasBody: false, handle: () => Promise.resolve({ json: view() }) }];
}

/** Serves `/ui…` and hands every other request to `next`. */
export function withDashboard(next: RequestListener, components: DashboardComponents): RequestListener {
  const assets = new Map<string, Promise<Buffer>>();
  const asset = (file: string): Promise<Buffer> => {
    let loaded = assets.get(file);
    if (loaded === undefined) {
      loaded = readFile(new URL(file, ASSETS_DIR)).catch((err: unknown) => {
        assets.delete(file);
        throw new ApiError(ControlErrorCode.INTERNAL, `dashboard asset ${file} is missing (was the package built?): ${(err as Error).message}`, 500);
      });
      assets.set(file, loaded);
    }
    return loaded;
  };
  return (req, res) => {
    const path = new URL(req.url ?? '/', 'https://control-plane').pathname;
    if (path !== '/ui' && !path.startsWith('/ui/')) return next(req, res);
    res.setHeader('Content-Security-Policy', CONTENT_SECURITY_POLICY);
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('Referrer-Policy', 'no-referrer');
    res.once('finish', () => components.metrics.httpRequest('/ui', res.statusCode));
    serveDashboard(path, req, res, components, asset).catch((err: unknown) => {
      const answer = errorAnswer(err);
      // Never the body: a login carries the admin token.
      if (answer.internal) components.logger.error({ err, method: req.method, path }, 'dashboard request failed');
      if (!res.headersSent) sendJson(res, answer.status, answer.body);
      else res.destroy();
    });
  };
}

async function serveDashboard(
  path: string,
  req: IncomingMessage,
  res: ServerResponse,
  components: DashboardComponents,
  asset: (file: string) => Promise<Buffer>,
): Promise<void> {
  const { sessions, tokens } = components;
  const method = req.method ?? 'GET';
  const file = ASSETS[path];
  if (file !== undefined) {
    allow(method, ['GET']);
    const body = await asset(file.file);
    res.writeHead(200, { 'Content-Type': file.contentType, 'Content-Length': body.length, 'Cache-Control': 'no-cache' });
    res.end(body);
    return;
  }
  if (path === '/ui/login') {
    allow(method, ['POST']);
    const { token } = parseWithSchema(loginRequestSchema, await readJsonBody(req), 'login');
    try {
      await tokens.verifyAdminAuthorization(`Bearer ${token}`);
    } catch (err) {
      // An audit line, never the token.
      components.logger.warn({ audit: true, remote: req.socket.remoteAddress, code: (err as { code?: string }).code }, 'dashboard login refused');
      throw err;
    }
    const opened = sessions.open();
    components.logger.info({ audit: true, remote: req.socket.remoteAddress }, 'dashboard login');
    res.setHeader('Set-Cookie', opened.cookie);
    return sendJson(res, 200, { csrfToken: opened.csrfToken });
  }
  if (path === '/ui/logout') {
    allow(method, ['POST']);
    sessions.verify(req.headers.cookie, { header: req.headers[CSRF_HEADER] });
    res.setHeader('Set-Cookie', sessions.close(req.headers.cookie));
    return sendJson(res, 200, {});
  }
  if (path === `${API_PREFIX}/session`) {
    allow(method, ['GET']);
    return sendJson(res, 200, sessions.verify(req.headers.cookie));
  }
  if (path === `${API_PREFIX}/mesh`) {
    allow(method, ['GET']);
    sessions.verify(req.headers.cookie);
    return sendJson(res, 200, components.view());
  }
  if (path.startsWith(`${API_PREFIX}/v1/`)) return serveAdminRoute(path.slice(API_PREFIX.length), method, req, res, components);
  throw new ApiError(ControlErrorCode.NOT_FOUND, `no dashboard page ${path}`, 404);
}

/** An admin REST route, with the session (and for changes its CSRF token) in place of the bearer token. */
async function serveAdminRoute(path: string, method: string, req: IncomingMessage, res: ServerResponse, components: DashboardComponents): Promise<void> {
  const candidates = components.apiRoutes.filter((r) => r.admin && r.path === path);
  if (candidates.length === 0) throw new ApiError(ControlErrorCode.NOT_FOUND, `no admin route ${path}`, 404);
  const route = candidates.find((r) => r.method === method);
  if (route === undefined) {
    res.setHeader('Allow', candidates.map((r) => r.method).join(', '));
    throw new ApiError(ControlErrorCode.METHOD_NOT_ALLOWED, `${method} is not allowed here`, 405);
  }
  components.sessions.verify(req.headers.cookie, method === 'GET' ? undefined : { header: req.headers[CSRF_HEADER] });
  const body = route.hasBody ? await readJsonBody(req) : undefined;
  const answer = await route.handle(body, { audit: components.logger.child({ audit: true, via: 'dashboard' }), remoteAddress: req.socket.remoteAddress ?? 'unknown' });
  if ('json' in answer) return sendJson(res, answer.status ?? 200, answer.json);
  res.writeHead(200, { 'Content-Type': answer.contentType, 'Content-Length': Buffer.byteLength(answer.text) });
  res.end(answer.text);
}

function allow(method: string, methods: string[]): void {
  if (!methods.includes(method)) throw new ApiError(ControlErrorCode.METHOD_NOT_ALLOWED, `${method} is not allowed here (${methods.join(', ')})`, 405);
}
