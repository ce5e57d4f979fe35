import { joinGatewayResponseSchema, parseWithSchema } from '../../proto/control.js';
import { TrellisError } from '../../proto/errors.js';
import type { GatewayToken } from '../../proto/tokens.js';
import { postToFirstReplica } from '../control/api-client.js';
import type { CredentialsInit } from '../identity/credentials.js';
import { createCsrPem, generateSidecarKeyPair } from '../identity/keys.js';

/**
 * Joins the mesh as gateway `name` of `zone` with a gateway token: the control plane is
 * authenticated by the CA fingerprint in the token, the key pair is made here and only the
 * CSR leaves. The certificate names `spiffe://<td>/gw/<zone>/<name>`.
 */
export async function joinAsGateway(urls: string[], token: GatewayToken, rawToken: string, zone: string, name: string): Promise<CredentialsInit> {
  if (token.zone !== zone || token.gateway !== name) {
    throw new TrellisError('TRELLIS_ERR_TOKEN_WRONG_SERVICE', `the gateway token is for gateway "${token.gateway}" of zone "${token.zone}", not "${name}" of "${zone}"`);
  }
  if (token.expiresAt <= Date.now()) {
    throw new TrellisError('TRELLIS_ERR_TOKEN_EXPIRED', `the gateway token expired at ${new Date(token.expiresAt).toISOString()}`);
  }
  const keys = await generateSidecarKeyPair();
  const csrPem = await createCsrPem(keys.privateKeyPem, name);
  const raw = await postToFirstReplica(urls, token, '/v1/join-gateway', { token: rawToken, csrPem, zone, name });
  const answer = parseWithSchema(joinGatewayResponseSchema, raw, 'gateway join answer from the control plane');
  return {
    trustDomain: answer.trustDomain,
    service: name,
    gateway: { zone, name },
    sidecarId: answer.gatewayId,
    privateKeyPem: keys.privateKeyPem,
    certPem: answer.certPem,
    caPems: answer.caPems,
    expiresAt: answer.expiresAt,
  };
}
