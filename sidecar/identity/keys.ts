import { createPublicKey, generateKeyPair } from 'node:crypto';
import { promisify } from 'node:util';

const generateKeyPairAsync = promisify(generateKeyPair);

/** A sidecar's key pair, PEM-encoded. The private key never leaves the sidecar. */
export interface KeyPairPem {
  privateKeyPem: string;
  publicKeyPem: string;
}

/** Makes a fresh RSA 2048 key pair with Node's native generator (off the main thread). */
export async function generateSidecarKeyPair(): Promise<KeyPairPem> {
  const { privateKey, publicKey } = await generateKeyPairAsync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  return { privateKeyPem: privateKey, publicKeyPem: publicKey };
}

/**
 * A PKCS#10 request for the key pair of `privateKeyPem`, signed with it. The control plane
 * decides the identity in the certificate; the subject here is informational.
 */
export async function createCsrPem(privateKeyPem: string, commonName: string): Promise<string> {
  // Loaded on demand: joins and renewals are rare, and every module kept in the heap makes
  // each garbage collection of a busy sidecar slower.
  const { default: forge } = await import('node-forge');
  const publicKeyPem = createPublicKey(privateKeyPem).export({ type: 'spki', format: 'pem' }).toString();
  const csr = forge.pki.createCertificationRequest();
  csr.publicKey = forge.pki.publicKeyFromPem(publicKeyPem);
  csr.setSubject([{ name: 'commonName', value: commonName }]);
  csr.sign(forge.pki.privateKeyFromPem(privateKeyPem), forge.md.sha256.create());
  return forge.pki.certificationRequestToPem(csr);
}
