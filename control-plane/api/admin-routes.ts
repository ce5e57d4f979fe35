/** Routes for operators, behind the admin token: join and gateway tokens, policies, the registry views. */
import type { CreateTokenResponse } from '../../proto/control.js';
import {
  allowJoinsRequestSchema,
  createTokenRequestSchema,
  deletePolicyRuleRequestSchema,
  parseWithSchema,
  putPolicyRuleRequestSchema,
  revokeRequestSchema,
  setDefaultPolicyRequestSchema,
} from '../../proto/control.js';
import type { GatewayRegistry } from '../gateway-registry.js';
import type { PolicyService } from '../policies.js';
import type { Registry } from '../registry.js';
import type { RevocationService } from '../revocations.js';
import type { TokenService } from '../token-service.js';
import type { Route } from './router.js';

// Every change an operator makes is logged on the audit trail (never a token itself).

/** What the admin routes need. */
export interface AdminRouteComponents {
  tokens: TokenService;
  policies: PolicyService;
  registry: Registry;
  gateways: GatewayRegistry;
  revocations: RevocationService;
}

/** `POST /v1/tokens`, `/v1/policies…`, `GET /v1/services`, `GET /v1/gateways`. */
export function adminRoutes(components: AdminRouteComponents): Route[] {
  const { tokens, policies, registry, gateways, revocations } = components;
  return [
    {
      method: 'POST',
      path: '/v1/tokens',
      admin: true,
      hasBody: true,
      async handle(body, { audit, remoteAddress }) {
        const request = parseWithSchema(createTokenRequestSchema, body, 'token request');
        const ttlMs = request.ttlSeconds * 1000;
        const created: CreateTokenResponse =
          'service' in request
            ? await tokens.createJoinToken(request.service, ttlMs, { once: request.once })
            : await tokens.createGatewayToken(request.zone, request.gateway, ttlMs, { once: request.once });
        const subject = 'service' in request ? { kind: 'join', service: request.service } : { kind: 'gateway', zone: request.zone, gateway: request.gateway };
        audit.info({ event: 'token.created', ...subject, ttlSeconds: request.ttlSeconds, once: request.once === true, remoteAddress }, 'token created');
        return { status: 201, json: created };
      },
    },
    {
      method: 'GET',
      path: '/v1/policies',
      admin: true,
      hasBody: false,
      handle: () => Promise.resolve({ json: policies.view() }),
    },
    {
      method: 'PUT',
      path: '/v1/policies/default',
      admin: true,
      hasBody: true,
      async handle(body, { audit, remoteAddress }) {
        const { action, closeExisting } = parseWithSchema(setDefaultPolicyRequestSchema, body, 'default policy');
        const view = await policies.setDefault(action, closeExisting);
        audit.info({ event: 'policy.default', action, closeExisting: closeExisting === true, remoteAddress }, 'default policy set');
        return { json: view };
      },
    },
    {
      method: 'PUT',
      path: '/v1/policies/rules',
      admin: true,
      hasBody: true,
      async handle(body, { audit, remoteAddress }) {
        const rule = parseWithSchema(putPolicyRuleRequestSchema, body, 'policy rule');
        const view = await policies.putRule(rule);
        audit.info({ event: 'policy.rule.set', from: rule.from, to: rule.to, action: rule.action, remoteAddress }, 'policy rule set');
        return { json: view };
      },
    },
    {
      method: 'DELETE',
      path: '/v1/policies/rules',
      admin: true,
      hasBody: true,
      async handle(body, { audit, remoteAddress }) {
        const { from, to } = parseWithSchema(deletePolicyRuleRequestSchema, body, 'policy rule');
        const view = await policies.deleteRule(from, to);
        audit.info({ event: 'policy.rule.removed', from, to, remoteAddress }, 'policy rule removed');
        return { json: view };
      },
    },
    {
      method: 'GET',
      path: '/v1/services',
      admin: true,
      hasBody: false,
      handle: () => Promise.resolve({ json: registry.servicesView() }),
    },
    {
      method: 'GET',
      path: '/v1/revocations',
      admin: true,
      hasBody: false,
      handle: () => Promise.resolve({ json: revocations.view() }),
    },
    {
      method: 'POST',
      path: '/v1/revocations',
      admin: true,
      hasBody: true,
      async handle(body, { audit, remoteAddress }) {
        const request = parseWithSchema(revokeRequestSchema, body, 'revocation');
        const view = 'sidecarId' in request ? await revocations.revokeSidecar(request.sidecarId) : await revocations.revokeService(request.service);
        audit.info({ event: 'revoked', ...request, remoteAddress }, 'identity revoked');
        return { status: 201, json: view };
      },
    },
    {
      method: 'DELETE',
      path: '/v1/revocations',
      admin: true,
      hasBody: true,
      async handle(body, { audit, remoteAddress }) {
        const { service } = parseWithSchema(allowJoinsRequestSchema, body, 'revocation');
        const view = await revocations.allowJoins(service);
        audit.info({ event: 'revocation.joins-allowed', service, remoteAddress }, 'joins allowed again for a revoked service');
        return { json: view };
      },
    },
    {
      method: 'GET',
      path: '/v1/gateways',
      admin: true,
      hasBody: false,
      handle: () => Promise.resolve({ json: gateways.view() }),
    },
  ];
}
