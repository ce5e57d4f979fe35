// The CA's rotation steps and their persistence, the leaf ledger, root lineage, and the
// sidecar's reading of the trust bundle, in process with real keys and certificates.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import forge from 'node-forge';
import { CertificateAuthority } from '../../control-plane/ca.js';
import { signSidecarCsr } from '../../control-plane/cert-issuer.js';
import { ApiError, DataDirError } from '../../control-plane/errors.js';
import { ControlErrorCode, parseConfigEntry, TRUST_BUNDLE_KEY } from '../../proto/control.js';
import { ValidationError } from '../../proto/errors.js';
import { MeshConfig } from '../../sidecar/config/mesh-config.js';
import { typedEntry } from '../../sidecar/config/entries.js';
import { Credentials } from '../../sidecar/identity/credentials.js';
import { createCsrPem, generateSidecarKeyPair } from '../../sidecar/identity/keys.js';
import { rootsFromPin } from '../../sidecar/identity/root-lineage.js';
import { followTrustBundle, issuerFingerprint } from '../../sidecar/identity/trust-follower.js';
import { silentLogger, tempDir } from './helpers.js';

const TD = 'rotation.test';

function open(dataDir: string): Promise<CertificateAuthority> {
  return CertificateAuthority.loadOrCreate({ dataDir, trustDomain: TD, logger: silentLogger, now: Date.now });
}

async function leafFrom(ca: CertificateAuthority, sidecarId: string): Promise<{ certPem: string; privateKeyPem: string; expiresAt: number }> {
  const keys = await generateSidecarKeyPair();
  const issued = signSidecarCsr(ca, await createCsrPem(keys.privateKeyPem, sidecarId), { sidecarId, service: 'web' }, 3_600_000);
  return { ...issued, privateKeyPem: keys.privateKeyPem };
}

function subjectKeyId(pem: string): string {
  const extension: unknown = forge.pki.certificateFromPem(pem).getExtension('subjectKeyIdentifier');
  return (extension as { subjectKeyIdentifier?: string } | null)?.subjectKeyIdentifier ?? '';
}

describe('CA rotation steps', () => {
  it('persists every step: next root trusted, then signing, then the old one retired', async () => {
    const dir = await tempDir();
    try {
      let ca = await open(dir.path);
      const oldRoot = ca.certPem;
      const oldFingerprint = ca.fingerprint;
      await leafFrom(ca, 'sc-000000000001');
      await ca.addNextRoot();
      await assert.rejects(ca.addNextRoot(), (err: unknown) => err instanceof ApiError && err.code === ControlErrorCode.CA_ROTATION_IN_PROGRESS && err.httpStatus === 409);
      await ca.flush();

      ca = await open(dir.path);
      assert.equal(ca.phase, 'distributing');
      assert.equal(ca.fingerprint, oldFingerprint, 'the old root still signs');
      const [, nextRoot] = ca.caPems();
      assert.ok(nextRoot !== undefined);
      assert.notEqual(subjectKeyId(nextRoot), subjectKeyId(oldRoot), 'each root has its own key id');
      await ca.promoteNextRoot();

      ca = await open(dir.path);
      assert.equal(ca.phase, 'reissuing');
      assert.equal(ca.certPem, nextRoot);
      assert.equal(await readFile(join(dir.path, 'ca.crt'), 'utf8'), nextRoot);
      assert.deepEqual(ca.roots().map((root) => root.role), ['signing', 'retiring']);
      const renewed = await leafFrom(ca, 'sc-000000000002');
      assert.equal(issuerFingerprint(renewed.certPem, ca.caPems()), ca.fingerprint);
      assert.ok(new X509Certificate(renewed.certPem).checkIssued(new X509Certificate(nextRoot)));
      const ledger = new Map(ca.liveLeaves().map((leaf) => [leaf.id, leaf.rootFingerprint]));
      assert.equal(ledger.get('sc-000000000001'), oldFingerprint, 'the ledger kept the old leaf across restarts');
      assert.equal(ledger.get('sc-000000000002'), ca.fingerprint);
      await ca.retireOldRoot();

      ca = await open(dir.path);
      assert.equal(ca.phase, 'stable');
      assert.deepEqual(ca.caPems(), [nextRoot]);
      assert.ok((ca.rotation?.completedAt ?? 0) >= (ca.rotation?.startedAt ?? Infinity));
      assert.deepEqual(rootsFromPin(oldFingerprint, ca.caPems(), ca.lineage()), [nextRoot], 'the old pin leads to the new root');
    } finally {
      await dir.remove();
    }
  });

  it('finishes a promotion that a crash interrupted between the files', async () => {
    const dir = await tempDir();
    try {
      const ca = await open(dir.path);
      const oldRoot = ca.certPem;
      await ca.addNextRoot();
      // What a promotion writes first, before it replaces ca.key and ca.crt.
      const rotation = JSON.parse(await readFile(join(dir.path, 'ca-rotation.json'), 'utf8')) as Record<string, unknown>;
      const { next, ...rest } = rotation;
      await writeFile(join(dir.path, 'ca-rotation.json'), JSON.stringify({ ...rest, retiring: { certPem: oldRoot }, promoting: next }));
      const reopened = await open(dir.path);
      assert.equal(reopened.phase, 'reissuing');
      assert.equal(reopened.certPem, (next as { certPem: string }).certPem);
      assert.equal(await readFile(join(dir.path, 'ca.crt'), 'utf8'), reopened.certPem);
      const leaf = await leafFrom(reopened, 'sc-000000000003');
      assert.equal(issuerFingerprint(leaf.certPem, [reopened.certPem]), reopened.fingerprint, 'the promoted key signs');
    } finally {
      await dir.remove();
    }
  });

  it('refuses a corrupt rotation state, naming the file', async () => {
    const dir = await tempDir();
    try {
      const ca = await open(dir.path);
      await ca.addNextRoot();
      await writeFile(join(dir.path, 'ca-rotation.json'), '{"lineage": 7}');
      await assert.rejects(open(dir.path), (err: unknown) => err instanceof DataDirError && err.code === ControlErrorCode.DATA_DIR && err.path.endsWith('ca-rotation.json'));
    } finally {
      await dir.remove();
    }
  });
});

