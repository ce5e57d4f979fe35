// A real tinyproxy (the Debian package) inside a network-namespace host, as the HTTP CONNECT
// egress proxy of a gateway that has no other way out (test/support/tinyproxy.ts is the
// root-namespace, loopback variant).
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NsProcess } from './clouds.js';
import type { Topology } from './netns.js';

export interface NsTinyproxy {
  readonly url: string;
  /** What tinyproxy logged so far (LogLevel Info: one line per request, CONNECT lines among them). */
  log(): string;
  stop(): Promise<void>;
}

/** Starts tinyproxy in `host` on `address:port`, allowing clients of 10.0.0.0/8, and resolves once it accepts connections. */
export async function startNsTinyproxy(topology: Topology, host: string, address: string, port: number): Promise<NsTinyproxy> {
  const dir = await mkdtemp(join(tmpdir(), 'trellis-ns-tinyproxy-'));
  const config = [`Port ${port}`, `Listen ${address}`, 'Timeout 600', 'Allow 10.0.0.0/8', 'MaxClients 64', 'LogLevel Info'];
  const configPath = join(dir, 'tinyproxy.conf');
  await writeFile(configPath, `${config.join('\n')}\n`);
  const proc = new NsProcess(topology.spawn(host, 'tinyproxy', ['-d', '-c', configPath]), host, 'tinyproxy');
  const log = (): string => proc.stdout() + proc.stderr();
  const stop = async (): Promise<void> => {
    await proc.kill();
    await rm(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 10_000;
  while (!log().includes('Accepting connections')) {
    if (!proc.running || Date.now() > deadline) {
      await stop();
      throw new Error(`tinyproxy in ${host} did not start:\n${log()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return { url: `http://${address}:${port}`, log, stop };
}
