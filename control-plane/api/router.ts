/**
 * The REST API's request handler: a fixed route table, admin authentication for admin routes,
 * one error shape, and a request counter by route and status.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { ControlErrorCode } from '../../proto/control.js';
import { ApiError } from '../errors.js';
import type { ControlPlaneMetrics } from '../metrics.js';
import type { TokenService } from '../token-service.js';
import { AdminAuthorizationError } from '../token-service.js';
import { errorAnswer, readJsonBody, sendJson } from './http.js';

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'DELETE';

/** What a route answers: JSON (status 200 unless given) or preformatted text. */
export type RouteAnswer = { status?: number; json: unknown } | { contentType: string; text: string };

/** What the router gives a route besides the body. */
export interface RouteContext {
  /** The audit trail: a child of the control plane's logger with `audit: true`. */
  audit: Logger;
  /** The client's IP address as the socket sees it (the audit trail names it; the rate limit of failed joins keys on it). */
  remoteAddress: string;
}

/** One REST route. */
export interface Route {
  method: HttpMethod;
  path: string;
  /** Requires `Authorization: Bearer <admin token>`. */
  admin: boolean;
  /** Whether the route reads a JSON body. */
  hasBody: boolean;
  handle(body: unknown, context: RouteContext): Promise<RouteAnswer>;
}

/** Builds the `request` listener of the HTTPS server. */
export function createRequestHandler(
  routes: readonly Route[],
  components: { tokens: TokenService; metrics: ControlPlaneMetrics; logger: Logger },
): (req: IncomingMessage, res: ServerResponse) => void {
  const audit = components.logger.child({ audit: true });
  const byPath = new Map<string, Route[]>();
  for (const route of routes) byPath.set(route.path, [...(byPath.get(route.path) ?? []), route]);
  return (req, res) => {
    const path = new URL(req.url ?? '/', 'https://control-plane').pathname;
    const candidates = byPath.get(path);
    const route = candidates?.find((r) => r.method === req.method);
    const label = candidates === undefined ? 'unmatched' : path;
    res.once('finish', () => components.metrics.httpRequest(label, res.statusCode));
    serve(route, candidates, req, res, { ...components, audit }).catch((err: unknown) => {
      const answer = errorAnswer(err);
      if (answer.internal) components.logger.error({ err, method: req.method, path }, 'request failed');
      // After a refused body the rest of it is not worth reading: close the connection.
      if (answer.status === 413) res.setHeader('Connection', 'close');
      if (!res.headersSent) sendJson(res, answer.status, answer.body);
      else res.destroy();
    });
  };
}

async function serve(
  route: Route | undefined,
  candidates: Route[] | undefined,
  req: IncomingMessage,
  res: ServerResponse,
  components: { tokens: TokenService; metrics: ControlPlaneMetrics; audit: Logger },
): Promise<void> {
  if (candidates === undefined) throw new ApiError(ControlErrorCode.NOT_FOUND, `no route ${req.method ?? ''} ${req.url ?? ''}`, 404);
  if (route === undefined) {
    res.setHeader('Allow', candidates.map((r) => r.method).join(', '));
    throw new ApiError(ControlErrorCode.METHOD_NOT_ALLOWED, `${req.method ?? ''} is not allowed here`, 405);
  }
  if (route.admin) await verifyAdmin(route.path, req.headers.authorization, components);
  const body = route.hasBody ? await readJsonBody(req) : undefined;
  const answer = await route.handle(body, { audit: components.audit, remoteAddress: req.socket.remoteAddress ?? 'unknown' });
  if ('json' in answer) return sendJson(res, answer.status ?? 200, answer.json);
  res.writeHead(200, { 'Content-Type': answer.contentType, 'Content-Length': Buffer.byteLength(answer.text) });
  res.end(answer.text);
}

/** Checks the admin token, counting a refusal by route and reason before passing it on. */
async function verifyAdmin(path: string, authorization: string | undefined, components: { tokens: TokenService; metrics: ControlPlaneMetrics }): Promise<void> {
  try {
    await components.tokens.verifyAdminAuthorization(authorization);
  } catch (err) {
    if (err instanceof AdminAuthorizationError) components.metrics.adminRefused(path, err.reason);
    throw err;
  }
}
