import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseGatewayToken, parseJoinToken } from '../../proto/tokens.js';
import { runTrellis } from '../support/processes.js';
import { call, makeCsr, withTestControlPlane } from './helpers.js';

describe('trellis token create', () => {
  it('prints a gateway token with --gateway and --zone, a join token with --service', async () => {
    await withTestControlPlane({}, async (cp, dir) => {
      const common = ['--control-plane', cp.url, '--admin-token-file', cp.adminTokenPath];
      const gateway = await runTrellis(['token', 'create', '--gateway', 'ga', '--zone', 'a', '--ttl', '1h', ...common]);
      assert.equal(gateway.code, 0, gateway.stderr);
      const token = parseGatewayToken(gateway.stdout);
      assert.deepEqual([token.zone, token.gateway, token.caFingerprint], ['a', 'ga', cp.caFingerprint]);
      const joined = await call(cp, dir.path, 'POST', '/v1/join-gateway', { body: { token: gateway.stdout.trim(), csrPem: makeCsr().csrPem, zone: 'a', name: 'ga' } });
      assert.equal(joined.status, 200, joined.text);

      const service = await runTrellis(['token', 'create', '--service', 'db', ...common]);
      assert.equal(service.code, 0, service.stderr);
      assert.equal(parseJoinToken(service.stdout).service, 'db');
    });
  });

  it('exits 2 on --service with --gateway, --gateway without --zone, or --zone without --gateway', async () => {
    // Usage is checked before anything is dialled, so no control plane is needed.
    const common = ['--control-plane', 'https://127.0.0.1:1', '--admin-token-file', '/nonexistent'];
    for (const flags of [['--service', 'db', '--gateway', 'ga', '--zone', 'a'], ['--gateway', 'ga'], ['--service', 'db', '--zone', 'a'], []]) {
      const result = await runTrellis(['token', 'create', ...flags, ...common]);
      assert.equal(result.code, 2, `${flags.join(' ')}: ${result.stderr}`);
      assert.equal(result.stdout, '');
    }
  });
});
