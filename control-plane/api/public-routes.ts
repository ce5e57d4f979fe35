/** Routes that need no admin token: the trust bundle, joining (sidecars and gateways), and metrics. */
import { randomBytes } from 'node:crypto';
import type { JoinGatewayResponse, JoinResponse, TrustBundle } from '../../proto/control.js';
import { joinGatewayRequestSchema, joinRequestSchema, parseWithSchema } from '../../proto/control.js';
import { TrellisError, ValidationError } from '../../proto/errors.js';
import { gatewaySpiffeId, serviceSpiffeId } from '../../proto/spiffe.js';
import type { CertificateAuthority } from '../ca.js';
import { signGatewayCsr, signSidecarCsr } from '../cert-issuer.js';
import { ApiError } from '../errors.js';
import { JoinFailureLimiter } from '../join-rate-limiter.js';
import type { ControlPlaneMetrics, JoinResult } from '../metrics.js';
import type { RevocationService } from '../revocations.js';
import type { TokenService } from '../token-service.js';
import type { Route, RouteContext } from './router.js';

/** What the public routes need. */
export interface PublicRouteComponents {
  ca: CertificateAuthority;
  tokens: TokenService;
  metrics: ControlPlaneMetrics;
  leafTtlMs: number;
  /** Failed joins per source address. @default a JoinFailureLimiter with its defaults */
  joinFailures?: JoinFailureLimiter;
  /** Refuses joins of revoked services. @default none revoked */
  revocations?: RevocationService;
}

const joinResultByCode: Record<string, JoinResult> = {
  TRELLIS_ERR_INVALID: 'bad_request',
  TRELLIS_ERR_BAD_TOKEN: 'bad_token',
  TRELLIS_ERR_TOKEN_UNKNOWN: 'token_unknown',
  TRELLIS_ERR_TOKEN_EXPIRED: 'token_expired',
  TRELLIS_ERR_TOKEN_USED: 'token_used',
  TRELLIS_ERR_TOKEN_REVOKED: 'token_revoked',
  TRELLIS_ERR_RATE_LIMITED: 'rate_limited',
  TRELLIS_ERR_TOKEN_WRONG_SERVICE: 'wrong_service',
  TRELLIS_ERR_TOKEN_WRONG_KIND: 'wrong_kind',
  TRELLIS_ERR_BAD_CSR: 'bad_csr',
  TRELLIS_ERR_REVOKED: 'revoked',
  TRELLIS_ERR_BODY_TOO_LARGE: 'bad_request',
};

/** The longest text of a refused join's body that the audit trail repeats. */
const AUDITED_FIELD_CHARS = 100;

/** What a (maybe malformed) join body claims to be, for the audit trail: short strings only, never the token. */
function claimedIdentity(body: unknown): Record<string, string> {
  const claimed: Record<string, string> = {};
  if (typeof body !== 'object' || body === null) return claimed;
  for (const field of ['service', 'zone', 'name']) {
    const value = (body as Record<string, unknown>)[field];
    if (typeof value === 'string') claimed[field] = value.slice(0, AUDITED_FIELD_CHARS);
  }
  return claimed;
}

/**
 * Counts a join attempt by how it ended, whatever kind of peer joined, and refuses a source
 * address that failed too often (only the client's mistakes count against it, not ours); a
 * refused join goes on the audit trail.
 */
async function countedJoin<T>(metrics: ControlPlaneMetrics, failures: JoinFailureLimiter, context: RouteContext, body: unknown, join: () => Promise<T>): Promise<T> {
  const source = context.remoteAddress;
  try {
    failures.check(source);
    const answer = await join();
    metrics.joinCompleted('ok');
    metrics.certificateIssued('join');
    return answer;
  } catch (err) {
    metrics.joinCompleted((err instanceof TrellisError && joinResultByCode[err.code]) || 'error');
    const refused = err instanceof ApiError ? err.httpStatus < 500 && err.httpStatus !== 429 : err instanceof ValidationError;
    if (refused) failures.failed(source);
    const code = err instanceof TrellisError ? err.code : 'internal';
    context.audit.warn({ event: 'join.refused', code, ...claimedIdentity(body), remoteAddress: context.remoteAddress }, 'join refused');
    throw err;
  }
}

/** `GET /v1/trust-bundle`, `POST /v1/join`, `POST /v1/join-gateway`, `GET /metrics`. */
export function publicRoutes(components: PublicRouteComponents): Route[] {
  const { ca, tokens, metrics, leafTtlMs, revocations } = components;
  const failures = components.joinFailures ?? new JoinFailureLimiter();
  return [
    {
      method: 'GET',
      path: '/v1/trust-bundle',
      admin: false,
      hasBody: false,
      handle: () => {
        const lineage = ca.lineage();
        return Promise.resolve({ json: { trustDomain: ca.trustDomain, caPems: ca.caPems(), ...(lineage.length === 0 ? {} : { lineage: [...lineage] }) } satisfies TrustBundle });
      },
    },
    {
      method: 'POST',
      path: '/v1/join',
      admin: false,
      hasBody: true,
      handle: (body, context) =>
        countedJoin(metrics, failures, context, body, async () => {
          const request = parseWithSchema(joinRequestSchema, body, 'join request');
          const sidecarId = `sc-${randomBytes(6).toString('hex')}`;
          // Checked once the token is known good, before it is used up: a revoked service's
          // join costs no single-use token.
          const issued = await tokens.redeemJoinToken(request.token, request.service, () => {
            revocations?.assertMayJoin(request.service);
            return signSidecarCsr(ca, request.csrPem, { sidecarId, service: request.service }, leafTtlMs);
          });
          const answer: JoinResponse = {
            sidecarId,
            service: request.service,
            spiffeId: serviceSpiffeId(ca.trustDomain, request.service),
            certPem: issued.certPem,
            caPems: ca.caPems(),
            trustDomain: ca.trustDomain,
            expiresAt: issued.expiresAt,
          };
          return { json: answer };
        }),
    },
    {
      method: 'POST',
      path: '/v1/join-gateway',
      admin: false,
      hasBody: true,
      handle: (body, context) =>
        countedJoin(metrics, failures, context, body, async () => {
          const { token, csrPem, zone, name } = parseWithSchema(joinGatewayRequestSchema, body, 'gateway join request');
          const gatewayId = `gw-${randomBytes(6).toString('hex')}`;
          const issued = await tokens.redeemGatewayToken(token, zone, name, () => signGatewayCsr(ca, csrPem, { gatewayId, zone, name }, leafTtlMs));
          const answer: JoinGatewayResponse = {
            gatewayId,
            zone,
            name,
            spiffeId: gatewaySpiffeId(ca.trustDomain, zone, name),
            certPem: issued.certPem,
            caPems: ca.caPems(),
            trustDomain: ca.trustDomain,
            expiresAt: issued.expiresAt,
          };
          return { json: answer };
        }),
    },
    {
      method: 'GET',
      path: '/metrics',
      admin: false,
      hasBody: false,
      handle: () => metrics.render(),
    },
  ];
}
