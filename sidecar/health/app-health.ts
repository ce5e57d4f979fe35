import type { Logger } from 'pino';
import type { HealthMessage } from '../../proto/control.js';
import { ValidationError } from '../../proto/errors.js';
import type { HostPort } from '../net/address.js';
import { formatHostPort } from '../net/address.js';
import type { HealthCheckOptions } from './health-check.js';
import { DEFAULT_HEALTH_INTERVAL_MS, DEFAULT_HEALTH_TIMEOUT_MS, DEFAULT_HEALTHY_AFTER_SUCCESSES, DEFAULT_UNHEALTHY_AFTER_FAILURES } from './health-check.js';
import { HealthMonitor } from './health-monitor.js';
import type { HealthProbe, ProbeResult } from './probes.js';
import { probeFor } from './probes.js';

/** What health reporting needs of the control-plane channel (a `ControlSession`). */
export interface HealthChannel {
  /** Sends if the channel is up; returns false when it is not. */
  send(message: HealthMessage): boolean;
  on(event: 'connected', listener: () => void): unknown;
  off(event: 'connected', listener: () => void): unknown;
}

export interface AppHealthInit {
  app: HostPort;
  options: HealthCheckOptions;
  channel: HealthChannel;
  logger: Logger;
  /** @default the probe of `options.check` against `app` */
  probe?: HealthProbe;
}

/** The running health checks of the local app. */
export interface AppHealth {
  readonly healthy: boolean;
  stop(): void;
}

/**
 * Checks the local app and tells the control plane whenever the verdict flips, so that other
 * sidecars stop (or resume) sending it traffic. Until the first check has answered the app
 * counts as unhealthy. The current verdict travels in every registration and is sent again
 * after every (re)connect of the channel (for control planes that ignore it in `register`).
 * @throws ValidationError when the timeout exceeds the interval.
 */
export function startAppHealthChecks(init: AppHealthInit): AppHealth {
  const { app, options, channel, logger } = init;
  const intervalMs = options.intervalMs ?? DEFAULT_HEALTH_INTERVAL_MS;
  const timeoutMs = options.timeoutMs ?? Math.min(DEFAULT_HEALTH_TIMEOUT_MS, intervalMs);
  if (timeoutMs > intervalMs) {
    throw new ValidationError(`the health check timeout (${timeoutMs} ms) must not exceed its interval (${intervalMs} ms)`, 'TRELLIS_ERR_BAD_HEALTH_CHECK');
  }
  const monitor = new HealthMonitor({
    probe: init.probe ?? probeFor(options.check, app),
    intervalMs,
    timeoutMs,
    unhealthyAfterFailures: options.unhealthyAfterFailures ?? DEFAULT_UNHEALTHY_AFTER_FAILURES,
    healthyAfterSuccesses: options.healthyAfterSuccesses ?? DEFAULT_HEALTHY_AFTER_SUCCESSES,
  });
  const target = formatHostPort(app.host, app.port);
  monitor.on('change', (healthy: boolean, last: ProbeResult) => {
    if (healthy) logger.info({ app: target, check: last.detail }, 'app is healthy again');
    else logger.warn({ app: target, check: last.detail }, 'app failed its health checks; reporting it unhealthy');
    channel.send({ type: 'health', healthy });
  });
  const resend = (): void => {
    channel.send({ type: 'health', healthy: monitor.healthy });
  };
  channel.on('connected', resend);
  monitor.start();
  return {
    get healthy() {
      return monitor.healthy;
    },
    stop: () => {
      monitor.stop();
      channel.off('connected', resend);
    },
  };
}
