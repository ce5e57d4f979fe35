/**
 * What the CA signs and for whom: sidecar and gateway leaves from CSRs (the identity comes
 * from the token or the session's certificate, never from the CSR) and the control plane's
 * own server certificate.
 */
import { generateKeyPair } from 'node:crypto';
import { isIP } from 'node:net';
import { promisify } from 'node:util';
import { controlPlaneSpiffeId, gatewaySpiffeId, serviceSpiffeId } from '../proto/spiffe.js';
import type { CertificateAuthority, IssuedCertificate } from './ca.js';
import { leafKeyOf } from './ca.js';
import { readCsr } from './csr-reader.js';

const generateKeyPairAsync = promisify(generateKeyPair);

/** Who a sidecar certificate is for. */
export interface SidecarIdentity {
  sidecarId: string;
  service: string;
}

/** Who a gateway certificate is for. */
export interface GatewayIdentity {
  /** `gw-<hex>`, made when the gateway joined. */
  gatewayId: string;
  zone: string;
  name: string;
}

/**
 * Checks a CSR (parseable, self-signature valid, RSA ≥ 2048 bits) and signs a sidecar leaf for
 * `identity`: CN = sidecar id, URI SAN = the service's SPIFFE id, whatever the CSR asks for.
 * @throws ApiError `TRELLIS_ERR_BAD_CSR` (400) saying what is wrong with the CSR.
 */
export function signSidecarCsr(ca: CertificateAuthority, csrPem: string, identity: SidecarIdentity, ttlMs: number): IssuedCertificate {
  return signMeshLeaf(ca, csrPem, identity.sidecarId, serviceSpiffeId(ca.trustDomain, identity.service), ttlMs);
}

/**
 * Checks a CSR as {@link signSidecarCsr} does and signs a gateway leaf for `identity`:
 * CN = gateway id, URI SAN = `spiffe://<td>/gw/<zone>/<name>`, with a sidecar leaf's key usages
 * and lifetime (a gateway both dials and accepts links).
 * @throws ApiError `TRELLIS_ERR_BAD_CSR` (400) saying what is wrong with the CSR.
 */
export function signGatewayCsr(ca: CertificateAuthority, csrPem: string, identity: GatewayIdentity, ttlMs: number): IssuedCertificate {
  return signMeshLeaf(ca, csrPem, identity.gatewayId, gatewaySpiffeId(ca.trustDomain, identity.zone, identity.name), ttlMs);
}

/** A leaf with exactly one URI SAN: peers refuse certificates with several (see PROTOCOL.md). */
function signMeshLeaf(ca: CertificateAuthority, csrPem: string, commonName: string, spiffeId: string, ttlMs: number): IssuedCertificate {
  const csr = readCsr(csrPem);
  return ca.issue({ spki: csr.spki, type: csr.publicKey.asymmetricKeyType }, { commonName, uriSans: [spiffeId], extKeyUsage: { serverAuth: true, clientAuth: true } }, ttlMs);
}

/**
 * Issues the certificate of the control plane's HTTPS listener, with a fresh EC P-256 key (an
 * ECDSA signature is ~35× cheaper than an RSA-2048 one, though a whole Node TLS handshake only
 * ~10 %, bench/NOTES.md): URI SAN
 * `spiffe://<td>/control-plane`, DNS `localhost`, the loopback addresses, and the listen host.
 */
export async function issueServerCertificate(
  ca: CertificateAuthority,
  listenHost: string,
  ttlMs: number,
): Promise<{ certPem: string; keyPem: string; expiresAt: number }> {
  const keys = await generateKeyPairAsync('ec', { namedCurve: 'prime256v1' });
  const dnsSans = new Set(['localhost']);
  const ipSans = new Set(['127.0.0.1', '::1']);
  // A wildcard listen address is not a name anybody dials, so it gets no SAN.
  if (isIP(listenHost) !== 0 && listenHost !== '0.0.0.0' && listenHost !== '::') ipSans.add(listenHost);
  else if (isIP(listenHost) === 0 && listenHost !== '') dnsSans.add(listenHost);
  const issued = ca.issue(
    leafKeyOf(keys.publicKey),
    {
      commonName: 'control-plane',
      uriSans: [controlPlaneSpiffeId(ca.trustDomain)],
      dnsSans: [...dnsSans],
      ipSans: [...ipSans],
      extKeyUsage: { serverAuth: true, clientAuth: false },
    },
    ttlMs,
  );
  return { ...issued, keyPem: keys.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() };
}
