/**
 * Deletes the records of expired join and gateway tokens now and then, so the store does not
 * grow with every token ever issued. Of the replicas sharing a store, the leader runs it
 * (control-plane.ts); should two overlap while the leadership moves, a record deleted twice is
 * deleted once.
 */
import type { Logger } from 'pino';
import type { TokenService } from './token-service.js';

/** How often expired token records are pruned. */
export const TOKEN_PRUNE_INTERVAL_MS = 10 * 60 * 1000;

/** Options of {@link startTokenPruner}. */
export interface TokenPrunerInit {
  logger: Logger;
  /** @default {@link TOKEN_PRUNE_INTERVAL_MS} */
  intervalMs?: number;
  /** Called after each round with how many records went (tests wait on it). */
  onPruned?: (count: number) => void;
}

/** A running pruner. */
export interface TokenPruner {
  /** Stops the timer; a round under way finishes on its own. */
  stop(): void;
}

/** Prunes `tokens` every `intervalMs`; the timer does not keep the process alive. */
export function startTokenPruner(tokens: Pick<TokenService, 'pruneExpired'>, init: TokenPrunerInit): TokenPruner {
  let running = false;
  const timer = setInterval(() => {
    // A slow store must not pile rounds up behind each other.
    if (running) return;
    running = true;
    tokens
      .pruneExpired()
      .then((count) => {
        if (count > 0) init.logger.info({ count }, 'pruned expired join tokens');
        init.onPruned?.(count);
      })
      .catch((err: unknown) => init.logger.warn({ err }, 'cannot prune expired join tokens; will try again'))
      .finally(() => (running = false));
  }, init.intervalMs ?? TOKEN_PRUNE_INTERVAL_MS);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
