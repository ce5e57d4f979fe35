import { X509Certificate } from 'node:crypto';
import type { Logger } from 'pino';
import type { TrustBundleValue } from '../../proto/control.js';
import type { Credentials } from './credentials.js';

/** Where the published trust bundle is read. */
export interface TrustBundleSource {
  trustBundle(): TrustBundleValue | undefined;
  on(event: 'version', listener: () => void): unknown;
}

/**
 * Follows the `trust/bundle` config entry (PROTOCOL.md, "CA rotation"): trusts exactly the roots
 * it names from then on, and renews early when the leaf held was not issued by the root that
 * signs now. Applied when the config version changes, so before that version is acked, and
 * again whenever the credentials change.
 */
export function followTrustBundle(init: { config: TrustBundleSource; credentials: Credentials; renewer: { renewSoon(): void }; logger: Logger }): void {
  const { config, credentials, renewer, logger } = init;
  const apply = (): void => {
    const bundle = config.trustBundle();
    if (bundle === undefined) return;
    if (!sameRoots(bundle.caPems, credentials.current.caPems)) {
      logger.info({ roots: bundle.caPems.length, signer: bundle.signer }, 'trust bundle changed');
      credentials.replace({ caPems: bundle.caPems });
    }
    if (issuerFingerprint(credentials.current.certPem, bundle.caPems) !== bundle.signer) renewer.renewSoon();
  };
  config.on('version', apply);
  // A certificate that answers a renewal sent before the signer changed is of the old root, and
  // carries the bundle of its moment: the published entry decides, whichever came last.
  credentials.on('change', apply);
  apply();
}

function sameRoots(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((pem) => b.includes(pem));
}

/** The fingerprint of the root of `caPems` that issued `certPem`, if any. */
export function issuerFingerprint(certPem: string, caPems: readonly string[]): string | undefined {
  const leaf = new X509Certificate(certPem);
  for (const pem of caPems) {
    const root = new X509Certificate(pem);
    if (leaf.checkIssued(root) && leaf.verify(root.publicKey)) return root.fingerprint256.replaceAll(':', '').toLowerCase();
  }
  return undefined;
}
