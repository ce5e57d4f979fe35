// Runs chaos scenarios against one mesh: traffic and faults together, then every stream judged
// against the server's records, and the mesh checked to serve again before the next scenario.
import type { JudgedStream, SidecarKill, StreamTally } from './accounting.js';
import { isAcceptable, isKnownLimit, judgeStreams, recoveryTimesMs, tally } from './accounting.js';
import type { FaultEvent } from './faults.js';
import { delay } from './faults.js';
import type { ChaosMesh, EchoService } from './mesh.js';
import type { Scenario } from './scenarios.js';
import type { ClientRecord } from './traffic.js';

/** How long the server side may take, after the traffic ends, to be told of every stream's end. */
const SETTLE_MS = 20_000;

export interface ScenarioResult {
  readonly name: string;
  readonly title: string;
  readonly faults: readonly FaultEvent[];
  readonly tally: StreamTally;
  /** Per fault, from its end to the end of the last failed short connection. */
  readonly recoveryMs: readonly number[];
  readonly notes: readonly string[];
  /** Broken promises: silent loss, one-sided resets, hangs, the scenario's own. Empty when it passed. */
  readonly problems: readonly string[];
  readonly wallMs: number;
}

export async function runScenario(mesh: ChaosMesh, scenario: Scenario, quick: boolean): Promise<ScenarioResult> {
  const startedAt = Date.now();
  const durationMs = scenario.durationMs(quick);
  const specs = scenario.traffic(mesh);
  const traffic = specs.map((spec) => mesh.startTraffic(spec.service, { ...spec.plan, durationMs }));
  const injected = await scenario.inject({ mesh, quick, durationMs });
  // The idle streams finish only after the duration, and a bulk stream may run up to its own bound.
  await Promise.all(traffic.map((proc) => proc.waitForOutput(/"event":"done"/, durationMs + 120_000)));
  const judged = await settle(
    mesh,
    specs.map((spec, index) => ({
      clients: traffic[index]?.lines<ClientRecord & { event: string }>().filter((line): line is ClientRecord => line.event === 'stream') ?? [],
      kills: ownSidecarKills(injected.faults, spec.service),
    })),
  );
  const streamTally = tally(judged);
  const problems = [...injected.problems];
  const notes = [...injected.notes];
  const faultTimes = injected.faults.map(({ at, endsAt }) => ({ at, endsAt }));
  if (specs.length > 1 && faultTimes.length > 0) {
    // Per service too: a path through gateways may take longer to come back than one in the zone.
    const ids = specs.map((_, index) => new Set(traffic[index]?.lines<{ id?: string }>().map((line) => line.id) ?? []));
    specs.forEach((spec, index) => {
      const own = judged.filter((stream) => ids[index]?.has(stream.client.id) === true);
      notes.push(`recovery of new connections to ${spec.service} per fault (ms): ${recoveryTimesMs(own, faultTimes).join(', ')}`);
    });
  }
  const bad = judged.filter((stream) => !isAcceptable(stream.verdict) && !isKnownLimit(stream.verdict));
  for (const stream of bad.slice(0, 5)) problems.push(`${stream.verdict} ${stream.client.kind} stream: client ${describeClient(stream)}; server ${JSON.stringify(stream.server ?? null)}`);
  if (bad.length > 5) problems.push(`… and ${bad.length - 5} more streams that broke the promise`);
  if (streamTally.byVerdict.whole === undefined) problems.push('no stream arrived whole: the traffic never ran');
  if (scenario.noResets === true) {
    const reset = judged.filter((stream) => stream.verdict !== 'whole');
    for (const stream of reset.slice(0, 5)) problems.push(`${stream.verdict} ${stream.client.kind} stream where none may be reset: client ${describeClient(stream)}`);
    if (reset.length > 5) problems.push(`… and ${reset.length - 5} more streams not whole`);
  }
  await Promise.all(scenario.traffic(mesh).map((spec) => mesh.untilReachable(spec.service))).catch((error: Error) => problems.push(`the mesh did not serve again: ${error.message}`));
  return {
    name: scenario.name,
    title: scenario.title,
    faults: injected.faults,
    tally: streamTally,
    recoveryMs: recoveryTimesMs(judged, faultTimes),
    notes,
    problems,
    wallMs: Date.now() - startedAt,
  };
}

/** The kills of the sidecars next to the apps of `service`'s streams: the client's, and that service's server sidecar. */
function ownSidecarKills(faults: readonly FaultEvent[], service: EchoService): SidecarKill[] {
  const serverRole = service === 'echo-a' ? 'server-a' : 'server-b';
  return faults.flatMap((fault): SidecarKill[] => (fault.killed === 'client' ? [{ side: 'client', at: fault.at }] : fault.killed === serverRole ? [{ side: 'server', at: fault.at }] : []));
}

function describeClient(stream: JudgedStream): string {
  const { outcome, errorCode, sent, received, startedAt, endedAt } = stream.client;
  return JSON.stringify({ outcome, errorCode, sent, received, ms: endedAt - startedAt });
}

/**
 * Judges the streams once the server side has had its say: waits (bounded) until every stream
 * the server's app opened has a close record, since a reset may reach it after the client's.
 */
async function settle(mesh: ChaosMesh, groups: readonly { clients: readonly ClientRecord[]; kills: readonly SidecarKill[] }[]): Promise<JudgedStream[]> {
  const deadline = Date.now() + SETTLE_MS;
  for (;;) {
    const servers = mesh.serverRecords();
    const judged = groups.flatMap((group) => judgeStreams(group.clients, servers, group.kills));
    const waiting = judged.some((stream) => stream.server?.event === 'open');
    if (!waiting || Date.now() > deadline) return judged;
    await delay(250);
  }
}
