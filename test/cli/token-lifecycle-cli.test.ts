// The token lifecycle as operators meet it: a real `trellis control-plane` process, the real
// `trellis` CLI (token create --once, list, revoke) and real sidecars, gateways and `trellis
// run` reading their token with --token-file. Refusals are asserted by their codes.
import assert from 'node:assert/strict';
import { chmod, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ControlErrorCode } from '../../proto/control.js';
import { parseGatewayToken, parseJoinToken } from '../../proto/tokens.js';
import type { ControlPlaneProcess } from '../support/mesh.js';
import { removeDirs, startControlPlane } from '../support/mesh.js';
import { runTrellis, spawnTrellis } from '../support/processes.js';

const USAGE = 'TRELLIS_ERR_USAGE';

/** The code a failed `trellis` run printed last, as `[CODE]` at the end of its stderr. */
function exitCode(result: { stderr: string }): string | undefined {
  return /\[([A-Z0-9_]+)\]\s*$/.exec(result.stderr)?.[1];
}

describe('token lifecycle from the CLI', () => {
  let cp: ControlPlaneProcess;
  let files: string;

  before(async () => {
    cp = await startControlPlane();
    files = await mkdtemp(join(tmpdir(), 'trellis-token-files-'));
  });
  after(async () => {
    await cp?.proc.stop();
    await removeDirs(cp?.dataDir ?? '', files ?? '');
  });

  const admin = (): string[] => ['--control-plane', cp.url, '--admin-token-file', cp.adminTokenFile];
  const create = async (...flags: string[]): Promise<string> => {
    const result = await runTrellis(['token', 'create', ...flags, ...admin()]);
    assert.equal(result.code, 0, result.stderr);
    return result.stdout.trim();
  };
  let fileCount = 0;
  const tokenFile = async (token: string, mode = 0o600): Promise<string> => {
    const path = join(files, `token-${fileCount++}`);
    await writeFile(path, `${token}\n`, { mode });
    await chmod(path, mode);
    return path;
  };
  const sidecarArgs = (service: string, file: string): string[] => ['sidecar', '--service', service, '--token-file', file, '--control-plane', cp.url, '--listen', '127.0.0.1:0'];
  const gatewayArgs = (file: string): string[] => ['gateway', '--zone', 'east', '--token-file', file, '--control-plane', cp.url, '--listen', 'tls://127.0.0.1:0'];

  it('token create, list and revoke answer --help with their usage and examples', async () => {
    for (const verb of ['create', 'list', 'revoke']) {
      const help = await runTrellis(['token', verb, '--help']);
      assert.equal(help.code, 0, help.stderr);
      assert.ok(help.stdout.startsWith('Usage: trellis token create'), help.stdout);
      for (const example of ['trellis token create --service api --ttl 1h --once', 'trellis token list --control-plane', 'trellis token revoke ']) {
        assert.ok(help.stdout.includes(example), `${verb} --help shows "${example}"`);
      }
    }
  });

  it('token list shows an aligned table and --json; token revoke marks a token revoked', async () => {
    const once = await create('--service', 'db', '--once', '--ttl', '1h');
    const gateway = await create('--gateway', 'gw1', '--zone', 'east');
    const table = await runTrellis(['token', 'list', ...admin()]);
    assert.equal(table.code, 0, table.stderr);
    const lines = table.stdout.trimEnd().split('\n');
    const header = lines[0] ?? '';
    assert.deepEqual(header.split(/\s+/), ['ID', 'KIND', 'FOR', 'CREATED', 'EXPIRES', 'ONCE', 'USED', 'STATE']);
    const row = lines.find((line) => line.startsWith(parseJoinToken(once).id)) ?? '';
    const cells = row.split(/\s+/);
    assert.deepEqual([cells[1], cells[2], cells[5], cells[6], cells[7]], ['service', 'db', 'yes', '-', 'active']);
    // Aligned: every column starts where its header does.
    for (const name of ['KIND', 'FOR', 'CREATED', 'EXPIRES', 'ONCE', 'USED', 'STATE']) {
      const column = header.indexOf(name);
      for (const line of lines.slice(1)) assert.notEqual(line[column - 1], undefined, line);
      for (const line of lines.slice(1)) assert.equal(line.slice(column - 2, column), '  ', `${name} in "${line}"`);
    }
    const gatewayRow = lines.find((line) => line.startsWith(parseGatewayToken(gateway).id)) ?? '';
    assert.deepEqual(gatewayRow.split(/\s+/).slice(1, 3), ['gateway', 'east/gw1']);

    const revoked = await runTrellis(['token', 'revoke', parseGatewayToken(gateway).id, ...admin()]);
    assert.equal(revoked.code, 0, revoked.stderr);
    assert.equal(revoked.stdout, `revoked token ${parseGatewayToken(gateway).id} (gateway east/gw1)\n`);

    const json = await runTrellis(['token', 'list', '--json', ...admin()]);
    assert.equal(json.code, 0, json.stderr);
    const listed = JSON.parse(json.stdout) as Array<{ id: string; state: string; once: boolean; revokedAt?: number }>;
    const byId = new Map(listed.map((t) => [t.id, t]));
    assert.equal(byId.get(parseJoinToken(once).id)?.state, 'active');
    assert.equal(byId.get(parseJoinToken(once).id)?.once, true);
    assert.equal(byId.get(parseGatewayToken(gateway).id)?.state, 'revoked');
    assert.equal(typeof byId.get(parseGatewayToken(gateway).id)?.revokedAt, 'number');
    assert.equal(json.stdout.includes(parseJoinToken(once).secret), false);
  });

  it('token revoke: an unknown id is TRELLIS_ERR_NOT_FOUND, a malformed or missing id a usage error', async () => {
    const unknown = await runTrellis(['token', 'revoke', '0123456789abcdef', ...admin()]);
    assert.equal(unknown.code, 1, unknown.stderr);
    assert.equal(exitCode(unknown), ControlErrorCode.NOT_FOUND);
    for (const args of [['../x'], [], ['a', 'b']]) {
      const bad = await runTrellis(['token', 'revoke', ...args, ...admin()]);
      assert.equal(bad.code, 2, bad.stderr);
      assert.equal(exitCode(bad), USAGE);
    }
  });

  it('--token-file: refused when group or others can read it, when missing or empty, and together with --token', async () => {
    const token = await create('--service', 'db');
    const open = await tokenFile(token, 0o644);
    const groupOnly = await tokenFile(token, 0o640);
    const empty = await tokenFile('', 0o600);
    const good = await tokenFile(token);
    const runArgs = (file: string): string[] => ['run', '--service', 'db', '--token-file', file, '--control-plane', cp.url, '--', 'true'];
    const cases: string[][] = [
      sidecarArgs('db', open),
      sidecarArgs('db', groupOnly),
      sidecarArgs('db', empty),
      sidecarArgs('db', join(files, 'missing')),
      [...sidecarArgs('db', good), '--token', token],
      gatewayArgs(open),
      runArgs(open),
    ];
    for (const args of cases) {
      const result = await runTrellis(args);
      assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`);
      assert.equal(exitCode(result), USAGE, result.stderr);
      assert.equal(result.stdout, '');
    }
  });

  it('a --once token in a --token-file lets one sidecar join; the next is refused with TRELLIS_ERR_TOKEN_USED', async () => {
    const token = await create('--service', 'db', '--once');
    const file = await tokenFile(token);
    const first = spawnTrellis(sidecarArgs('db', file));
    try {
      await first.waitForOutput(/sidecar db ready/, 60_000);
      const second = await runTrellis(sidecarArgs('db', file));
      assert.equal(second.code, 1, second.stderr);
      assert.equal(exitCode(second), ControlErrorCode.TOKEN_USED);
    } finally {
      await first.stop();
    }
    const list = await runTrellis(['token', 'list', '--json', ...admin()]);
    const info = (JSON.parse(list.stdout) as Array<{ id: string; state: string }>).find((t) => t.id === parseJoinToken(token).id);
    assert.equal(info?.state, 'used');
  });

  it('gateway and run take --token-file too; a used gateway token is refused with TRELLIS_ERR_TOKEN_USED', async () => {
    const gatewayFile = await tokenFile(await create('--gateway', 'gw2', '--zone', 'east', '--once'));
    const gateway = spawnTrellis(gatewayArgs(gatewayFile));
    try {
      await gateway.waitForOutput(/links on tls:\/\//, 60_000);
      const again = await runTrellis(gatewayArgs(gatewayFile));
      assert.equal(again.code, 1, again.stderr);
      assert.equal(exitCode(again), ControlErrorCode.TOKEN_USED);
    } finally {
      await gateway.stop();
    }
    const run = await runTrellis(['run', '--service', 'web', '--token-file', await tokenFile(await create('--service', 'web')), '--control-plane', cp.url, '--', 'true']);
    assert.equal(run.code, 0, run.stderr);
  });

  it('misuse through the CLI: revoked, expired, wrong kind both ways, wrong service: each its own code', async () => {
    const revokedToken = await create('--service', 'db');
    const revoke = await runTrellis(['token', 'revoke', parseJoinToken(revokedToken).id, ...admin()]);
    assert.equal(revoke.code, 0, revoke.stderr);
    const expiredToken = await create('--service', 'db', '--ttl', '1s');
    const gatewayToken = await create('--gateway', 'gw3', '--zone', 'east');
    const serviceToken = await create('--service', 'db');
    // The token's own lifetime: wait until its expiry has passed on this clock.
    const expiresAt = parseJoinToken(expiredToken).expiresAt;
    while (Date.now() <= expiresAt) await new Promise((resolve) => setTimeout(resolve, expiresAt - Date.now() + 50));
    const cases: Array<{ args: string[]; code: string }> = [
      { args: sidecarArgs('db', await tokenFile(revokedToken)), code: ControlErrorCode.TOKEN_REVOKED },
      { args: sidecarArgs('db', await tokenFile(expiredToken)), code: ControlErrorCode.TOKEN_EXPIRED },
      { args: sidecarArgs('db', await tokenFile(gatewayToken)), code: ControlErrorCode.TOKEN_WRONG_KIND },
      { args: gatewayArgs(await tokenFile(serviceToken)), code: ControlErrorCode.TOKEN_WRONG_KIND },
      { args: sidecarArgs('web', await tokenFile(serviceToken)), code: ControlErrorCode.TOKEN_WRONG_SERVICE },
    ];
    for (const { args, code } of cases) {
      const result = await runTrellis(args);
      assert.equal(result.code, 1, `${args.join(' ')}: ${result.stderr}`);
      assert.equal(exitCode(result), code, result.stderr);
    }
  });
});
