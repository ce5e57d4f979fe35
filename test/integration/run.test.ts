// `trellis run` through real processes: Python programs that reach a service through their
// upstream variable and through the proxy variables, with stdout, exit codes and signals checked.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { HttpTestApp } from '../support/http-app.js';
import { startHttpApp } from '../support/http-app.js';
import type { ControlPlaneProcess, SidecarProcess } from '../support/mesh.js';
import { createToken, removeDirs, startControlPlane, startSidecar } from '../support/mesh.js';
import { freeLoopbackPort } from '../support/ports.js';
import { runTrellis, spawnTrellis } from '../support/processes.js';

const PROGRAMS = {
  /** Calls api through its upstream port; exits with the code given as its argument. */
  'via_upstream.py': `
import os, sys, urllib.request
address = os.environ["TRELLIS_UPSTREAM_API"]
with urllib.request.urlopen(f"http://{address}/via-upstream", timeout=20) as response:
    print(response.status, response.read().decode())
sys.exit(int(sys.argv[1]))
`,
  /** Calls api.mesh as a name, through the proxy variables urllib honours; a name outside the mesh gets 403. */
  'via_proxy.py': `
import sys, urllib.error, urllib.request
print(urllib.request.urlopen("http://api.mesh/via-proxy", timeout=20).read().decode())
try:
    urllib.request.urlopen("http://example.com/", timeout=20)
except urllib.error.HTTPError as error:
    print(error.code, error.read().decode().strip())
sys.exit(5)
`,
  /** Prints the variables a run sets, one per line. */
  'print_env.py': `
import os
for name in ["ALL_PROXY", "all_proxy", "HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy", "TRELLIS_UPSTREAM_API", "TRELLIS_UPSTREAM_USER_DB", "TRELLIS_JOIN_TOKEN"]:
    print(f"{name}={os.environ.get(name, '<unset>')}")
`,
  /** Waits for a signal, says which, and exits 7. */
  'wait_for_signal.py': `
import signal, sys
def stop(number, frame):
    print("got", signal.Signals(number).name, flush=True)
    sys.exit(7)
for name in ("SIGINT", "SIGTERM", "SIGHUP"):
    signal.signal(getattr(signal, name), stop)
print("waiting", flush=True)
while True:
    signal.pause()
`,
};

