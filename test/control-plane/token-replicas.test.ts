// Single-use tokens across two control-plane processes sharing one real etcd: joins racing on
// both replicas with one token, and exactly one of them gets a certificate.
import assert from 'node:assert/strict';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { ControlErrorCode } from '../../proto/control.js';
import { parseJoinToken } from '../../proto/tokens.js';
import type { TestEtcd } from '../support/etcd.js';
import { startEtcd } from '../support/etcd.js';
import type { Answer } from './helpers.js';
import { assertError, call, makeCsr, tempDir } from './helpers.js';

const REPLICA_SCRIPT = fileURLToPath(new URL('./replica-process.js', import.meta.url));
// Each round costs a replica at most JOINS_PER_REPLICA failed joins from 127.0.0.1: the
// total stays under the rate limit's burst (JOIN_FAILURE_BURST).
const ROUNDS = 6;
const JOINS_PER_REPLICA = 3;

interface Replica {
  child: ChildProcessWithoutNullStreams;
  cp: { url: string; trustDomain: string };
}

async function startReplica(dataDir: string, etcdUrl: string, prefix: string): Promise<Replica> {
  const child = spawn(process.execPath, [REPLICA_SCRIPT, dataDir, etcdUrl, prefix]);
  let out = '';
  let err = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`replica did not start within 60 s:\n${err}`)), 60_000);
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
      const match = /listening (https:\/\/\S+)/.exec(out);
      if (match?.[1] !== undefined) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`replica exited (${code}) before listening:\n${err}`));
    });
  });
  return { child, cp: { url, trustDomain: 'trellis.local' } };
}

async function stopReplica(replica: Replica | undefined): Promise<void> {
  if (replica === undefined || replica.child.exitCode !== null || replica.child.signalCode !== null) return;
  const exited = once(replica.child, 'exit');
  replica.child.kill('SIGTERM');
  await exited;
}

describe('single-use tokens on two control-plane replicas sharing etcd', () => {
  let etcd: TestEtcd | undefined;
  let dir: Awaited<ReturnType<typeof tempDir>> | undefined;
  const replicas: Replica[] = [];

  before(async () => {
    etcd = await startEtcd();
    dir = await tempDir();
    const prefix = `/trellis-tokens-${randomBytes(6).toString('hex')}/`;
    // One after the other: the first creates the CA and admin token in the shared data
    // directory, the second loads them.
    replicas.push(await startReplica(dir.path, etcd.url, prefix));
    replicas.push(await startReplica(dir.path, etcd.url, prefix));
  });
  after(async () => {
    await Promise.all(replicas.map((replica) => stopReplica(replica)));
    await dir?.remove();
    await etcd?.stop();
  });

  it('joins racing on both replicas with one --once token: exactly one succeeds, the rest get TRELLIS_ERR_TOKEN_USED', async () => {
    assert.ok(dir !== undefined);
    const dataDir = dir.path;
    const [first, second] = replicas as [Replica, Replica];
    const adminToken = (await readFile(join(dataDir, 'admin.token'), 'utf8')).trim();
    const csrs = Array.from({ length: 2 * JOINS_PER_REPLICA }, () => makeCsr().csrPem);
    for (let round = 0; round < ROUNDS; round++) {
      // Issued on one replica, redeemed on both: the token lives in the shared store.
      const created = await call(first.cp, dataDir, 'POST', '/v1/tokens', { body: { service: 'db', ttlSeconds: 600, once: true }, token: adminToken });
      assert.equal(created.status, 201, created.text);
      const token = (created.json as { token: string }).token;
      const answers: Answer[] = await Promise.all(
        csrs.map((csrPem, i) => call(i % 2 === 0 ? first.cp : second.cp, dataDir, 'POST', '/v1/join', { body: { token, csrPem, service: 'db' } })),
      );
      const ok = answers.filter((a) => a.status === 200);
      assert.equal(ok.length, 1, `round ${round}: ${answers.map((a) => a.text.slice(0, 120)).join('\n')}`);
      for (const refused of answers.filter((a) => a.status !== 200)) assertError(refused, 401, ControlErrorCode.TOKEN_USED);
      // Both replicas see it used, and list it so.
      const listed = await call(second.cp, dataDir, 'GET', '/v1/tokens', { token: adminToken });
      const info = (listed.json as { tokens: Array<{ id: string; usedAt?: number }> }).tokens.find((t) => t.id === parseJoinToken(token).id);
      assert.equal(typeof info?.usedAt, 'number', listed.text);
    }
  });

  it('a token revoked on one replica is refused on the other', async () => {
    assert.ok(dir !== undefined);
    const dataDir = dir.path;
    const [first, second] = replicas as [Replica, Replica];
    const adminToken = (await readFile(join(dataDir, 'admin.token'), 'utf8')).trim();
    const created = await call(second.cp, dataDir, 'POST', '/v1/tokens', { body: { service: 'api', ttlSeconds: 600 }, token: adminToken });
    const token = (created.json as { token: string }).token;
    const revoked = await call(first.cp, dataDir, 'POST', '/v1/tokens/revoke', { body: { id: parseJoinToken(token).id }, token: adminToken });
    assert.equal(revoked.status, 200, revoked.text);
    assertError(await call(second.cp, dataDir, 'POST', '/v1/join', { body: { token, csrPem: makeCsr().csrPem, service: 'api' } }), 401, ControlErrorCode.TOKEN_REVOKED);
  });
});
