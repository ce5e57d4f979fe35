/** Routes that need no admin token: the trust bundle, joining, and metrics. */
import { randomBytes } from 'node:crypto';
import type { JoinResponse, TrustBundle } from '../../proto/control.js';
import { joinRequestSchema, parseWithSchema } from '../../proto/control.js';
import { TrellisError } from '../../proto/errors.js';
import { serviceSpiffeId } from '../../proto/spiffe.js';
import type { CertificateAuthority } from '../ca.js';
import { signSidecarCsr } from '../cert-issuer.js';
import type { ControlPlaneMetrics, JoinResult } from '../metrics.js';
import type { TokenService } from '../token-service.js';
import type { Route } from './router.js';

/** What the public routes need. */
export interface PublicRouteComponents {
  ca: CertificateAuthority;
  tokens: TokenService;
  metrics: ControlPlaneMetrics;
  leafTtlMs: number;
}

const joinResultByCode: Record<string, JoinResult> = {
  TRELLIS_ERR_INVALID: 'bad_request',
  TRELLIS_ERR_BAD_TOKEN: 'bad_token',
  TRELLIS_ERR_TOKEN_UNKNOWN: 'token_unknown',
  TRELLIS_ERR_TOKEN_EXPIRED: 'token_expired',
  TRELLIS_ERR_TOKEN_WRONG_SERVICE: 'wrong_service',
  TRELLIS_ERR_BAD_CSR: 'bad_csr',
  TRELLIS_ERR_BODY_TOO_LARGE: 'bad_request',
};

/** `GET /v1/trust-bundle`, `POST /v1/join`, `GET /metrics`. */
export function publicRoutes(components: PublicRouteComponents): Route[] {
  const { ca, tokens, metrics, leafTtlMs } = components;
  return [
    {
      method: 'GET',
      path: '/v1/trust-bundle',
      admin: false,
      hasBody: false,
      handle: () => Promise.resolve({ json: { trustDomain: ca.trustDomain, caPems: ca.caPems() } satisfies TrustBundle }),
    },
    {
      method: 'POST',
      path: '/v1/join',
      admin: false,
      hasBody: true,
      async handle(body) {
        try {
          const request = parseWithSchema(joinRequestSchema, body, 'join request');
          await tokens.verifyJoinToken(request.token, request.service);
          const sidecarId = `sc-${randomBytes(6).toString('hex')}`;
          const issued = signSidecarCsr(ca, request.csrPem, { sidecarId, service: request.service }, leafTtlMs);
          metrics.joinCompleted('ok');
          metrics.certificateIssued('join');
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
        } catch (err) {
          metrics.joinCompleted((err instanceof TrellisError && joinResultByCode[err.code]) || 'error');
          throw err;
        }
      },
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
