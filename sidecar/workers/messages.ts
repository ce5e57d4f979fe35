/**
 * The messages between a sidecar's primary process and its forwarding workers, over the
 * cluster IPC channel (structured clone: Maps and plain objects cross as they are). The primary
 * holds the identity and the control-plane session; a worker holds copies of what it needs.
 */
import type { MetricObjectWithValues, MetricValue } from 'prom-client';
import type { ConfigEntry } from '../config/mesh-config.js';
import type { DataPlaneSettings, DataPlaneStatus } from '../data-plane.js';
import type { CredentialsInit } from '../identity/credentials.js';

/** Which services' endpoints the primary holds in full (see `ConfigSubscriptions`). */
export interface HeldServices {
  /** The control plane pushes every endpoint (channel 1). */
  all: boolean;
  services: string[];
}

/** The primary's mesh configuration, as a worker replaces its copy with it. */
export interface ConfigCopy {
  version: number;
  entries: ConfigEntry[];
  held: HeldServices;
}

export type MetricsJson = MetricObjectWithValues<MetricValue<string>>[];

export type PrimaryMessage =
  | { type: 'start'; index: number; settings: DataPlaneSettings; credentials: CredentialsInit; config: ConfigCopy; entryOptions: unknown }
  | { type: 'credentials'; credentials: CredentialsInit }
  | ({ type: 'config' } & ConfigCopy)
  | { type: 'collect'; id: number }
  | { type: 'drain'; deadline: number }
  | { type: 'close' };

export type WorkerMessage =
  /** The worker listens for messages: the primary may send `start`. */
  | { type: 'hello' }
  | { type: 'ready'; linkUrl: string; upstreams: { service: string; address: string }[]; proxyAddress: string | undefined }
  | { type: 'failed'; code: string; message: string }
  /** A connection through the proxy port wants the endpoints of `service` (and marks it used). */
  | { type: 'want'; service: string }
  | { type: 'collected'; id: number; metrics: MetricsJson; status: DataPlaneStatus }
  | { type: 'drained'; complete: boolean };

/** What the primary learns of one worker when it collects. */
export interface WorkerSummary {
  index: number;
  pid: number;
  metrics: MetricsJson;
  status: DataPlaneStatus;
}

const PRIMARY_TYPES = new Set(['start', 'credentials', 'config', 'collect', 'drain', 'close']);
const WORKER_TYPES = new Set(['hello', 'ready', 'failed', 'want', 'collected', 'drained']);

/** Whether `message` is one of ours (the channel also carries Node's own cluster messages). */
export function isPrimaryMessage(message: unknown): message is PrimaryMessage {
  return typeof message === 'object' && message !== null && PRIMARY_TYPES.has(String((message as { type?: unknown }).type));
}

export function isWorkerMessage(message: unknown): message is WorkerMessage {
  return typeof message === 'object' && message !== null && WORKER_TYPES.has(String((message as { type?: unknown }).type));
}
