import type { Logger } from 'pino';
import type { SidecarMessage } from '../../proto/control.js';
import type { Credentials } from './credentials.js';
import { createCsrPem } from './keys.js';
import type { LeafRefusal } from './leaf-validity.js';

/** A renewal that got no certificate is retried after this share of the remaining life… */
const RENEW_RETRY_LIFE_SHARE = 1 / 8;
/** …but no sooner than this… */
const MIN_RENEW_RETRY_MS = 1000;
/** …and no later than this. */
const MAX_RENEW_RETRY_MS = 30_000;
/** The soonest a renewal is scheduled, however short the certificate's life. */
const MIN_RENEW_DELAY_MS = 1000;
/** setTimeout waits at most about 24.8 days; renewal re-checks then. */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** @default 2000 — an early renewal (asked for by the trust bundle) starts within this, spread at random. */
export const DEFAULT_EARLY_RENEWAL_SPREAD_MS = 2000;

/** The channel renewals go over: the control session. */
export interface RenewalChannel {
  /** Sends a message; false when the channel is down. */
  send(message: SidecarMessage): boolean;
  /** A certificate that came was not taken (the control session checks it first). */
  on(event: 'certificate-refused', listener: (refusal: LeafRefusal) => void): unknown;
}

/** Where renewals are counted. */
export interface RenewalObserver {
  certRenewalFailed(): void;
  certRenewed(): void;
}

export interface CertificateRenewerInit {
  credentials: Credentials;
  session: RenewalChannel;
  logger: Logger;
  metrics?: RenewalObserver;
  /** @default Math.random */
  random?: () => number;
}

/**
 * Renews the sidecar certificate at half its remaining life over the control-plane channel,
 * with the same key. Links keep running on the certificate they were made with; handshakes
 * after the renewal use the new one. A renewal that gets no certificate is counted as failed
 * and retried, sooner the closer the certificate is to its end.
 */
export class CertificateRenewer {
  readonly #credentials: Credentials;
  readonly #session: RenewalChannel;
  readonly #logger: Logger;
  readonly #metrics: RenewalObserver | undefined;
  readonly #random: () => number;
  #timer: NodeJS.Timeout | undefined;
  #certPem: string;
  /** A request was sent and no certificate has come since. */
  #outstanding = false;
  /** An early renewal is scheduled. */
  #early = false;
  /** The last renewal failed and no certificate has come since. */
  #failing = false;
  #stopped = false;

  constructor(init: CertificateRenewerInit) {
    this.#credentials = init.credentials;
    this.#session = init.session;
    this.#logger = init.logger;
    this.#metrics = init.metrics;
    this.#random = init.random ?? Math.random;
    this.#certPem = init.credentials.current.certPem;
    this.#credentials.on('change', () => this.#onChange());
    // A refused certificate is a failed renewal; the retry already scheduled asks again.
    this.#session.on('certificate-refused', (refusal) => this.#failed(`the certificate sent was refused (${refusal.code}): ${refusal.message}`));
    this.#scheduleAtHalfLife();
  }

  /**
   * Renews within `spreadMs` (at a random moment, so that a whole mesh told at once does not
   * renew at once), unless a renewal is already under way or scheduled early.
   */
  renewSoon(spreadMs = DEFAULT_EARLY_RENEWAL_SPREAD_MS): void {
    if (this.#stopped || this.#outstanding || this.#early) return;
    this.#early = true;
    this.#setTimer(this.#random() * spreadMs);
  }

  /** Whether the last renewal failed and no certificate came since. */
  get failing(): boolean {
    return this.#failing;
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #onChange(): void {
    // Trust-bundle changes also land here; only a new certificate ends a renewal.
    const { certPem } = this.#credentials.current;
    if (certPem === this.#certPem) return;
    this.#certPem = certPem;
    this.#outstanding = false;
    this.#early = false;
    this.#failing = false;
    this.#metrics?.certRenewed();
    if (!this.#stopped) this.#scheduleAtHalfLife();
  }

  #scheduleAtHalfLife(): void {
    this.#setTimer(Math.max(this.#remainingMs() / 2, MIN_RENEW_DELAY_MS));
  }

  #setTimer(delayMs: number): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.#renew(), Math.min(delayMs, MAX_TIMER_MS));
    this.#timer.unref();
  }

  #remainingMs(): number {
    return this.#credentials.current.expiresAt - Date.now();
  }

  #renew(): void {
    if (this.#outstanding) this.#failed('no certificate came in answer to the last renewal');
    this.#early = false;
    const { privateKeyPem, sidecarId } = this.#credentials.current;
    // Retried unless a new certificate arrives first (which reschedules).
    this.#setTimer(Math.min(Math.max(this.#remainingMs() * RENEW_RETRY_LIFE_SHARE, MIN_RENEW_RETRY_MS), MAX_RENEW_RETRY_MS));
    createCsrPem(privateKeyPem, sidecarId).then(
      (csrPem) => {
        if (this.#stopped) return;
        if (this.#session.send({ type: 'renew', csrPem })) {
          this.#outstanding = true;
          this.#logger.info('certificate renewal requested');
        } else {
          this.#failed('control plane away');
        }
      },
      (error: Error) => this.#failed(`cannot make a renewal request: ${error.message}`),
    );
  }

  #failed(reason: string): void {
    this.#outstanding = false;
    this.#failing = true;
    this.#metrics?.certRenewalFailed();
    this.#logger.warn({ reason, expiresAt: new Date(this.#credentials.current.expiresAt).toISOString() }, 'certificate renewal failed; retrying');
  }
}
