import { joinResponseSchema, parseWithSchema } from '../proto/control.js';
import type { JoinToken } from '../proto/tokens.js';
import { postToFirstReplica } from './control/api-client.js';
import type { CredentialsInit } from './identity/credentials.js';
import { createCsrPem, generateSidecarKeyPair } from './identity/keys.js';
import { TrellisError } from '../proto/errors.js';

/**
 * Joins the mesh with a join token: authenticates the control plane by the CA fingerprint in
 * the token, makes a key pair here (the private key never leaves), sends only the CSR, and
 * gets back the certificate and the trust bundle.
 */
export async function joinMesh(urls: string[], token: JoinToken, rawToken: string, service: string): Promise<CredentialsInit> {
  if (token.service !== service) {
    throw new TrellisError('TRELLIS_ERR_TOKEN_WRONG_SERVICE', `the join token is for service "${token.service}", not "${service}"`);
  }
  if (token.expiresAt <= Date.now()) {
    throw new TrellisError('TRELLIS_ERR_TOKEN_EXPIRED', `the join token expired at ${new Date(token.expiresAt).toISOString()}`);
  }
  const keys = await generateSidecarKeyPair();
  const csrPem = await createCsrPem(keys.privateKeyPem, service);
  const raw = await postToFirstReplica(urls, token, '/v1/join', { token: rawToken, csrPem, service });
  // Verified TLS says who answered, not that the answer is well formed.
  const answer = parseWithSchema(joinResponseSchema, raw, 'join answer from the control plane');
  return {
    trustDomain: answer.trustDomain,
    service,
    sidecarId: answer.sidecarId,
    privateKeyPem: keys.privateKeyPem,
    certPem: answer.certPem,
    caPems: answer.caPems,
    expiresAt: answer.expiresAt,
  };
}
