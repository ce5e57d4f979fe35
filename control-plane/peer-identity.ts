/**
 * The identity of a sidecar or gateway on the channel, read from the client certificate it
 * presented: the one URI SAN names its service (or its zone and name), the common name its
 * sidecar id (or gateway id).
 */
import type { TLSSocket } from 'node:tls';
import { sidecarIdSchema } from '../proto/control.js';
import { peerIdentityOf, uriSansOf } from '../proto/spiffe.js';
import type { GatewayIdentity, SidecarIdentity } from './cert-issuer.js';

/** Who holds a channel session: a service's sidecar, or a gateway. */
export type ChannelIdentity = (({ kind: 'sidecar' } & SidecarIdentity) | ({ kind: 'gateway' } & GatewayIdentity)) & {
  /** The certificate's notBefore (ms since the epoch), for revocation cut-offs. */
  notBeforeMs?: number;
};

/**
 * The identity of the peer on `socket`, or a reason why it has none: no certificate, one that
 * does not chain to the CA (or expired), or one that is neither a sidecar nor a gateway
 * certificate of `trustDomain` (several URI SANs included).
 */
export function channelIdentityOf(socket: TLSSocket, trustDomain: string): ChannelIdentity | { refused: string } {
  if (!socket.authorized) {
    return { refused: `client certificate required and must chain to the mesh CA (${String(socket.authorizationError ?? 'none presented')})` };
  }
  const cert = socket.getPeerX509Certificate();
  if (cert === undefined) return { refused: 'no client certificate' };
  const peer = peerIdentityOf(trustDomain, uriSansOf(cert.subjectAltName));
  if (peer === undefined) {
    return { refused: `certificate is not a sidecar or gateway certificate of ${trustDomain}` };
  }
  const commonName = /^CN=(.*)$/m.exec(cert.subject)?.[1];
  if (commonName === undefined || !sidecarIdSchema.safeParse(commonName).success) {
    return { refused: `certificate has no valid ${peer.kind === 'service' ? 'sidecar' : 'gateway'} id as its common name` };
  }
  const notBeforeMs = Date.parse(cert.validFrom);
  return peer.kind === 'service'
    ? { kind: 'sidecar', sidecarId: commonName, service: peer.service, notBeforeMs }
    : { kind: 'gateway', gatewayId: commonName, zone: peer.zone, name: peer.name, notBeforeMs };
}
