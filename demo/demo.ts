// `npm run demo`: a control plane, a `web` service calling an `api` service with two
// instances, each next to its own sidecar, and traffic through the mesh, until Ctrl-C.
import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const trellisBin = fileURLToPath(new URL('../../bin/trellis.js', import.meta.url));
const children: ChildProcess[] = [];
const dataDir = mkdtempSync(join(tmpdir(), 'trellis-demo-'));

/** Starts a node program and resolves with the first stdout match of `pattern`. */
function start(label: string, args: string[], pattern: RegExp, env: NodeJS.ProcessEnv = {}): Promise<RegExpMatchArray> {
  const child = spawn(process.execPath, args, { env: { ...process.env, TRELLIS_LOG_LEVEL: 'warn', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  child.stderr?.setEncoding('utf8').on('data', (text: string) => process.stderr.write(`[${label}] ${text}`));
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout?.setEncoding('utf8').on('data', (text: string) => {
      out += text;
      const match = pattern.exec(out);
      if (match !== null) resolve(match);
    });
    child.once('exit', (code) => reject(new Error(`${label} exited (${code}) before it was ready`)));
  });
}

function run(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [trellisBin, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (text: string) => (out += text));
    child.once('exit', (code) => (code === 0 ? resolve(out.trim()) : reject(new Error(`trellis ${args.join(' ')} failed`))));
  });
}

/** How long a child may take to exit once told to, before it is killed. */
const CHILD_EXIT_TIMEOUT_MS = 10_000;

/**
 * Stops every child and waits until all have exited, then removes the data directory: a
 * control plane still shutting down writes its state there (removing it first failed with
 * ENOTEMPTY). On Ctrl-C the terminal has sent SIGINT to the children too; SIGTERM then
 * makes the sidecars stop at once instead of draining.
 */
async function cleanup(): Promise<void> {
  await Promise.all(children.map((child) => stopChild(child)));
  try {
    rmSync(dataDir, { recursive: true, force: true });
  } catch (error) {
    console.error(`could not remove ${dataDir}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), CHILD_EXIT_TIMEOUT_MS);
  await exited;
  clearTimeout(timer);
}

async function main(): Promise<void> {
  console.log('Starting the Trellis demo…');
  const [, cpUrl = ''] = await start('control-plane', [trellisBin, 'control-plane', '--data-dir', join(dataDir, 'cp'), '--listen', '127.0.0.1:0', '--lease-ttl', '3s'], /listening on (\S+)/);
  const admin = ['--control-plane', cpUrl, '--admin-token-file', join(dataDir, 'cp', 'admin.token')];
  const apiToken = await run(['token', 'create', '--service', 'api', '--ttl', '1h', ...admin]);
  const webToken = await run(['token', 'create', '--service', 'web', '--ttl', '1h', ...admin]);

  const sidecarAdmins: { name: string; url: string }[] = [];
  for (const name of ['api-1', 'api-2']) {
    const [, appAddress = ''] = await start(name, [fileURLToPath(new URL('./api-app.js', import.meta.url)), name], /listening on (\S+)/);
    const [, , adminUrl = ''] = await start(`sidecar ${name}`, [trellisBin, 'sidecar', '--service', 'api', '--token', apiToken, '--control-plane', cpUrl, '--listen', '127.0.0.1:0', '--app', appAddress, '--admin', '127.0.0.1:0'], /ready: links on (\S+)[\s\S]*admin on (\S+)/);
    sidecarAdmins.push({ name: `sidecar of ${name}`, url: adminUrl });
  }
  const [, , upstream = '', webAdmin = ''] = await start('sidecar web', [trellisBin, 'sidecar', '--service', 'web', '--token', webToken, '--control-plane', cpUrl, '--listen', '127.0.0.1:0', '--upstream', 'api=127.0.0.1:0', '--admin', '127.0.0.1:0'], /ready: links on (\S+)[\s\S]*upstream api on (\S+)[\s\S]*admin on (\S+)/);
  sidecarAdmins.push({ name: 'sidecar of web', url: webAdmin });
  const [, webAddress = ''] = await start('web', [fileURLToPath(new URL('./web-app.js', import.meta.url))], /listening on (\S+)/, { TRELLIS_UPSTREAM_API: upstream });

  console.log(`
Dashboard: ${cpUrl}/ui  (log in with the admin token: cat ${join(dataDir, 'cp', 'admin.token')})

The mesh is up:
  control plane      ${cpUrl}
  web app            curl http://${webAddress}/     (calls api through the mesh)
  api via the mesh   curl http://${upstream}/     (web's upstream port for api)
${sidecarAdmins.map((s) => `  ${s.name.padEnd(17)}  ${s.url}/metrics  ${s.url}/status`).join('\n')}

Try: trellis policy deny --from web --to api ${admin.join(' ')}
     (then 'trellis policy allow …' to let it through again)
Sending a request to web every 100 ms. Ctrl-C stops everything.
`);

  const perInstance = new Map<string, number>();
  let errors = 0;
  const traffic = setInterval(() => {
    fetch(`http://${webAddress}/`)
      .then(async (res) => {
        const body = (await res.json()) as { api?: { instance?: string } };
        const instance = body.api?.instance;
        if (instance === undefined) errors += 1;
        else perInstance.set(instance, (perInstance.get(instance) ?? 0) + 1);
      })
      .catch(() => (errors += 1));
  }, 100);
  const summary = setInterval(() => {
    const counts = [...perInstance.entries()].sort().map(([name, count]) => `${name}: ${count}`).join('  ');
    process.stdout.write(`requests per api endpoint  ${counts || '(none yet)'}  errors: ${errors}\n`);
  }, 2000);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  clearInterval(traffic);
  clearInterval(summary);
  console.log('\nStopping…');
}

main().then(
  async () => {
    await cleanup();
    console.log('Stopped.');
    process.exit(0);
  },
  async (error: Error) => {
    console.error(`demo failed: ${error.message}`);
    await cleanup();
    process.exit(1);
  },
);
