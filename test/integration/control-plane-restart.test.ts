// The control plane is off the data path: traffic flows while it is down, and after a restart
// it has the same CA, tokens and policies, and the sidecars reconnect by themselves.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { parseAdminToken } from '../../proto/tokens.js';
import { certificateFingerprint } from '../../sidecar/control/api-client.js';
import type { TestApp } from '../support/apps.js';
import { connect, readAll, startEchoApp } from '../support/apps.js';
import type { ControlPlaneProcess, SidecarProcess } from '../support/mesh.js';
import { createToken, eventually, removeDirs, startControlPlane, startSidecar } from '../support/mesh.js';
import { runTrellis } from '../support/processes.js';

async function roundTrip(port: number, text: string): Promise<string> {
  const socket = await connect(port);
  const reply = readAll(socket);
  socket.end(text);
  return (await reply).toString();
}

async function connectedToControlPlane(sidecar: SidecarProcess): Promise<boolean> {
  const status = (await (await fetch(`${sidecar.adminUrl}/status`)).json()) as { controlPlaneConnected: boolean };
  return status.controlPlaneConnected;
}

describe('control plane restart', () => {
  let cp: ControlPlaneProcess;
  let app: TestApp;
  let echo: SidecarProcess;
  let client: SidecarProcess;
  const extra: SidecarProcess[] = [];

  before(async () => {
    cp = await startControlPlane();
    app = await startEchoApp();
    echo = await startSidecar({ service: 'echo', token: await createToken(cp, 'echo'), cp, app: app.address });
    client = await startSidecar({ service: 'client', token: await createToken(cp, 'client'), cp, upstreams: ['echo'] });
  });

  after(async () => {
    await Promise.all([client, echo, ...extra].map((s) => s?.proc.stop()));
    await cp?.proc.stop();
    await app?.close();
    await removeDirs(cp?.dataDir ?? '');
  });

  it('keeps CA, tokens and policies, keeps traffic flowing while down, and sidecars reconnect', async () => {
    const port = client.upstreams.get('echo')?.port ?? 0;
    const laterToken = await createToken(cp, 'echo');
    const policy = await runTrellis(['policy', 'deny', '--from', 'intruder', '--to', 'echo', '--control-plane', cp.url, '--admin-token-file', cp.adminTokenFile]);
    assert.equal(policy.code, 0, policy.stderr);
    const adminToken = await readFile(cp.adminTokenFile, 'utf8');
    const caPem = await readFile(`${cp.dataDir}/ca.crt`, 'utf8');
    assert.equal(certificateFingerprint(caPem), parseAdminToken(adminToken).caFingerprint);

    await cp.proc.stop('SIGKILL');
    assert.equal(await roundTrip(port, 'while the control plane is down'), 'while the control plane is down');
    await eventually(async () => !(await connectedToControlPlane(client)), 'the client sidecar to notice');
    assert.equal(await roundTrip(port, 'still flowing'), 'still flowing');

    const listen = new URL(cp.url).host;
    cp = { ...(await startControlPlane({ dataDir: cp.dataDir, listen })) };
    assert.equal(await readFile(cp.adminTokenFile, 'utf8'), adminToken, 'same admin token');
    assert.equal(await readFile(`${cp.dataDir}/ca.crt`, 'utf8'), caPem, 'same CA');

    await eventually(async () => (await connectedToControlPlane(client)) && (await connectedToControlPlane(echo)), 'sidecars to reconnect');
    assert.equal(await roundTrip(port, 'after the restart'), 'after the restart');

    const shown = await runTrellis(['policy', 'show', '--control-plane', cp.url, '--admin-token-file', cp.adminTokenFile]);
    assert.equal(shown.code, 0, shown.stderr);
    assert.deepEqual((JSON.parse(shown.stdout) as { rules: unknown[] }).rules, [{ from: 'intruder', to: 'echo', action: 'deny' }]);

    // A token made before the restart still joins.
    extra.push(await startSidecar({ service: 'echo', token: laterToken, cp, app: app.address }));
  });
});