// Each case runs its own `trellis run` processes against the shared control plane: two cases at a time.
describe('trellis run', { concurrency: 2 }, () => {
  let cp: ControlPlaneProcess;
  let api: HttpTestApp;
  let apiSidecar: SidecarProcess;
  let dir: string;
  let token: string;

  /** `trellis run --service web ... -- CMD...` with the given extra flags. */
  function runArgs(flags: string[], command: string[]): string[] {
    return ['run', '--service', 'web', '--token', token, '--control-plane', cp.url, ...flags, '--', ...command];
  }

  before(async () => {
    [cp, api] = await Promise.all([startControlPlane(), startHttpApp('api')]);
    apiSidecar = await startSidecar({ service: 'api', token: await createToken(cp, 'api'), cp, app: api.address });
    token = await createToken(cp, 'web');
    dir = await mkdtemp(join(tmpdir(), 'trellis-run-'));
    for (const [name, source] of Object.entries(PROGRAMS)) await writeFile(join(dir, name), source);
  });

  after(async () => {
    await apiSidecar?.proc.stop();
    await cp?.proc.stop();
    await api?.close();
    await removeDirs(cp?.dataDir ?? '', dir ?? '');
  });

  it('runs a program that reaches its upstream; stdout is the program\'s alone and the exit code is its own', async () => {
    // Debug logs make the sidecar as talkative as it gets: none of it may reach stdout.
    const [ok, failed] = await Promise.all([
      runTrellis(runArgs(['--upstream', 'api'], ['python3', join(dir, 'via_upstream.py'), '0']), { TRELLIS_LOG_LEVEL: 'debug' }),
      runTrellis(runArgs(['--upstream', 'api'], ['python3', join(dir, 'via_upstream.py'), '3'])),
    ]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /^200 api GET \/via-upstream host=127\.0\.0\.1:\d+ connection=close body=\n$/);
    assert.match(ok.stderr, /"msg":"sidecar ready; starting the command"/, 'the logs went to stderr');
    assert.equal(failed.code, 3);
    assert.match(failed.stdout, /^200 api GET \/via-upstream /);
  });

  it('runs a program that reaches http://api.mesh/ through the proxy variables; other names get 403', async () => {
    const result = await runTrellis(runArgs([], ['python3', join(dir, 'via_proxy.py')]));
    assert.equal(result.code, 5, result.stderr);
    assert.equal(
      result.stdout,
      'api GET /via-proxy host=api.mesh connection=close body=\n' +
        `403 "example.com" is not a mesh name: this proxy reaches only <service>.mesh (service: lowercase letters, digits and inner '-')\n`,
    );
  });

  it('sets the upstream and proxy variables, keeps NO_PROXY entries, and withholds the join token', async () => {
    const result = await runTrellis(runArgs(['--upstream', 'api', '--upstream', 'user-db=127.0.0.1:0'], ['python3', join(dir, 'print_env.py')]), {
      NO_PROXY: 'internal.example',
      TRELLIS_JOIN_TOKEN: 'not-for-the-command',
    });
    assert.equal(result.code, 0, result.stderr);
    const env = new Map(result.stdout.trim().split('\n').map((line) => line.split(/=(.*)/s).slice(0, 2) as [string, string]));
    const proxy = /^socks5h:\/\/(127\.0\.0\.1:\d+)$/.exec(env.get('ALL_PROXY') ?? '')?.[1];
    assert.ok(proxy !== undefined, `ALL_PROXY=${env.get('ALL_PROXY')}`);
    assert.equal(env.get('all_proxy'), `socks5h://${proxy}`);
    for (const name of ['HTTP_PROXY', 'http_proxy', 'HTTPS_PROXY', 'https_proxy']) assert.equal(env.get(name), `http://${proxy}`, name);
    assert.equal(env.get('NO_PROXY'), 'internal.example,localhost,127.0.0.1,::1');
    assert.equal(env.get('no_proxy'), env.get('NO_PROXY'));
    assert.match(env.get('TRELLIS_UPSTREAM_API') ?? '', /^127\.0\.0\.1:\d+$/);
    assert.match(env.get('TRELLIS_UPSTREAM_USER_DB') ?? '', /^127\.0\.0\.1:\d+$/);
    assert.equal(env.get('TRELLIS_JOIN_TOKEN'), '<unset>');
  });

  it('passes SIGTERM, SIGHUP and SIGINT on to the program and exits with its status', async () => {
    // One run per signal, at once.
    await Promise.all(
      (['SIGTERM', 'SIGHUP', 'SIGINT'] as const).map(async (signal) => {
        const run = spawnTrellis(runArgs([], ['python3', join(dir, 'wait_for_signal.py')]));
        await run.waitForOutput(/waiting\n/);
        run.child.kill(signal);
        assert.equal(await run.exited(), 7, `${signal}: ${run.stderr()}`);
        assert.equal(run.stdout(), `waiting\ngot ${signal}\n`);
      }),
    );
  });

  it('exits 128 + the signal number when a signal kills the program', async () => {
    const [killed, terminated] = await Promise.all([runTrellis(runArgs([], ['sh', '-c', 'kill -KILL $$'])), runTrellis(runArgs([], ['sh', '-c', 'kill -TERM $$']))]);
    assert.equal(killed.code, 137);
    assert.equal(terminated.code, 143);
  });

  it('says in one line on stderr when the command does not exist, and exits 127', async () => {
    const result = await runTrellis(runArgs([], ['trellis-no-such-command', '--flag']), { TRELLIS_LOG_LEVEL: 'warn' });
    assert.equal(result.code, 127);
    assert.equal(result.stdout, '');
    assert.equal(result.stderr, 'trellis: cannot run "trellis-no-such-command": command not found [ENOENT]\n');
  });

  it('writes the sidecar logs to --log-file, leaving stderr to the program', async () => {
    const logFile = join(dir, 'sidecar.log');
    const result = await runTrellis(runArgs(['--log-file', logFile, '--upstream', 'api'], ['python3', join(dir, 'via_upstream.py'), '0']), { TRELLIS_LOG_LEVEL: 'info' });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stderr, '');
    assert.match(await readFile(logFile, 'utf8'), /"msg":"sidecar ready; starting the command"/);
  });

  it('serves callers of its service from the program at --app-port, and stops it with SIGTERM', async () => {
    const appPort = await freeLoopbackPort();
    const files = spawnTrellis(
      ['run', '--service', 'files', '--token', await createToken(cp, 'files'), '--control-plane', cp.url, '--app-port', String(appPort), '--'].concat(
        ['python3', '-u', '-m', 'http.server', String(appPort), '--bind', '127.0.0.1', '--directory', dir],
      ),
    );
    let caller: SidecarProcess | undefined;
    try {
      // The program starts once the sidecar is registered; it says when it listens.
      await files.waitForOutput(/Serving HTTP on 127\.0\.0\.1 port \d+/);
      caller = await startSidecar({ service: 'browser', token: await createToken(cp, 'browser'), cp, upstreams: ['files'] });
      const port = caller.upstreams.get('files')?.port ?? 0;
      const response = await fetch(`http://127.0.0.1:${port}/print_env.py`);
      assert.equal(response.status, 200);
      assert.equal(await response.text(), PROGRAMS['print_env.py']);
    } finally {
      await caller?.proc.stop();
    }
    assert.equal(await files.stop('SIGTERM'), 128 + 15, 'python3 -m http.server dies of SIGTERM');
  });

  it('refuses a call without a command, naming what is missing', async () => {
    const result = await runTrellis(['run', '--service', 'web', '--token', token, '--control-plane', cp.url]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /missing the command to run: trellis run \[flags\] -- CMD/);
  });
});
