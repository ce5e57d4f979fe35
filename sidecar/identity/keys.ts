import { generateKeyPair } from 'node:crypto';
import { promisify } from 'node:util';
import { createCsrPemFor } from './csr.js';

const generateKeyPairAsync = promisify(generateKeyPair);

/** A sidecar's key pair, PEM-encoded. The private key never leaves the sidecar. */
export interface KeyPairPem {
  privateKeyPem: string;
  publicKeyPem: string;
}

/**
 * Makes a fresh EC P-256 key pair with Node's native generator (off the main thread). P-256,
 * not RSA: every link handshake signs with this key, and an ECDSA P-256 signature costs ~35×
 * less CPU than an RSA-2048 one (the whole handshake, measured in Node, ~10 % less; bench/NOTES.md). A key of an older sidecar (RSA, in its data
 * directory) keeps working: CSRs are written for either.
 */
export async function generateSidecarKeyPair(): Promise<KeyPairPem> {
  const { privateKey, publicKey } = await generateKeyPairAsync('ec', {
    namedCurve: 'prime256v1',
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  return { privateKeyPem: privateKey, publicKeyPem: publicKey };
}

/**
 * A PKCS#10 request for the key pair of `privateKeyPem`, signed with it. The control plane
 * decides the identity in the certificate; the subject here is informational.
 */
export function createCsrPem(privateKeyPem: string, commonName: string): Promise<string> {
  return Promise.resolve(createCsrPemFor(privateKeyPem, commonName));
}
