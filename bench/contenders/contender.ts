/**
 * A contender is a way to carry a client's TCP connections to an app: directly, or through a
 * pair of proxies (a client side and a server side, two processes, mutual TLS between them).
 */
import type { ContenderId, WorkloadId } from '../results.js';
import type { SupervisedProcess } from '../supervisor.js';
import type { ProcessSupervisor } from '../supervisor.js';
import type { BenchPki } from '../certs.js';
import type { ToolPaths } from '../system.js';

/** A running proxy pair (or the direct path) in front of one app. */
export interface RunningContender {
  /** The loopback port the load generator connects to. */
  clientPort: number;
  /** The two proxy processes, or undefined for the direct path (which has none). */
  sides: { client: SupervisedProcess; server: SupervisedProcess } | undefined;
  /** The server side's TLS port (what the client side dials), or undefined for the direct path. */
  serverSidePort: number | undefined;
  /**
   * Set when the server side listens for WebSocket links (`wss://`): the HTTP path of the
   * upgrade. Its outer HTTPS asks for no client certificate; the link's TLS inside does.
   */
  serverSideWsPath?: string;
  /**
   * Proxy processes between the two sides that this pair uses (Trellis's gateways): their CPU
   * counts with the sides', and their warnings are observed like the sides'.
   */
  relays?: SupervisedProcess[];
  /** Stops both sides and waits for them to exit. */
  stop(): Promise<void>;
}

export interface Contender {
  readonly id: ContenderId;
  /** The workloads this contender runs (all when absent); the others get `skipReason` in their cells. */
  readonly workloads?: readonly WorkloadId[];
  readonly skipReason?: string;
  /** Starts a fresh pair whose server side forwards to the app listening on `appPort`. */
  start(appPort: number): Promise<RunningContender>;
  /** Stops what outlives one pair (Trellis's control plane). */
  close(): Promise<void>;
}

/** What every contender may need, built once per run. */
export interface ContenderDeps {
  supervisor: ProcessSupervisor;
  tools: ToolPaths;
  pki: BenchPki;
  /** A temporary directory of this run, for configurations and data directories. */
  workDir: string;
  /** The repository root, where `bin/trellis.js` lives. */
  repoRoot: string;
  /** Open files a proxy process may have (see `manyFilesLimit`). */
  openFilesLimit: number;
  /** `--workers` of the Trellis sidecars. @default 1 */
  sidecarWorkers?: number;
}

/** How long a proxy gets to start listening. */
export const PROXY_START_TIMEOUT_MS = 30_000;
