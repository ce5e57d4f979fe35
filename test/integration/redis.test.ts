// A real redis-server behind a sidecar, reached by an unmodified redis-cli through an upstream
// port, and by a redis-cli run under `trellis run` that finds the port in its environment.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { execFile, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import type { ControlPlaneProcess, SidecarProcess } from '../support/mesh.js';
import { createToken, removeDirs, startControlPlane, startSidecar } from '../support/mesh.js';
import { freeLoopbackPort } from '../support/ports.js';
import { runTrellis } from '../support/processes.js';

const redisMissing = spawnSync('redis-server', ['--version']).error !== undefined || spawnSync('redis-cli', ['--version']).error !== undefined;

/** Starts redis-server on loopback with no persistence; resolves once it accepts connections. */
async function startRedis(port: number): Promise<ChildProcess> {
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  await new Promise<void>((resolve, reject) => {
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      output += chunk;
      if (output.includes('Ready to accept connections')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`redis-server exited (${code}) before it was ready:\n${output}`)));
  });
  return child;
}

/** Runs redis-cli; with `stdin`, `-x` makes it the command's last argument (too large for argv). */
function redisCli(port: number, args: string[], stdin?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...(stdin === undefined ? [] : ['-x']), ...args], (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : -1, stdout, stderr });
    });
    child.stdin?.end(stdin);
  });
}

describe('redis through the mesh', { skip: redisMissing ? 'redis-server or redis-cli is not installed (scripts/test.sh installs them)' : false }, () => {
  let cp: ControlPlaneProcess;
  let redis: ChildProcess;
  let cacheSidecar: SidecarProcess;
  let client: SidecarProcess;
  let upstreamPort: number;

  before(async () => {
    cp = await startControlPlane();
    const redisPort = await freeLoopbackPort();
    redis = await startRedis(redisPort);
    cacheSidecar = await startSidecar({ service: 'cache', token: await createToken(cp, 'cache'), cp, app: `127.0.0.1:${redisPort}` });
    client = await startSidecar({ service: 'worker', token: await createToken(cp, 'worker'), cp, upstreams: ['cache'] });
    upstreamPort = client.upstreams.get('cache')?.port ?? 0;
  });

  after(async () => {
    await Promise.all([client?.proc.stop(), cacheSidecar?.proc.stop()]);
    await cp?.proc.stop();
    if (redis !== undefined && redis.exitCode === null) {
      redis.kill('SIGTERM');
      await once(redis, 'exit');
    }
    await removeDirs(cp?.dataDir ?? '');
  });

  it('redis-cli SET then GET through an upstream port', async () => {
    const set = await redisCli(upstreamPort, ['SET', 'greeting', 'hello mesh']);
    assert.equal(set.code, 0, set.stderr);
    assert.equal(set.stdout, 'OK\n');
    const get = await redisCli(upstreamPort, ['GET', 'greeting']);
    assert.equal(get.stdout, 'hello mesh\n');
    // A value larger than one stream window crosses intact.
    const big = 'x'.repeat(4 * 1024 * 1024);
    assert.equal((await redisCli(upstreamPort, ['SET', 'big'], big)).stdout, 'OK\n');
    assert.equal((await redisCli(upstreamPort, ['STRLEN', 'big'])).stdout, `${big.length}\n`);
  });

  it('redis-cli under trellis run finds the upstream in TRELLIS_UPSTREAM_CACHE', async () => {
    await redisCli(upstreamPort, ['SET', 'from-run', 'seen']);
    const script = 'redis-cli -h "${TRELLIS_UPSTREAM_CACHE%:*}" -p "${TRELLIS_UPSTREAM_CACHE##*:}" GET from-run';
    const result = await runTrellis(['run', '--service', 'worker', '--token', await createToken(cp, 'worker'), '--control-plane', cp.url, '--upstream', 'cache', '--', 'sh', '-c', script]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, 'seen\n');
  });
});
