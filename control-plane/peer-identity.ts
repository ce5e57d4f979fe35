/**
 * The identity of a sidecar on the channel, read from the client certificate it presented:
 * the URI SAN names its service, the common name its sidecar id.
 */
import type { TLSSocket } from 'node:tls';
import { sidecarIdSchema } from '../proto/control.js';
import { serviceOfSpiffeId, uriSansOf } from '../proto/spiffe.js';
import type { SidecarIdentity } from './cert-issuer.js';

/**
 * The identity of the peer on `socket`, or a reason why it has none: no certificate, one that
 * does not chain to the CA (or expired), or one that is not a sidecar certificate of `trustDomain`.
 */
export function sidecarIdentityOf(socket: TLSSocket, trustDomain: string): SidecarIdentity | { refused: string } {
  if (!socket.authorized) {
    return { refused: `client certificate required and must chain to the mesh CA (${String(socket.authorizationError ?? 'none presented')})` };
  }
  const cert = socket.getPeerX509Certificate();
  if (cert === undefined) return { refused: 'no client certificate' };
  const uris = uriSansOf(cert.subjectAltName);
  const service = uris.length === 1 && uris[0] !== undefined ? serviceOfSpiffeId(trustDomain, uris[0]) : undefined;
  if (service === undefined) {
    return { refused: `certificate is not a sidecar certificate of ${trustDomain}` };
  }
  const commonName = /^CN=(.*)$/m.exec(cert.subject)?.[1];
  if (commonName === undefined || !sidecarIdSchema.safeParse(commonName).success) {
    return { refused: 'certificate has no valid sidecar id as its common name' };
  }
  return { sidecarId: commonName, service };
}
