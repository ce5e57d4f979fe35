import type { Logger } from 'pino';
import type { ControlSession } from '../control/control-session.js';
import type { Credentials } from './credentials.js';
import { createCsrPem } from './keys.js';

/** Retry a renewal that got no certificate after this long. */
const RENEW_RETRY_MS = 30_000;

/**
 * Renews the sidecar certificate at half its remaining life over the control-plane channel,
 * with the same key; links keep running and new handshakes use the new certificate.
 */
export class CertificateRenewer {
  readonly #credentials: Credentials;
  readonly #session: ControlSession;
  readonly #logger: Logger;
  #timer: NodeJS.Timeout | undefined;

  constructor(init: { credentials: Credentials; session: ControlSession; logger: Logger }) {
    this.#credentials = init.credentials;
    this.#session = init.session;
    this.#logger = init.logger;
    this.#credentials.on('change', () => this.#schedule());
    this.#schedule();
  }

  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #schedule(): void {
    clearTimeout(this.#timer);
    const remainingMs = this.#credentials.current.expiresAt - Date.now();
    // setTimeout caps at about 24.8 days; renewal re-checks then.
    const delayMs = Math.min(Math.max(remainingMs / 2, 1000), 2 ** 31 - 1);
    this.#timer = setTimeout(() => this.#renew(), delayMs);
    this.#timer.unref();
  }

  #renew(): void {
    const { privateKeyPem, sidecarId } = this.#credentials.current;
    // Retried unless a new certificate arrives first (which reschedules).
    this.#timer = setTimeout(() => this.#renew(), RENEW_RETRY_MS);
    this.#timer.unref();
    createCsrPem(privateKeyPem, sidecarId).then(
      (csrPem) => {
        if (this.#session.send({ type: 'renew', csrPem })) this.#logger.info('certificate renewal requested');
        else this.#logger.warn('control plane away: certificate renewal will be retried');
      },
      (error: Error) => this.#logger.error({ err: error.message }, 'cannot make a renewal request'),
    );
  }
}
