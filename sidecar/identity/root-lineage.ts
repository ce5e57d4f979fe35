import { X509Certificate } from 'node:crypto';

/** A replaced root and its successor's key and subject signed by it (PROTOCOL.md, "CA rotation"). */
export interface RootLineageEntry {
  rootPem: string;
  crossPem: string;
}

/** Most roots followed from a pin: more rotations than a control plane keeps in its lineage. */
const MAX_LINEAGE_STEPS = 64;

/**
 * The root of `caPems` that `pinnedFingerprint` (lowercase hex SHA-256 of a root's DER) leads
 * to: that root itself, or, when the pinned root was replaced, the root reached by following
 * cross-signatures from it. Each step checks that the replaced root signed the cross-certificate
 * and that the certificate's key is a later root's, so only the pinned key vouches for the result.
 */
export function rootFromPin(pinnedFingerprint: string, caPems: readonly string[], lineage: readonly RootLineageEntry[]): string | undefined {
  let pin = pinnedFingerprint.toLowerCase();
  for (let step = 0; step <= MAX_LINEAGE_STEPS; step += 1) {
    const current = caPems.find((pem) => fingerprintOrUndefined(pem) === pin);
    if (current !== undefined) return current;
    const entry = lineage.find((candidate) => fingerprintOrUndefined(candidate.rootPem) === pin);
    if (entry === undefined) return undefined;
    const successor = verifiedSuccessorKey(entry);
    if (successor === undefined) return undefined;
    const next = [...caPems, ...lineage.map((candidate) => candidate.rootPem)].find((pem) => publicKeyDer(pem)?.equals(successor) === true);
    const nextPin = next === undefined ? undefined : fingerprintOrUndefined(next);
    if (nextPin === undefined || nextPin === pin) return undefined;
    pin = nextPin;
  }
  return undefined;
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
