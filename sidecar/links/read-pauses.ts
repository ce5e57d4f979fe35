import type { Logger } from 'pino';
import type { SidecarMetrics } from '../metrics/metrics.js';
import type { Session } from '../mux/session.js';

/**
 * Counts each time `session` pauses reading over its refusal budget (an OPEN flood, or a
 * caller far beyond its stream quota) and warns once per link, not once per pause.
 */
export function countReadPauses(session: Session, metrics: Pick<SidecarMetrics, 'linkReadPaused'>, logger: Logger, peer: string): void {
  let warned = false;
  session.on('paused', (pauseMs: number) => {
    metrics.linkReadPaused();
    if (warned) return;
    warned = true;
    logger.warn({ peer, pauseMs }, 'link paused: the peer has streams refused at open faster than the refusal budget');
  });
}
