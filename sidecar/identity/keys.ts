import { generateKeyPair } from 'node:crypto';
import { promisify } from 'node:util';
import { createRsaCsrPem } from './csr.js';

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
export function createCsrPem(privateKeyPem: string, commonName: string): Promise<string> {
  return Promise.resolve(createRsaCsrPem(privateKeyPem, commonName));
}
