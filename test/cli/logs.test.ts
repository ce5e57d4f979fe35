// Logs: readable on a terminal, JSON lines otherwise or by flag; a refused stream logged at
// the caller with its reason code; the control plane's audit trail of operators' changes and
// refused joins.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { encodeJoinToken, parseJoinToken } from '../../proto/tokens.js';
import type { TestApp } from '../support/apps.js';
import { connect, startNamedApp } from '../support/apps.js';
import type { ControlPlaneProcess, SidecarProcess } from '../support/mesh.js';
import { createToken, eventually, removeDirs, setPolicy, startControlPlane, startSidecar } from '../support/mesh.js';
import { freeLoopbackPort } from '../support/ports.js';
import { runTrellis, spawnTrellis, trellisBin } from '../support/processes.js';

const ESC = '\u001b[';

/** The JSON log lines of a process's stderr (every line must be one). */
function jsonLines(stderr: string): Record<string, unknown>[] {
  return stderr.split('\n').filter((line) => line !== '').map((line) => JSON.parse(line) as Record<string, unknown>);
}

/** Starts a control plane with `args`, waits for it to listen, stops it and returns its stderr. */
async function controlPlaneStderr(args: string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'trellis-logs-'));
  try {
    const proc = spawnTrellis(['control-plane', '--data-dir', dir, '--listen', '127.0.0.1:0', ...args], { TRELLIS_LOG_LEVEL: 'info', ...env });
    await proc.waitForOutput(/admin token written to/);
    assert.equal(await proc.stop('SIGTERM'), 0);
    return proc.stderr();
  } finally {
    await removeDirs(dir);
  }
}

/** A pretty line: local time, level, logger name, message, then key=value fields. */
const PRETTY_LISTENING = /^\d\d:\d\d:\d\d\.\d{3} {2}INFO {3}control-plane {2}control plane listening {2}url=https:\/\/127\.0\.0\.1:\d+ /m;

describe('log formats', () => {
  it('writes JSON lines when stderr is not a terminal', async () => {
    const lines = jsonLines(await controlPlaneStderr([]));
    const listening = lines.find((line) => line['msg'] === 'control plane listening');
    assert.equal(listening?.['level'], 30);
    assert.equal(typeof listening?.['time'], 'number');
  });

  it('writes readable lines with --log-format pretty, without colour when stderr is not a terminal', async () => {
    const stderr = await controlPlaneStderr(['--log-format', 'pretty']);
    assert.match(stderr, PRETTY_LISTENING);
    assert.ok(!stderr.includes(ESC), stderr);
  });

  it('writes JSON with --log-format json, and refuses another format with a usage error', async () => {
    assert.ok(jsonLines(await controlPlaneStderr(['--log-format', 'json'])).length > 0);
    const { code, stderr } = await runTrellis(['sidecar', '--log-format', 'xml', '--service', 'a', '--control-plane', 'https://127.0.0.1:1', '--listen', '127.0.0.1:0']);
    assert.equal(code, 2);
    assert.ok(stderr.includes('[TRELLIS_ERR_USAGE]'), stderr);
  });

  // `script` runs the command on a real terminal (a pseudo-terminal); a Ctrl-C typed into
  // that terminal then stops it, as a person would.
  const onTerminal = async (env: NodeJS.ProcessEnv): Promise<string> => {
    const dir = mkdtempSync(join(tmpdir(), 'trellis-logs-tty-'));
    try {
      // exec: the shell `script` starts (dash, for one) would otherwise also take the Ctrl-C and exit 130.
      const line = `exec ${process.execPath} ${trellisBin} control-plane --data-dir ${dir} --listen 127.0.0.1:0`;
      const child = spawn('script', ['-qec', line, '/dev/null'], { env: { ...process.env, SHELL: '/bin/sh', TRELLIS_LOG_LEVEL: 'info', ...env } });
      const exited = once(child, 'close') as Promise<[number | null]>;
      let out = '';
      let interrupted = false;
      child.stdout.setEncoding('utf8').on('data', (text: string) => {
        out += text;
        if (!interrupted && out.includes('admin token written')) {
          interrupted = true;
          child.stdin.write('\u0003');
        }
      });
      const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
      const [code] = await exited;
      clearTimeout(timer);
      assert.equal(code, 0, out);
      return out;
    } finally {
      await removeDirs(dir);
    }
  };

  it('writes coloured readable lines on a terminal, and no colour with NO_COLOR', async () => {
    const coloured = await onTerminal({ NO_COLOR: '' });
    assert.ok(coloured.includes(`${ESC}32mINFO`), coloured);
    const plain = await onTerminal({ NO_COLOR: '1' });
    assert.ok(!plain.includes(ESC), plain);
    assert.match(plain.replaceAll('\r', ''), PRETTY_LISTENING);
  });
});

/** Opens a connection to a sidecar's upstream port, sends a line, and waits until the sidecar closes it. */
async function tryOnce(port: number): Promise<void> {
  const socket = await connect(port);
  socket.on('error', () => undefined);
  socket.end('hello\n');
  socket.resume();
  // Not events.once: a reset (the refusal itself) emits 'error' before 'close'.
  await new Promise((resolve) => socket.once('close', resolve));
}

