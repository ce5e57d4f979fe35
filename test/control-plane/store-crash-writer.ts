/**
 * The writer that file-store.test.ts kills with SIGKILL: opens the FileStore in the data
 * directory given as its argument and commits transactions in a loop, printing `ack
 * <revision> <counter>` once each is acknowledged (durable). Each transaction bumps `counter`
 * and rewrites a large `mirror` of it, so that a torn or mixed state would show. An optional
 * second argument is the journal size at which the store compacts.
 */
import { FileStore } from '../../control-plane/store/file-store.js';

const BLOB = 'x'.repeat(256 * 1024);
/** Transactions committed together, so that coalesced writes are killed too. */
const BURST = 4;

const [dataDir, compactBytes] = process.argv.slice(2);
if (dataDir === undefined) throw new Error('usage: store-crash-writer <dataDir> [compactJournalBytes]');
const store = await FileStore.open(dataDir, compactBytes === undefined ? {} : { compactJournalBytes: Number(compactBytes) });
let counter = Number((await store.get('counter')) ?? 0);
for (;;) {
  const burst: Array<Promise<void>> = [];
  for (let i = 0; i < BURST; i++) {
    const n = ++counter;
    burst.push(
      store
        .transaction([
          { type: 'put', key: 'counter', value: n },
          { type: 'put', key: 'mirror', value: { n, blob: BLOB } },
        ])
        .then(({ revision }) => {
          // Writes to a pipe are synchronous on Linux: once this returns, the parent has it.
          process.stdout.write(`ack ${revision} ${n}\n`);
        }),
    );
  }
  await Promise.all(burst);
}
