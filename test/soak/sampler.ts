// One sample of every process of a soak mesh: RSS, open fds and CPU time from /proc; heap, event
// loop delay, streams and links from a sidecar's or gateway's /metrics; the certificate's expiry
// from its /status (a change is a renewal).
import { sumMetric } from '../support/clouds.js';
import type { ChaosMesh, Role } from '../chaos/mesh.js';
import { procStats } from '../chaos/mesh.js';

/** The series the soak watches, in the units plotted and fitted. */
export const SERIES = ['rssMiB', 'heapMiB', 'fds', 'loopDelayP99Ms', 'streams'] as const;
export type SeriesName = (typeof SERIES)[number];

export const SERIES_LABELS: Readonly<Record<SeriesName, string>> = {
  rssMiB: 'RSS (MiB)',
  heapMiB: 'V8 heap used (MiB)',
  fds: 'open file descriptors',
  loopDelayP99Ms: 'event-loop delay p99 (ms)',
  streams: 'streams + tunnels active',
};

export interface Sample {
  readonly role: Role;
  readonly pid: number;
  /** Minutes since the start of the run. */
  readonly minutes: number;
  readonly cpuSeconds: number;
  readonly values: Partial<Record<SeriesName, number>>;
  readonly certExpiresAt?: string;
}

const MIB = 1024 * 1024;

/** Samples one role; undefined if its process is gone (between a kill and its restart). */
export async function sampleRole(mesh: ChaosMesh, role: Role, minutes: number): Promise<Sample | undefined> {
  const proc = mesh.process(role);
  if (!proc.running) return undefined;
  const stats = procStats(proc.pid);
  if (stats === undefined) return undefined;
  const values: Partial<Record<SeriesName, number>> = { rssMiB: stats.rssBytes / MIB, fds: stats.fds };
  let certExpiresAt: string | undefined;
  if (role !== 'cp') {
    const [metrics, status] = await Promise.all([mesh.adminPage(role, '/metrics'), mesh.adminPage(role, '/status')]);
    if (metrics !== undefined) {
      values.heapMiB = sumMetric(metrics, 'trellis_sidecar_process_nodejs_heap_size_used_bytes') / MIB;
      values.loopDelayP99Ms = sumMetric(metrics, 'trellis_sidecar_process_nodejs_eventloop_lag_p99_seconds') * 1000;
      values.streams = sumMetric(metrics, 'trellis_sidecar_streams_active') + sumMetric(metrics, 'trellis_tunnels_active');
    }
    if (status !== undefined) certExpiresAt = (JSON.parse(status) as { certExpiresAt?: string }).certExpiresAt;
  }
  return { role, pid: proc.pid, minutes, cpuSeconds: stats.cpuSeconds, values, certExpiresAt };
}
