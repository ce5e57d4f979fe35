// The progress line of commands that talk to the control plane: on a terminal's stderr only,
// erased before the answer is printed, never in a pipe or a file.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ProgressLine } from '../../cli/progress.js';
import type { ControlPlaneProcess } from '../support/mesh.js';
import { removeDirs, startControlPlane } from '../support/mesh.js';
import { runTrellis, trellisBin } from '../support/processes.js';

const ERASE_LINE = '\r\u001b[2K';

/** Runs `trellis ARGS` on a pseudo-terminal (`script`), and returns everything the terminal got. */
async function onTerminal(args: string[], redirect = ''): Promise<string> {
  // `exec`, so that the shell script starts (dash in CI) does not also take signals.
  const line = `exec ${[process.execPath, trellisBin, ...args].join(' ')}${redirect}`;
  const child = spawn('script', ['-qec', line, '/dev/null'], { env: { ...process.env, TERM: 'xterm', NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (text: string) => (out += text));
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  await once(child, 'close');
  clearTimeout(timer);
  return out;
}

describe('progress line', () => {
  let cp: ControlPlaneProcess;
  let flags: string[];
  before(async () => {
    cp = await startControlPlane();
    flags = ['--control-plane', cp.url, '--admin-token-file', cp.adminTokenFile];
  });
  after(async () => {
    await cp?.proc.stop();
    await removeDirs(cp?.dataDir ?? '');
  });

  it('shows what a command waits for on a terminal, erased before its answer', async () => {
    const host = new URL(cp.url).host;
    const out = await onTerminal(['services', ...flags]);
    assert.ok(out.includes(`${ERASE_LINE}connecting to the control plane at ${host}…`), JSON.stringify(out));
    assert.ok(out.includes(`${ERASE_LINE}asking the control plane at ${host}…`), JSON.stringify(out));
    const answer = out.indexOf('no service is registered');
    assert.ok(answer > out.lastIndexOf(ERASE_LINE), `the answer is printed before the note is erased: ${JSON.stringify(out)}`);
    assert.ok(out.endsWith(`${ERASE_LINE}no service is registered (start a sidecar: trellis help sidecar)\r\n`), JSON.stringify(out));
  });

  it('says "checking the mesh" during trellis status, and the inner steps under it', async () => {
    const out = await onTerminal(['status', ...flags]);
    const notes = out.split(ERASE_LINE).slice(1).map((part) => part.split('\r\n')[0]);
    assert.equal(notes[0], 'checking the mesh…');
    assert.ok(notes.includes(`asking the control plane at ${new URL(cp.url).host}…`), JSON.stringify(notes));
    // Each inner step gives the line back to the one around it.
    assert.equal(notes.at(-2), 'checking the mesh…');
    assert.ok(out.lastIndexOf(ERASE_LINE) < out.indexOf('Control plane'), JSON.stringify(out));
  });

  it('never reaches a pipe or a file', async () => {
    const piped = await runTrellis(['status', '--json', ...flags]);
    assert.equal(piped.code, 0, piped.stdout);
    assert.equal(piped.stderr, '');
    assert.doesNotThrow(() => JSON.parse(piped.stdout));
    const services = await runTrellis(['services', ...flags]);
    assert.deepEqual([services.stderr, services.stdout], ['', 'no service is registered (start a sidecar: trellis help sidecar)\n']);
    // stdout into a file while stderr is a terminal: the note goes to the terminal only.
    const file = join(cp.dataDir, 'status.json');
    const out = await onTerminal(['status', '--json', ...flags], ` > ${file}`);
    assert.ok(out.includes('checking the mesh…'), JSON.stringify(out));
    const written = await readFile(file, 'utf8');
    assert.ok(!written.includes('\u001b'), written);
    assert.equal((JSON.parse(written) as { ok: boolean }).ok, true);
  });

  it('writes nothing when its stream is not a terminal, or is a dumb one', async () => {
    const written: string[] = [];
    const record = (isTTY: boolean) => ({ isTTY, write: (text: string) => written.push(text) });
    assert.equal(await new ProgressLine(record(false), {}).during('waiting…', () => Promise.resolve(7)), 7);
    await new ProgressLine(record(true), { TERM: 'dumb' }).during('waiting…', () => Promise.resolve());
    assert.deepEqual(written, []);
    const line = new ProgressLine(record(true), { TERM: 'xterm' });
    await assert.rejects(line.during('outer…', () => line.during('inner…', () => Promise.reject(new Error('refused')))), /refused/);
    assert.deepEqual(written, [`${ERASE_LINE}outer…`, `${ERASE_LINE}inner…`, `${ERASE_LINE}outer…`, ERASE_LINE]);
  });
});
