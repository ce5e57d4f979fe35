// The entry of one forwarding worker process of `trellis sidecar --workers N`, forked by the
// sidecar's primary: V8 is tuned before the forwarding code loads (cli/gc-tuning.ts says why),
// then the worker runs (cli/forwarding-worker-process.ts).
import { tuneGarbageCollectorForForwarding } from './gc-tuning.js';

tuneGarbageCollectorForForwarding();
await import('./forwarding-worker-process.js');