describe('root lineage', () => {
  it('follows two rotations from the first pin, and refuses a lineage the pinned key did not sign', async () => {
    const dir = await tempDir();
    const other = await tempDir();
    try {
      const ca = await open(dir.path);
      const first = ca.fingerprint;
      for (let i = 0; i < 2; i += 1) {
        await ca.addNextRoot();
        await ca.promoteNextRoot();
        await ca.retireOldRoot();
      }
      assert.equal(ca.lineage().length, 2);
      assert.deepEqual(rootsFromPin(first, ca.caPems(), ca.lineage()), ca.caPems());
      assert.deepEqual(rootsFromPin('0'.repeat(64), ca.caPems(), ca.lineage()), []);

      // An impostor's bundle: its own root, "cross-signed" by a key that is not the pinned one.
      const impostor = await open(other.path);
      await impostor.addNextRoot();
      const [forged] = impostor.lineage();
      assert.ok(forged !== undefined);
      const firstRootPem = ca.lineage()[0]?.rootPem ?? '';
      assert.deepEqual(rootsFromPin(first, impostor.caPems(), [{ rootPem: firstRootPem, crossPem: forged.crossPem }]), []);
    } finally {
      await dir.remove();
      await other.remove();
    }
  });
});

describe('trust bundle entry', () => {
  it('is validated at the boundary', () => {
    assert.throws(() => parseConfigEntry(TRUST_BUNDLE_KEY, { caPems: [], signer: 'a'.repeat(64) }), (err: unknown) => err instanceof ValidationError && err.code === ControlErrorCode.INVALID);
    assert.throws(() => parseConfigEntry(TRUST_BUNDLE_KEY, { caPems: ['x'], signer: 'not hex' }), (err: unknown) => err instanceof ValidationError && err.code === ControlErrorCode.INVALID);
    assert.deepEqual(parseConfigEntry(TRUST_BUNDLE_KEY, { caPems: ['x'], signer: 'a'.repeat(64) }), { caPems: ['x'], signer: 'a'.repeat(64) });
  });

  it('makes a sidecar trust exactly its roots, and renew early when its leaf is not of the signer', async () => {
    const dir = await tempDir();
    try {
      const ca = await open(dir.path);
      const leaf = await leafFrom(ca, 'sc-000000000004');
      const credentials = new Credentials({ trustDomain: TD, service: 'web', sidecarId: 'sc-000000000004', ...leaf, caPems: ca.caPems() });
      const config = new MeshConfig();
      let earlyRenewals = 0;
      followTrustBundle({ config, credentials, renewer: { renewSoon: () => (earlyRenewals += 1) }, logger: silentLogger });
      const publish = (version: number): void => {
        config.applySnapshot(version, [typedEntry(TRUST_BUNDLE_KEY, { caPems: ca.caPems(), signer: ca.fingerprint })]);
      };

      publish(1);
      assert.equal(earlyRenewals, 0, 'a leaf of the signer is kept');
      await ca.addNextRoot();
      publish(2);
      assert.deepEqual(credentials.current.caPems, ca.caPems(), 'the next root is trusted at once');
      assert.equal(earlyRenewals, 0, 'the old root still signs');
      await ca.promoteNextRoot();
      publish(3);
      assert.equal(earlyRenewals, 1, 'a leaf of the retiring root is renewed early');
      // The answer to a renewal sent before the signer changed: an old leaf, the bundle of its moment.
      const staleBundle = credentials.current.caPems;
      credentials.replace({ certPem: leaf.certPem, caPems: [...staleBundle].reverse() });
      assert.equal(earlyRenewals, 2, 'an old leaf that arrives late is renewed early too');
      await ca.retireOldRoot();
      publish(4);
      assert.deepEqual(credentials.current.caPems, [ca.certPem], 'the retired root is no longer trusted');
      credentials.replace({ caPems: staleBundle });
      assert.deepEqual(credentials.current.caPems, [ca.certPem], 'the published bundle wins over a stale one');
    } finally {
      await dir.remove();
    }
  });
});
