/**
 * A one-member etcd for the control-plane workload's replicated variant: free loopback ports,
 * its own data directory under the run's work directory, stopped with the run.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { LOOPBACK, pickFreePort } from './net.js';
import type { ProcessSupervisor, SupervisedProcess } from './supervisor.js';

const ETCD_READY_TIMEOUT_MS = 30_000;

export interface BenchEtcd {
  process: SupervisedProcess;
  url: string;
  /** The 32-byte key (hex, mode 0600) every replica encrypts the CA key and admin token with. */
  encryptionKeyFile: string;
}

export async function startBenchEtcd(supervisor: ProcessSupervisor, etcdBinary: string, workDir: string): Promise<BenchEtcd> {
  const [clientPort, peerPort] = [await pickFreePort(), await pickFreePort()];
  const url = `http://${LOOPBACK}:${clientPort}`;
  const peerUrl = `http://${LOOPBACK}:${peerPort}`;
  const proc = supervisor.spawn('etcd', etcdBinary, [
    '--name=bench',
    `--data-dir=${join(workDir, 'etcd-data')}`,
    `--listen-client-urls=${url}`,
    `--advertise-client-urls=${url}`,
    `--listen-peer-urls=${peerUrl}`,
    `--initial-advertise-peer-urls=${peerUrl}`,
    `--initial-cluster=bench=${peerUrl}`,
    '--log-level=info',
  ]);
  // etcd 3.4 logs this once it serves clients.
  await proc.waitForOutput(/ready to serve client requests/, ETCD_READY_TIMEOUT_MS);
  const encryptionKeyFile = join(workDir, 'etcd.key');
  await writeFile(encryptionKeyFile, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
  return { process: proc, url, encryptionKeyFile };
}
