import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_IDLE_TIMEOUT_MS, parseTrafficFlags } from '../../cli/traffic-flags.js';

describe('trellis sidecar traffic and health flags', () => {
  it('reads every flag', () => {
    const settings = parseTrafficFlags(
      {
        hash: ['api=source-ip', 'db=fixed:primary'],
        'balance-load-factor': '1.5',
        'max-streams-per-endpoint': '100',
        'eject-after': '5',
        'eject-backoff': '500ms',
        'eject-backoff-max': '1m',
        'connect-timeout': '2s',
        'idle-timeout': '10m',
        'health-check': 'http:/healthz:204',
        'health-interval': '500ms',
        'health-timeout': '200ms',
      },
      true,
    );
    assert.deepEqual(settings, {
      balancing: {
        hashPolicies: new Map([
          ['api', { kind: 'source-ip' }],
          ['db', { kind: 'fixed', key: 'primary' }],
        ]),
        loadFactor: 1.5,
        maxStreamsPerEndpoint: 100,
        ejection: { consecutiveFailures: 5, baseBackoffMs: 500, maxBackoffMs: 60_000 },
      },
      connectTimeoutMs: 2000,
      idleTimeoutMs: 600_000,
      health: { check: { kind: 'http', path: '/healthz', expectedStatus: 204 }, intervalMs: 500, timeoutMs: 200 },
    });
  });

  it('has defaults: an idle timeout of an hour, no health checks', () => {
    const settings = parseTrafficFlags({}, false);
    assert.equal(settings.idleTimeoutMs, DEFAULT_IDLE_TIMEOUT_MS);
    assert.equal(settings.health, undefined);
    assert.equal(parseTrafficFlags({ 'idle-timeout': 'off' }, false).idleTimeoutMs, undefined);
    assert.equal(parseTrafficFlags({ 'health-check': 'tcp', 'health-interval': '300ms' }, true).health?.timeoutMs, 300, 'timeout at most the interval');
  });

  it('refuses a wrong value with a usage error naming its flag', () => {
    const cases: [Parameters<typeof parseTrafficFlags>[0], string][] = [
      [{ hash: ['api'] }, '--hash'],
      [{ hash: ['API=source-ip'] }, '--hash'],
      [{ hash: ['api=random'] }, '--hash api'],
      [{ hash: ['api=source-ip', 'api=fixed:x'] }, '--hash'],
      [{ 'balance-load-factor': '0.5' }, '--balance-load-factor'],
      [{ 'balance-load-factor': '1.2x' }, '--balance-load-factor'],
      [{ 'max-streams-per-endpoint': '0' }, '--max-streams-per-endpoint'],
      [{ 'eject-after': '-1' }, '--eject-after'],
      [{ 'eject-backoff': 'soon' }, '--eject-backoff'],
      [{ 'eject-backoff': '10s', 'eject-backoff-max': '5s' }, '--eject-backoff-max'],
      [{ 'connect-timeout': '0' }, '--connect-timeout'],
      [{ 'idle-timeout': 'never' }, '--idle-timeout'],
      [{ 'health-check': 'ping' }, '--health-check'],
      [{ 'health-interval': '1s' }, '--health-interval'],
      [{ 'health-check': 'tcp', 'health-interval': '1s', 'health-timeout': '2s' }, '--health-timeout'],
    ];
    for (const [values, flag] of cases) {
      assert.throws(
        () => parseTrafficFlags(values, true),
        (error: Error & { code?: string }) => error.code === 'TRELLIS_ERR_USAGE' && error.message.startsWith(flag),
        `${JSON.stringify(values)} should name ${flag}`,
      );
    }
    assert.throws(() => parseTrafficFlags({ 'health-check': 'tcp' }, false), /--health-check needs --app/);
  });
});
