// The network-namespace harness itself: hosts reach exactly the networks they are on, firewall
// rules do what they say, and nothing outlives a topology — not after destroy(), not after a
// failing test body, not after the process that made it dies.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import type { HostRef, Topology, TopologySpec } from '../support/netns.js';
import { createTopology, listHarnessNamespaces, removeLeftoverNamespaces, withTopology } from '../support/netns.js';

const PORT = 7000;
/** Long enough for a SYN/SYN-ACK over a bridge many times over; a dropped SYN never answers within it. */
const DIAL_TIMEOUT_MS = 1_500;
const netnsModule = fileURLToPath(new URL('../support/netns.js', import.meta.url));

const SPEC: TopologySpec = {
  networks: { cloudA: '10.71.1.0/24', cloudB: '10.71.2.0/24', wan: '10.71.100.0/24' },
  hosts: {
    a1: { cloudA: '10.71.1.11' },
    b1: { cloudB: '10.71.2.11' },
    ga: { cloudA: '10.71.1.2', wan: '10.71.100.2' },
    gb: { cloudB: '10.71.2.2', wan: '10.71.100.3' },
  },
};

/** Answers every connection with its host name, on all the host's addresses. */
const SERVER = `
const [name, port] = process.argv.slice(1);
require('node:net').createServer((socket) => { socket.on('error', () => {}); socket.end(name + '\\n'); })
  .listen(Number(port), '0.0.0.0', () => console.log('listening'));`;

/** Dials once and prints how it went as JSON: the reply, the error code, or that it timed out. */
const CLIENT = `
const [host, port, timeoutMs] = process.argv.slice(1);
const print = (result) => { console.log(JSON.stringify(result)); process.exit(0); };
const socket = require('node:net').connect({ host, port: Number(port) });
const timer = setTimeout(() => print({ outcome: 'timeout' }), Number(timeoutMs));
let reply = '';
socket.setEncoding('utf8').on('data', (chunk) => (reply += chunk));
socket.on('end', () => print({ outcome: 'connected', reply: reply.trim() }));
socket.on('error', (error) => { clearTimeout(timer); print({ outcome: 'error', code: error.code }); });`;

type DialResult = { outcome: 'connected'; reply: string } | { outcome: 'error'; code: string } | { outcome: 'timeout' };

/** Dials `address:PORT` from inside `from` and says what happened, within DIAL_TIMEOUT_MS. */
async function dial(topology: Topology, from: HostRef, address: string, port = PORT): Promise<DialResult> {
  const result = await topology.exec(from, process.execPath, ['-e', CLIENT, address, String(port), String(DIAL_TIMEOUT_MS)], { timeoutMs: DIAL_TIMEOUT_MS + 10_000 });
  assert.equal(result.exitCode, 0, `client failed: ${result.stderr}`);
  return JSON.parse(result.stdout) as DialResult;
}

/** Starts the name server in `host` and resolves once it listens; rejects if it exits or stays silent. */
async function startServer(topology: Topology, host: string, port = PORT): Promise<ChildProcess> {
  const child = topology.spawn(host, process.execPath, ['-e', SERVER, host, String(port)]);
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server in ${host} did not listen within 10 s: ${stderr}`)), 10_000);
    child.stdout?.setEncoding('utf8').once('data', () => {
      clearTimeout(timer);
      resolve();
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server in ${host} exited (${code}) before listening: ${stderr}`));
    });
  });
  return child;
}

/** Runs a node ESM script in the root namespace to completion (bounded) and returns its stdout. */
async function runNode(script: string): Promise<string> {
  const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], { timeout: 30_000 }).catch(
    (error: { stdout?: string }) => ({ stdout: error.stdout ?? '' }),
  );
  return stdout;
}

