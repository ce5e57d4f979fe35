/** Admin routes of the join-token lifecycle: list the tokens the store holds, revoke one. */
import { parseWithSchema } from '../../proto/control.js';
import type { TokenList } from '../../proto/tokens.js';
import { revokeTokenRequestSchema } from '../../proto/tokens.js';
import type { TokenService } from '../token-service.js';
import type { Route } from './router.js';

/** What the token routes need. */
export interface TokenRouteComponents {
  tokens: TokenService;
}

/** `GET /v1/tokens`, `POST /v1/tokens/revoke`. (`POST /v1/tokens`, which creates one, is an admin route.) */
export function tokenRoutes(components: TokenRouteComponents): Route[] {
  const { tokens } = components;
  return [
    {
      method: 'GET',
      path: '/v1/tokens',
      admin: true,
      hasBody: false,
      handle: async () => ({ json: { tokens: await tokens.listTokens() } satisfies TokenList }),
    },
    {
      method: 'POST',
      path: '/v1/tokens/revoke',
      admin: true,
      hasBody: true,
      async handle(body) {
        const { id } = parseWithSchema(revokeTokenRequestSchema, body, 'token revocation');
        return { json: await tokens.revokeToken(id) };
      },
    },
  ];
}
