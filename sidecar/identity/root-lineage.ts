import { X509Certificate } from 'node:crypto';

/** A replaced root and its successor's key and subject signed by it (PROTOCOL.md, "CA rotation"). */
export interface RootLineageEntry {
  rootPem: string;
  crossPem: string;
}

/** Most roots followed from a pin: more rotations than a control plane keeps in its lineage. */
const MAX_LINEAGE_STEPS = 64;

/**
 * The roots of `caPems` that `pinnedFingerprint` (lowercase hex SHA-256 of a root's DER)
 * vouches for: the pinned root itself when the bundle still holds it, and every root reached
 * from it through cross-signatures (its successors, during and after a rotation). Each step
 * checks that the replaced root signed the cross-certificate and that the certificate's key is
 * a later root's, so only the pinned key vouches for what is returned. Empty when it vouches
 * for none.
 */
export function rootsFromPin(pinnedFingerprint: string, caPems: readonly string[], lineage: readonly RootLineageEntry[]): string[] {
  const trusted: string[] = [];
  let pin = pinnedFingerprint.toLowerCase();
  for (let step = 0; step <= MAX_LINEAGE_STEPS; step += 1) {
    const current = caPems.find((pem) => fingerprintOrUndefined(pem) === pin);
    if (current !== undefined && !trusted.includes(current)) trusted.push(current);
    const entry = lineage.find((candidate) => fingerprintOrUndefined(candidate.rootPem) === pin);
    const successor = entry === undefined ? undefined : verifiedSuccessorKey(entry);
    if (successor === undefined) break;
    const next = [...caPems, ...lineage.map((candidate) => candidate.rootPem)].find((pem) => publicKeyDer(pem)?.equals(successor) === true);
    const nextPin = next === undefined ? undefined : fingerprintOrUndefined(next);
    if (nextPin === undefined || nextPin === pin) break;
    pin = nextPin;
  }
  return trusted;
}

function verifiedSuccessorKey(entry: RootLineageEntry): Buffer | undefined {
  try {
    const root = new X509Certificate(entry.rootPem);
    const cross = new X509Certificate(entry.crossPem);
    if (!root.ca || !cross.ca || !cross.checkIssued(root) || !cross.verify(root.publicKey)) return undefined;
    return cross.publicKey.export({ type: 'spki', format: 'der' });
  } catch {
    return undefined;
  }
}

function publicKeyDer(pem: string): Buffer | undefined {
  try {
    return new X509Certificate(pem).publicKey.export({ type: 'spki', format: 'der' });
  } catch {
    return undefined;
  }
}

function fingerprintOrUndefined(pem: string): string | undefined {
  try {
    return new X509Certificate(pem).fingerprint256.replaceAll(':', '').toLowerCase();
  } catch {
    return undefined;
  }
}
