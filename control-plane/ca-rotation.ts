/**
 * CA rotation, phase by phase (see PROTOCOL.md, "CA rotation"): the next root is trusted
 * everywhere before it signs anything, every leaf is re-issued from it, and the old root is
 * dropped only when no live leaf depends on it. The phase lives with the CA's state, so a
 * restarted control plane resumes; the trust bundle is published as the `trust/bundle` config
 * entry, whose acks say who has it.
 *
 * With replicas on one store, any replica starts a rotation; its steps are taken by the
 * leader alone, from the acks and the leaf ledgers of every replica, so a rotation started on
 * one replica is finished by another if the first dies. Every replica follows the CA's state
 * (CertificateAuthority.onChange): its listener certificate and trust follow each step.
 */
import { X509Certificate } from 'node:crypto';
import type { Logger } from 'pino';
import type { CaStatus, ConfigChange } from '../proto/control.js';
import { TRUST_BUNDLE_KEY } from '../proto/control.js';
import type { Route } from './api/router.js';
import type { CertificateAuthority } from './ca.js';
import type { BundleAcks } from './ca-acks.js';

/** @default 500 — how often a rotation under way checks whether it can move on. */
const DEFAULT_CHECK_INTERVAL_MS = 500;
/** The ledger id of the control plane's own listener certificate (its common name). */
const CONTROL_PLANE_LEAF_ID = 'control-plane';
/** A leaf past this share of its life that was not renewed counts as failing to renew. */
const RENEWAL_OVERDUE_LIFE_SHARE = 0.75;

/** What the rotation needs from the rest of the control plane. */
export interface CaRotationComponents {
  ca: CertificateAuthority;
  /** Where the bundle is published, and the config version of the entry that carries it. */
  config: { apply(changes: readonly ConfigChange[]): Promise<number>; revisionOf(key: string): number };
  /** Whether every sidecar and gateway (of every replica) acked a config version. */
  acks: BundleAcks;
  /** Whether this replica takes the rotation's steps (the leader's duty). @default always */
  isLeader?: () => boolean;
  /** Called after every change of the bundle or the signer: the listener's certificate and trust follow. */
  onCaChanged: () => Promise<void>;
  logger: Logger;
  now: () => number;
  /** @default 500 */
  checkIntervalMs?: number;
}

/** Drives rotations and answers for the CA's status. */
export class CaRotation {
  readonly #components: CaRotationComponents;
  readonly #logger: Logger;
  #timer: NodeJS.Timeout | undefined;
  #stepping = false;

  constructor(components: CaRotationComponents) {
    this.#components = components;
    this.#logger = components.logger.child({ component: 'ca-rotation' });
  }

