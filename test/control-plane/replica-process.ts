/**
 * One control-plane replica in its own process, for tests of several replicas sharing one
 * etcd: `replica-process <dataDir> <etcdUrl> <prefix>`. Prints `listening <url>` once it
 * serves, and closes on SIGTERM.
 */
import { once } from 'node:events';
import { pino } from 'pino';
import { startControlPlane } from '../../control-plane/index.js';
import { EtcdStore } from '../../control-plane/store/etcd-store.js';

const [dataDir, etcdUrl, prefix] = process.argv.slice(2);
if (dataDir === undefined || etcdUrl === undefined || prefix === undefined) throw new Error('usage: replica-process <dataDir> <etcdUrl> <prefix>');
const store = await EtcdStore.connect({ hosts: [etcdUrl], prefix });
const cp = await startControlPlane({ dataDir, listenHost: '127.0.0.1', listenPort: 0, logger: pino({ level: 'warn' }, pino.destination(2)), store });
process.stdout.write(`listening ${cp.url}\n`);
await once(process, 'SIGTERM');
await cp.close();
