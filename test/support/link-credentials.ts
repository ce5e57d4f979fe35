// Mesh credentials for link tests: a CA in a temporary directory, service and gateway leaves.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { CertificateAuthority } from '../../control-plane/ca.js';
import { signGatewayCsr, signSidecarCsr } from '../../control-plane/cert-issuer.js';
import type { PeerIdentity } from '../../proto/spiffe.js';
import { Credentials } from '../../sidecar/identity/credentials.js';
import { createCsrPem, generateSidecarKeyPair } from '../../sidecar/identity/keys.js';

const HOUR_MS = 3_600_000;

/** A CA of `trustDomain` in a temporary directory; `remove()` closes it and deletes the directory. */
export interface TestCa {
  ca: CertificateAuthority;
  remove(): Promise<void>;
}

export async function createTestCa(trustDomain: string): Promise<TestCa> {
  const dataDir = await mkdtemp(join(tmpdir(), 'trellis-link-ca-'));
  const ca = await CertificateAuthority.loadOrCreate({ dataDir, trustDomain, logger: pino({ level: 'silent' }), now: Date.now });
  // Closed first: a leaf signed within the last second is still to be written to the CA's
  // ledger in the directory, and a removal meeting that write fails with ENOTEMPTY.
  const remove = async (): Promise<void> => {
    await ca.close();
    await rm(dataDir, { recursive: true, force: true });
  };
  return { ca, remove };
}

export interface LeafOptions {
  /** The trust bundle the holder verifies peers with. @default the issuing CA only */
  trust?: string[];
}

/**
 * Credentials for `identity` signed by `ca`: a service's sidecar (CN `<service>-1`) or a
 * gateway (CN `gw-<zone>-<name>`), each with its one URI SAN as the control plane issues it.
 */
export async function credentialsFor(ca: CertificateAuthority, identity: PeerIdentity | string, options: LeafOptions = {}): Promise<Credentials> {
  const peer: PeerIdentity = typeof identity === 'string' ? { kind: 'service', service: identity } : identity;
  const keys = await generateSidecarKeyPair();
  const commonName = peer.kind === 'service' ? `${peer.service}-1` : `gw-${peer.zone}-${peer.name}`;
  const csrPem = await createCsrPem(keys.privateKeyPem, commonName);
  const issued =
    peer.kind === 'service'
      ? signSidecarCsr(ca, csrPem, { sidecarId: commonName, service: peer.service }, HOUR_MS)
      : signGatewayCsr(ca, csrPem, { gatewayId: commonName, zone: peer.zone, name: peer.name }, HOUR_MS);
  return new Credentials({
    trustDomain: ca.trustDomain,
    service: peer.kind === 'service' ? peer.service : peer.name,
    gateway: peer.kind === 'gateway' ? { zone: peer.zone, name: peer.name } : undefined,
    sidecarId: commonName,
    privateKeyPem: keys.privateKeyPem,
    certPem: issued.certPem,
    caPems: options.trust ?? ca.caPems(),
    expiresAt: issued.expiresAt,
  });
}