  /** Publishes the bundle in force, resumes a rotation that was under way, and follows other replicas' steps. */
  async start(): Promise<void> {
    this.#components.ca.onChange(() => void this.#followReplicas());
    await this.#publish();
    if (this.#components.ca.phase !== 'stable') this.#startChecking();
  }

  /**
   * Starts a rotation: adds a new root to the bundle and publishes it.
   * @throws ApiError `TRELLIS_ERR_CA_ROTATION_IN_PROGRESS` while one has not completed.
   */
  async rotate(): Promise<CaStatus> {
    await this.#components.ca.addNextRoot();
    await this.#components.onCaChanged();
    await this.#publish();
    this.#startChecking();
    return this.status();
  }

  status(): CaStatus {
    const { ca, now } = this.#components;
    const nowMs = now();
    const roots = ca.roots();
    // The root a rotation replaces: still signing while the next one is distributed.
    const oldRoot = roots.find((root) => root.role === 'retiring' || (root.role === 'signing' && ca.phase === 'distributing'))?.fingerprint;
    const leaves = ca.liveLeaves().filter((leaf) => leaf.id !== CONTROL_PLANE_LEAF_ID);
    return {
      trustDomain: ca.trustDomain,
      phase: ca.phase,
      roots: roots.map(({ fingerprint, certPem, role }) => {
        const cert = new X509Certificate(certPem);
        return { fingerprint, notBefore: Date.parse(cert.validFrom), notAfter: Date.parse(cert.validTo), role };
      }),
      oldRootHolders: oldRoot === undefined ? 0 : leaves.filter((leaf) => leaf.rootFingerprint === oldRoot).length,
      complete: ca.phase === 'stable',
      ...(ca.rotation === undefined ? {} : { rotation: ca.rotation }),
      leaves: leaves.map((leaf) => ({
        id: leaf.id,
        rootFingerprint: leaf.rootFingerprint,
        expiresAt: leaf.expiresAt,
        renewalOverdue: nowMs > leaf.issuedAt + (leaf.expiresAt - leaf.issuedAt) * RENEWAL_OVERDUE_LIFE_SHARE,
      })),
    };
  }

  close(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Another replica changed the CA: this one's listener follows, and checks the rotation too. */
  async #followReplicas(): Promise<void> {
    try {
      await this.#components.onCaChanged();
    } catch (err) {
      this.#logger.error({ err }, 'cannot follow the CA change another replica made');
    }
    if (this.#components.ca.phase !== 'stable') this.#startChecking();
  }

  #startChecking(): void {
    if (this.#timer !== undefined) return;
    this.#timer = setInterval(() => void this.#step(), this.#components.checkIntervalMs ?? DEFAULT_CHECK_INTERVAL_MS);
    this.#timer.unref();
  }

  async #step(): Promise<void> {
    if (this.#stepping) return;
    this.#stepping = true;
    try {
      const { ca, isLeader } = this.#components;
      if (ca.phase === 'stable') {
        // Completed, here or by another replica.
        this.close();
        return;
      }
      if (isLeader !== undefined && !isLeader()) return;
      // A replica that died between its step and its publication left a stale bundle.
      const bundleVersion = await this.#publish();
      if (ca.phase === 'distributing' && (await this.#components.acks.allAcked(bundleVersion))) {
        if (await ca.promoteNextRoot()) await this.#afterStep();
      } else if (ca.phase === 'reissuing' && this.#nothingDependsOnTheRetiringRoot()) {
        if (await ca.retireOldRoot()) await this.#afterStep();
      }
    } catch (err) {
      // Retried at the next check: every step is idempotent up to its persisted phase.
      this.#logger.error({ err }, 'CA rotation step failed');
    } finally {
      this.#stepping = false;
    }
  }

  async #afterStep(): Promise<void> {
    await this.#components.onCaChanged();
    await this.#publish();
    if (this.#components.ca.phase === 'stable') this.close();
  }

  #nothingDependsOnTheRetiringRoot(): boolean {
    const { ca } = this.#components;
    const retiring = ca.roots().find((root) => root.role === 'retiring')?.fingerprint;
    return ca.liveLeaves().every((leaf) => leaf.rootFingerprint !== retiring);
  }

  /** Publishes the bundle unless it is in force already; resolves with the config version that carries it. */
  async #publish(): Promise<number> {
    const { ca, config } = this.#components;
    const before = config.revisionOf(TRUST_BUNDLE_KEY);
    await config.apply([[TRUST_BUNDLE_KEY, { caPems: ca.caPems(), signer: ca.fingerprint }]]);
    const version = config.revisionOf(TRUST_BUNDLE_KEY);
    if (version !== before) this.#logger.info({ phase: ca.phase, version, roots: ca.caPems().length }, 'trust bundle published');
    return version;
  }
}

/** `GET /v1/ca` and `POST /v1/ca/rotate`, behind the admin token. */
export function caRoutes(rotation: CaRotation): Route[] {
  return [
    { method: 'GET', path: '/v1/ca', admin: true, hasBody: false, handle: () => Promise.resolve({ json: rotation.status() }) },
    { method: 'POST', path: '/v1/ca/rotate', admin: true, hasBody: true, handle: async () => ({ status: 202, json: await rotation.rotate() }) },
  ];
}
