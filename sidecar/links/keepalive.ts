import { MuxError } from '../mux/errors.js';
import type { Session } from '../mux/index.js';

export interface KeepAliveOptions {
  /** Time between PINGs. */
  intervalMs: number;
  /** A PING unanswered for this long means the link is dead. @default 3 × intervalMs */
  timeoutMs?: number;
  /** Each measured round trip, in ms. */
  onRtt?: (rttMs: number) => void;
}

/**
 * PINGs `session` every interval and closes it (`TRELLIS_ERR_PING_TIMEOUT`) when a PONG does
 * not come back in time: a peer that vanished without a FIN (a partition, a dead host) is
 * noticed within the timeout instead of when the kernel gives up on the socket, minutes later.
 */
export function keepAlive(session: Session, options: KeepAliveOptions): void {
  const timeoutMs = options.timeoutMs ?? 3 * options.intervalMs;
  let lastAnswerMs = Date.now();
  const timer = setInterval(() => {
    if (Date.now() - lastAnswerMs > timeoutMs) {
      clearInterval(timer);
      session.close(new MuxError('TRELLIS_ERR_PING_TIMEOUT', `no PONG for ${timeoutMs} ms: the link is dead`));
      return;
    }
    session.ping().then(
      (rttMs) => {
        lastAnswerMs = Date.now();
        options.onRtt?.(rttMs);
      },
      () => undefined,
    );
  }, options.intervalMs);
  timer.unref();
  session.once('ready', () => (lastAnswerMs = Date.now()));
  session.once('close', () => clearInterval(timer));
}