describe('the caller sidecar logs a refused stream with its reason', () => {
  let cp: ControlPlaneProcess;
  const sidecars: SidecarProcess[] = [];
  let app: TestApp;
  after(async () => {
    for (const sidecar of sidecars) await sidecar.proc.stop();
    await app?.close();
    await cp?.proc.stop();
    await removeDirs(cp?.dataDir ?? '');
  });

  it('POLICY_DENIED and APP_UNREACHABLE reach the caller\'s log, with the destination service', async () => {
    cp = await startControlPlane();
    app = await startNamedApp('api');
    const closedPort = await freeLoopbackPort();
    sidecars.push(await startSidecar({ service: 'api', token: await createToken(cp, 'api'), cp, app: app.address }));
    sidecars.push(await startSidecar({ service: 'db', token: await createToken(cp, 'db'), cp, app: `127.0.0.1:${closedPort}` }));
    const web = await startSidecar({ service: 'web', token: await createToken(cp, 'web'), cp, upstreams: ['api', 'db'] });
    sidecars.push(web);
    await setPolicy(cp, ['deny', '--from', 'web', '--to', 'api']);

    const refusals = (service: string) =>
      jsonLines(web.proc.stderr()).filter((line) => line['msg'] === 'stream refused by the destination' && line['service'] === service);
    const apiPort = web.upstreams.get('api')?.port ?? 0;
    const dbPort = web.upstreams.get('db')?.port ?? 0;
    // The deny reaches api's sidecar through the control plane a moment later: try until it refuses.
    await eventually(async () => {
      await tryOnce(apiPort);
      return refusals('api').length > 0;
    }, 'a refusal of web -> api in the web sidecar\'s log');
    assert.equal(refusals('api')[0]?.['code'], 'POLICY_DENIED');
    assert.equal(refusals('api')[0]?.['level'], 40);

    await eventually(async () => {
      await tryOnce(dbPort);
      return refusals('db').length > 0;
    }, 'a refusal of web -> db in the web sidecar\'s log');
    assert.equal(refusals('db')[0]?.['code'], 'APP_UNREACHABLE');
  });
});

describe('the control plane\'s audit trail', () => {
  let cp: ControlPlaneProcess | undefined;
  after(async () => {
    await cp?.proc.stop();
    await removeDirs(cp?.dataDir ?? '');
  });

  it('logs token creation, policy changes and refused joins, never a token', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'trellis-audit-'));
    const proc = spawnTrellis(['control-plane', '--data-dir', dir, '--listen', '127.0.0.1:0'], { TRELLIS_LOG_LEVEL: 'info' });
    const [, url = ''] = await proc.waitForOutput(/listening on (https:\/\/\S+)/);
    cp = { proc, url, dataDir: dir, adminTokenFile: join(dir, 'admin.token') };
    await proc.waitForOutput(/admin token written to/);
    const token = await createToken(cp, 'api');
    await setPolicy(cp, ['deny', '--from', 'web', '--to', 'api']);
    await setPolicy(cp, ['remove', '--from', 'web', '--to', 'api']);
    await setPolicy(cp, ['default', 'deny']);
    // The real token's id with a forged secret: the control plane refuses the join.
    const forged = encodeJoinToken({ ...parseJoinToken(token), secret: 'A'.repeat(43) });
    const refused = await runTrellis(['sidecar', '--service', 'api', '--token', forged, '--control-plane', url, '--listen', '127.0.0.1:0']);
    assert.equal(refused.code, 1);
    assert.ok(refused.stderr.includes('[TRELLIS_ERR_TOKEN_UNKNOWN]'), refused.stderr);

    const audit = () => jsonLines(proc.stderr()).filter((line) => line['audit'] === true);
    await eventually(() => audit().some((line) => line['event'] === 'join.refused'), 'the refused join on the audit trail');
    const events = audit().map(({ event, service, from, to, action, code, kind }) => ({ event, service, from, to, action, code, kind }));
    assert.deepEqual(events, [
      { event: 'token.created', kind: 'join', service: 'api', from: undefined, to: undefined, action: undefined, code: undefined },
      { event: 'policy.rule.set', kind: undefined, service: undefined, from: 'web', to: 'api', action: 'deny', code: undefined },
      { event: 'policy.rule.removed', kind: undefined, service: undefined, from: 'web', to: 'api', action: undefined, code: undefined },
      { event: 'policy.default', kind: undefined, service: undefined, from: undefined, to: undefined, action: 'deny', code: undefined },
      { event: 'join.refused', kind: undefined, service: 'api', from: undefined, to: undefined, action: undefined, code: 'TRELLIS_ERR_TOKEN_UNKNOWN' },
    ]);
    assert.ok(audit().every((line) => typeof line['remoteAddress'] === 'string'));
    assert.ok(!proc.stderr().includes(token) && !proc.stderr().includes(forged), 'a join token in the logs');
  });
});
