/** Routes that need no admin token: the trust bundle, joining (sidecars and gateways), and metrics. */
import { randomBytes } from 'node:crypto';
import type { JoinGatewayResponse, JoinResponse, TrustBundle } from '../../proto/control.js';
import { joinGatewayRequestSchema, joinRequestSchema, parseWithSchema } from '../../proto/control.js';
import { TrellisError } from '../../proto/errors.js';
import { gatewaySpiffeId, serviceSpiffeId } from '../../proto/spiffe.js';
import type { CertificateAuthority } from '../ca.js';
import { signGatewayCsr, signSidecarCsr } from '../cert-issuer.js';
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
  TRELLIS_ERR_TOKEN_WRONG_KIND: 'wrong_kind',
  TRELLIS_ERR_BAD_CSR: 'bad_csr',
  TRELLIS_ERR_BODY_TOO_LARGE: 'bad_request',
};

/** Counts a join attempt by how it ended, whatever kind of peer joined. */
async function countedJoin<T>(metrics: ControlPlaneMetrics, join: () => Promise<T>): Promise<T> {
  try {
    const answer = await join();
    metrics.joinCompleted('ok');
    metrics.certificateIssued('join');
    return answer;
  } catch (err) {
    metrics.joinCompleted((err instanceof TrellisError && joinResultByCode[err.code]) || 'error');
    throw err;
  }
}

/** `GET /v1/trust-bundle`, `POST /v1/join`, `POST /v1/join-gateway`, `GET /metrics`. */
export function publicRoutes(components: PublicRouteComponents): Route[] {
  const { ca, tokens, metrics, leafTtlMs } = components;
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
      handle: (body) =>
        countedJoin(metrics, async () => {
          const request = parseWithSchema(joinRequestSchema, body, 'join request');
          await tokens.verifyJoinToken(request.token, request.service);
          const sidecarId = `sc-${randomBytes(6).toString('hex')}`;
          const issued = signSidecarCsr(ca, request.csrPem, { sidecarId, service: request.service }, leafTtlMs);
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
      handle: (body) =>
        countedJoin(metrics, async () => {
          const { token, csrPem, zone, name } = parseWithSchema(joinGatewayRequestSchema, body, 'gateway join request');
          await tokens.verifyGatewayToken(token, zone, name);
          const gatewayId = `gw-${randomBytes(6).toString('hex')}`;
          const issued = signGatewayCsr(ca, csrPem, { gatewayId, zone, name }, leafTtlMs);
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