describe('netns harness', () => {
  let topology: Topology;

  before(async () => {
    topology = await createTopology(SPEC);
    for (const host of Object.keys(SPEC.hosts)) await startServer(topology, host);
  });

  after(async () => {
    await topology?.destroy();
  });

  it('names every namespace with the topology prefix and reports host addresses', () => {
    assert.match(topology.id, /^tr[0-9a-f]{6}$/);
    assert.deepEqual([...listHarnessNamespaces(topology.id)].sort(), [...topology.namespaces()].sort());
    assert.equal(topology.namespaces().length, 7);
    const ga = topology.host('ga');
    assert.equal(ga.netns, `${topology.id}-ga`);
    assert.equal(ga.address('wan'), '10.71.100.2');
    assert.throws(() => topology.host('a1').address('wan'), /not on network wan/);
  });

  it('connects two hosts on the same network', async () => {
    assert.deepEqual(await dial(topology, 'a1', topology.host('ga').address('cloudA')), { outcome: 'connected', reply: 'ga' });
    assert.deepEqual(await dial(topology, 'ga', topology.host('a1').address('cloudA')), { outcome: 'connected', reply: 'a1' });
  });

  it('gives a host no route to a network it is not on', async () => {
    assert.deepEqual(await dial(topology, 'a1', topology.host('b1').address('cloudB')), { outcome: 'error', code: 'ENETUNREACH' });
    // A gateway does not forward: a cloud host cannot use it to reach the wan.
    assert.deepEqual(await dial(topology, 'a1', topology.host('gb').address('wan')), { outcome: 'error', code: 'ENETUNREACH' });
  });

  it('connects the two gateways over the wan', async () => {
    assert.deepEqual(await dial(topology, 'ga', topology.host('gb').address('wan')), { outcome: 'connected', reply: 'gb' });
    assert.deepEqual(await dial(topology, 'gb', topology.host('ga').address('wan')), { outcome: 'connected', reply: 'ga' });
  });

  it('dropInbound stops new inbound connections but not those the host dials, nor loopback', async () => {
    const gbWan = topology.host('gb').address('wan');
    await topology.dropInbound('gb');
    try {
      assert.deepEqual(await dial(topology, 'ga', gbWan), { outcome: 'timeout' });
      assert.deepEqual(await dial(topology, 'gb', topology.host('ga').address('wan')), { outcome: 'connected', reply: 'ga' });
      assert.deepEqual(await dial(topology, 'gb', '127.0.0.1'), { outcome: 'connected', reply: 'gb' });
    } finally {
      await topology.allowInbound('gb');
    }
    assert.deepEqual(await dial(topology, 'ga', gbWan), { outcome: 'connected', reply: 'gb' });
  });

  it('dropInbound on one network leaves the others open; reject answers with a reset', async () => {
    await topology.dropInbound('ga', 'wan', { reject: true });
    try {
      assert.deepEqual(await dial(topology, 'gb', topology.host('ga').address('wan')), { outcome: 'error', code: 'ECONNREFUSED' });
      assert.deepEqual(await dial(topology, 'a1', topology.host('ga').address('cloudA')), { outcome: 'connected', reply: 'ga' });
    } finally {
      await topology.allowInbound('ga', 'wan', { reject: true });
    }
  });

  it('partition cuts two hosts apart both ways until heal', async () => {
    const gaCloud = topology.host('ga').address('cloudA');
    await topology.partition('a1', 'ga');
    try {
      assert.deepEqual(await dial(topology, 'a1', gaCloud), { outcome: 'timeout' });
      assert.deepEqual(await dial(topology, 'ga', topology.host('a1').address('cloudA')), { outcome: 'timeout' });
    } finally {
      await topology.heal('a1', 'ga');
    }
    assert.deepEqual(await dial(topology, 'a1', gaCloud), { outcome: 'connected', reply: 'ga' });
  });
});

describe('netns harness cleanup', () => {
  const SMALL: TopologySpec = { networks: { lan: '10.71.50.0/24' }, hosts: { h1: { lan: '10.71.50.1' }, h2: { lan: '10.71.50.2' } } };

  it('destroy kills spawned children and removes every namespace, idempotently', async () => {
    const topology = await createTopology(SMALL);
    const child = await startServer(topology, 'h1');
    const exited = once(child, 'exit');
    assert.equal(listHarnessNamespaces(topology.id).length, 3);
    await topology.destroy();
    assert.deepEqual(await exited, [null, 'SIGKILL']);
    assert.deepEqual(listHarnessNamespaces(topology.id), []);
    await topology.destroy();
    assert.throws(() => topology.spawn('h1', 'true'), /destroyed/);
  });

  it('withTopology destroys when the body throws and rejects with its error', async () => {
    let id = '';
    const boom = new Error('boom');
    await assert.rejects(
      withTopology(SMALL, (topology) => {
        id = topology.id;
        assert.equal(listHarnessNamespaces(id).length, 3);
        return Promise.reject(boom);
      }),
      (error) => error === boom,
    );
    assert.match(id, /^tr[0-9a-f]{6}$/);
    assert.deepEqual(listHarnessNamespaces(id), []);
  });

  it('removes namespaces at exit when the test never destroyed them', async () => {
    const id = await runNode(`import { createTopology } from ${JSON.stringify(netnsModule)};
      const topology = await createTopology(${JSON.stringify(SMALL)});
      console.log(topology.id);
      process.exit(0);`);
    assert.match(id.trim(), /^tr[0-9a-f]{6}$/);
    assert.deepEqual(listHarnessNamespaces(id.trim()), []);
  });

  it('removes what a killed run left, and only that', async () => {
    const live = await createTopology(SMALL);
    try {
      const id = (
        await runNode(`import { createTopology } from ${JSON.stringify(netnsModule)};
          const topology = await createTopology(${JSON.stringify(SMALL)});
          console.log(topology.id);
          process.kill(process.pid, 'SIGKILL');`)
      ).trim();
      assert.match(id, /^tr[0-9a-f]{6}$/);
      // SIGKILL runs no exit handler: the dead run's namespaces are still there.
      assert.equal(listHarnessNamespaces(id).length, 3);
      // Other dead runs' leftovers may go too; this run's must.
      const removed = removeLeftoverNamespaces().filter((name) => name.startsWith(`${id}-`));
      assert.deepEqual(removed.sort(), [`${id}-h1`, `${id}-h2`, `${id}-sw-lan`]);
      assert.deepEqual(listHarnessNamespaces(id), []);
      assert.equal(listHarnessNamespaces(live.id).length, 3, 'a live topology is not a leftover');
    } finally {
      await live.destroy();
    }
  });
});
