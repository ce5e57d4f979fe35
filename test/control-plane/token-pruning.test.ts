// Records of expired join tokens are pruned, by TokenService.pruneExpired and by the timer
// that calls it, on a real file store.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ApiError } from '../../control-plane/errors.js';
import { FileStore } from '../../control-plane/store/file-store.js';
import { startTokenPruner } from '../../control-plane/token-pruner.js';
import { TokenService } from '../../control-plane/token-service.js';
import { ControlErrorCode } from '../../proto/control.js';
import { parseJoinToken } from '../../proto/tokens.js';
import { silentLogger, tempDir } from './helpers.js';

const AUTHORITY = { fingerprint: 'ab'.repeat(32), trustDomain: 'trellis.local' };

async function withTokenService(run: (tokens: TokenService, clock: { nowMs: number }, store: FileStore) => Promise<void>): Promise<void> {
  const dir = await tempDir();
  const store = await FileStore.open(dir.path);
  const clock = { nowMs: 1_700_000_000_000 };
  try {
    await run(new TokenService(store, AUTHORITY, () => clock.nowMs), clock, store);
  } finally {
    await store.close();
    await dir.remove();
  }
}

describe('pruning expired join tokens', () => {
  it('pruneExpired deletes expired records (used and revoked ones too) and keeps live ones', async () => {
    await withTokenService(async (tokens, clock) => {
      const expiring = await tokens.createJoinToken('db', 60_000);
      const expiringOnce = await tokens.createJoinToken('db', 60_000, { once: true });
      await tokens.redeemJoinToken(expiringOnce.token, 'db', () => undefined);
      const expiringGateway = await tokens.createGatewayToken('a', 'ga', 60_000);
      await tokens.revokeToken(parseJoinToken(expiring.token).id);
      const live = await tokens.createJoinToken('db', 3_600_000);
      assert.equal(await tokens.pruneExpired(), 0);
      assert.equal((await tokens.listTokens()).length, 4);
      clock.nowMs += 60_000;
      assert.equal(await tokens.pruneExpired(), 3);
      assert.deepEqual((await tokens.listTokens()).map((t) => t.id), [parseJoinToken(live.token).id]);
      assert.equal(await tokens.pruneExpired(), 0);
      // Once its record is gone, an expired token is simply unknown.
      await assert.rejects(tokens.verifyJoinToken(expiring.token, 'db'), (err: unknown) => err instanceof ApiError && err.code === ControlErrorCode.TOKEN_UNKNOWN);
      await assert.rejects(tokens.verifyGatewayToken(expiringGateway.token, 'a', 'ga'), (err: unknown) => err instanceof ApiError && err.code === ControlErrorCode.TOKEN_UNKNOWN);
      await tokens.verifyJoinToken(live.token, 'db');
    });
  });

  it('the pruner runs pruneExpired on its interval until stopped', async () => {
    await withTokenService(async (tokens, clock, store) => {
      await tokens.createJoinToken('db', 1000);
      await tokens.createJoinToken('web', 1000);
      clock.nowMs += 1000;
      const rounds: number[] = [];
      let pruned!: () => void;
      const prunedTwo = new Promise<void>((resolve) => (pruned = resolve));
      const pruner = startTokenPruner(tokens, {
        logger: silentLogger,
        intervalMs: 20,
        onPruned: (count) => {
          rounds.push(count);
          if (rounds.length >= 2) pruned();
        },
      });
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([prunedTwo, new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`pruner rounds: ${rounds.join(',')}`)), 30_000)))]);
      } finally {
        clearTimeout(timer);
        pruner.stop();
      }
      assert.deepEqual(rounds.slice(0, 2), [2, 0]);
      assert.deepEqual(await store.list('tokens/join/'), []);
    });
  });
});
