/** Routes for operators, behind the admin token: join tokens, policies, the registry view. */
import type { CreateTokenResponse } from '../../proto/control.js';
import { ControlErrorCode } from '../../proto/control.js';
import { ApiError } from '../errors.js';
import {
  createTokenRequestSchema,
  deletePolicyRuleRequestSchema,
  parseWithSchema,
  putPolicyRuleRequestSchema,
  setDefaultPolicyRequestSchema,
} from '../../proto/control.js';
import type { PolicyService } from '../policies.js';
import type { Registry } from '../registry.js';
import type { TokenService } from '../token-service.js';
import type { Route } from './router.js';

/** What the admin routes need. */
export interface AdminRouteComponents {
  tokens: TokenService;
  policies: PolicyService;
  registry: Registry;
}

/** `POST /v1/tokens`, `/v1/policies…`, `GET /v1/services`. */
export function adminRoutes(components: AdminRouteComponents): Route[] {
  const { tokens, policies, registry } = components;
  return [
    {
      method: 'POST',
      path: '/v1/tokens',
      admin: true,
      hasBody: true,
      async handle(body) {
        const request = parseWithSchema(createTokenRequestSchema, body, 'token request');
        if (!('service' in request)) throw new ApiError(ControlErrorCode.INVALID, 'gateway tokens are not supported yet', 400);
        const created: CreateTokenResponse = await tokens.createJoinToken(request.service, request.ttlSeconds * 1000);
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
      async handle(body) {
        const { action } = parseWithSchema(setDefaultPolicyRequestSchema, body, 'default policy');
        return { json: await policies.setDefault(action) };
      },
    },
    {
      method: 'PUT',
      path: '/v1/policies/rules',
      admin: true,
      hasBody: true,
      async handle(body) {
        return { json: await policies.putRule(parseWithSchema(putPolicyRuleRequestSchema, body, 'policy rule')) };
      },
    },
    {
      method: 'DELETE',
      path: '/v1/policies/rules',
      admin: true,
      hasBody: true,
      async handle(body) {
        const { from, to } = parseWithSchema(deletePolicyRuleRequestSchema, body, 'policy rule');
        return { json: await policies.deleteRule(from, to) };
      },
    },
    {
      method: 'GET',
      path: '/v1/services',
      admin: true,
      hasBody: false,
      handle: () => Promise.resolve({ json: registry.servicesView() }),
    },
  ];
}
