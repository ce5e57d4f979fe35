// The chaos scenarios: each runs mixed traffic through a live mesh while it injects its faults,
// then hands back what it did. Adding one is adding an entry to SCENARIOS; one that needs a
// mesh of another shape (control-plane replicas on etcd, a fake clock) says so in `mesh`.
import type { FaultEvent } from './faults.js';
import { delay, fillDisk, killAndRestart, packetLoss, partition, reorderAndDelay, stopAndRestart } from './faults.js';
import type { ChaosMesh, ChaosMeshOptions, EchoService, Role } from './mesh.js';
import { procStats } from './mesh.js';
import { CONTROL_PLANE_SCENARIOS } from './control-plane-scenarios.js';
import { pollFor, sumMetric } from '../support/clouds.js';
import type { TrafficPlan } from './traffic.js';

/** What a scenario's faults did, besides the streams the runner judges. */
export interface Injected {
  readonly faults: FaultEvent[];
  /** Facts worth reporting (exit codes, error codes, memory). */
  readonly notes: string[];
  /** Broken promises other than stream verdicts: the scenario fails on any. */
  readonly problems: string[];
}

export interface ScenarioContext {
  readonly mesh: ChaosMesh;
  readonly quick: boolean;
  /** How long the traffic runs; the faults must be over well before it ends. */
  readonly durationMs: number;
}

/** The options of a mesh beyond its gateways: scenarios with the same shape share one mesh. */
export type MeshShape = Pick<ChaosMeshOptions, 'replicas' | 'fakeClock' | 'certTtl' | 'secondServer'>;

export type TrafficSpec = { readonly service: EchoService; readonly plan: Omit<TrafficPlan, 'port' | 'durationMs'> };

export interface Scenario {
  readonly name: string;
  readonly title: string;
  readonly needsGateways: boolean;
  /** What the mesh must have besides the default (one control plane on its data directory). */
  readonly mesh?: MeshShape;
  readonly durationMs: (quick: boolean) => number;
  readonly traffic: (mesh: ChaosMesh) => TrafficSpec[];
  /** The scenario promises more than the rule (whole, or reset on both ends): no stream reset at all. */
  readonly noResets?: boolean;
  inject(context: ScenarioContext): Promise<Injected>;
}

/** Bulk streams, short connections and long idle ones to every service the mesh has. */
function mixedTraffic(mesh: ChaosMesh, extra: Partial<TrafficSpec['plan']> = {}): TrafficSpec[] {
  const specs: TrafficSpec[] = [{ service: 'echo-a', plan: { bulk: 1, bulkBytes: 4 * 1024 * 1024, short: 2, idle: 3, ...extra } }];
  if (mesh.options.gateways) specs.push({ service: 'echo-b', plan: { bulk: 1, bulkBytes: 2 * 1024 * 1024, short: 1, idle: 2 } });
  return specs;
}

/** `rounds` kills of `role`, evenly spread over the first two thirds of the run. */
function killLoop(role: Role, title: string, needsGateways: boolean): Scenario {
  return {
    name: `kill-${role}`,
    title,
    needsGateways,
    durationMs: (quick) => (quick ? 9_000 : 30_000),
    traffic: (mesh) => mixedTraffic(mesh),
    async inject({ mesh, quick, durationMs }) {
      const rounds = quick ? 1 : 3;
      const faults: FaultEvent[] = [];
      const gapMs = (durationMs * 0.6) / rounds;
      for (let round = 0; round < rounds; round++) {
        await delay(round === 0 ? 1_500 : gapMs / 2);
        faults.push(await killAndRestart(mesh, role, 1_000));
        await delay(gapMs / 2);
      }
      return { faults, notes: [], problems: [] };
    },
  };
}

/** The tunnels each of zone a's gateways carries now, and the one carrying more (a fault to an idle one would prove nothing). */
async function busierGatewayOfZoneA(mesh: ChaosMesh): Promise<{ ga1: number; ga2: number; victim: Role }> {
  const tunnels = async (role: Role): Promise<number> => sumMetric((await mesh.adminPage(role, '/metrics')) ?? '', 'trellis_tunnels_active');
  const [ga1, ga2] = await Promise.all([tunnels('ga1'), tunnels('ga2')]);
  return { ga1, ga2, victim: ga2 > ga1 ? 'ga2' : 'ga1' };
}

/** Zone a has two gateways; each round kills the one carrying more tunnels then (killing an idle one would prove nothing). */
const killBusyGateway: Scenario = {
  ...killLoop('ga1', 'kill -9 of the busier of zone a\'s two gateways, restarted', true),
  name: 'kill-gateway-a',
  async inject({ mesh, quick, durationMs }) {
    const rounds = quick ? 1 : 3;
    const faults: FaultEvent[] = [];
    const notes: string[] = [];
    const gapMs = (durationMs * 0.6) / rounds;
    for (let round = 0; round < rounds; round++) {
      await delay(round === 0 ? 2_500 : gapMs / 2);
      const { ga1, ga2, victim } = await busierGatewayOfZoneA(mesh);
      notes.push(`round ${round + 1}: tunnels active ga1 ${ga1}, ga2 ${ga2}; killed ${victim}`);
      faults.push(await killAndRestart(mesh, victim, 1_000));
      await delay(gapMs / 2);
    }
    return { faults, notes, problems: [] };
  },
};

/**
 * SIGTERM of the busier of zone a's gateways, restarted once it has exited: it drains, so no
 * stream may be reset and no connection fail. No idle connections here: one that outlives the
 * gateway's --drain-timeout (30 s) is reset at the deadline, by design, and would hold every
 * round for that long.
 */
const drainBusyGateway: Scenario = {
  name: 'drain-gateway-a',
  title: 'SIGTERM of the busier of zone a\'s two gateways (it drains), restarted once it exits',
  needsGateways: true,
  noResets: true,
  durationMs: (quick) => (quick ? 12_000 : 30_000),
  traffic: () => [
    { service: 'echo-a', plan: { bulk: 1, bulkBytes: 4 * 1024 * 1024, short: 2 } },
    { service: 'echo-b', plan: { bulk: 2, bulkBytes: 2 * 1024 * 1024, short: 2 } },
  ],
  async inject({ mesh, quick, durationMs }) {
    const rounds = quick ? 1 : 3;
    const faults: FaultEvent[] = [];
    const notes: string[] = [];
    const problems: string[] = [];
    const gapMs = (durationMs * 0.6) / rounds;
    for (let round = 0; round < rounds; round++) {
      await delay(round === 0 ? 2_500 : gapMs / 2);
      const { ga1, ga2, victim } = await busierGatewayOfZoneA(mesh);
      const fault = await stopAndRestart(mesh, victim, 40_000);
      notes.push(`round ${round + 1}: tunnels active ga1 ${ga1}, ga2 ${ga2}; ${victim} drained and exited ${String(fault.exit)} after ${fault.exitMs} ms`);
      if (fault.exit !== 0) problems.push(`${victim} did not exit 0 after SIGTERM: ${String(fault.exit)}`);
      faults.push(fault);
      await delay(gapMs / 2);
    }
    return { faults, notes, problems };
  },
};

/**
 * SIGTERM of one of echo-a's two server sidecars (they take turns), restarted once it has exited:
 * it drains (`--drain-delay 1ms`, so the client hears of it from its GOAWAY before the control
 * plane's push), and a connection that reached it as it went away is opened on the other with
 * the bytes its app had sent. No stream may be reset, no connection fail. No idle connections,
 * for the reason given at drain-gateway-a.
 */
const drainServer: Scenario = {
  name: 'drain-server-a',
  title: 'SIGTERM of one of echo-a\'s two server sidecars in turn (it drains), restarted once it exits',
  needsGateways: false,
  mesh: { secondServer: true },
  noResets: true,
  durationMs: (quick) => (quick ? 12_000 : 30_000),
  traffic: () => [{ service: 'echo-a', plan: { bulk: 1, bulkBytes: 4 * 1024 * 1024, short: 4 } }],
  async inject({ mesh, quick, durationMs }) {
    const rounds = quick ? 1 : 3;
    const faults: FaultEvent[] = [];
    const notes: string[] = [];
    const problems: string[] = [];
    const retries = async (): Promise<number> => sumMetric((await mesh.adminPage('client', '/metrics')) ?? '', 'trellis_sidecar_upstream_stream_retries_total');
    // The client's ring: both servers on it before each drain, or the turn would leave it none.
    const onClientRing = async (): Promise<number> => {
      const status = JSON.parse((await mesh.adminPage('client', '/status')) ?? '{}') as { upstreams?: { service: string; load: unknown[] }[] };
      return status.upstreams?.find((upstream) => upstream.service === 'echo-a')?.load.length ?? 0;
    };
    const retriedBefore = await retries();
    const gapMs = (durationMs * 0.6) / rounds;
    for (let round = 0; round < rounds; round++) {
      await delay(round === 0 ? 2_500 : gapMs / 2);
      await pollFor(async () => ((await onClientRing()) === 2 ? true : undefined), 'both echo-a servers on the client\'s ring', 20_000, 100);
      const victim: Role = round % 2 === 0 ? 'server-a' : 'server-a2';
      const fault = await stopAndRestart(mesh, victim, 40_000);
      notes.push(`round ${round + 1}: ${victim} drained and exited ${String(fault.exit)} after ${fault.exitMs} ms`);
      if (fault.exit !== 0) problems.push(`${victim} did not exit 0 after SIGTERM: ${String(fault.exit)}`);
      faults.push(fault);
      await delay(gapMs / 2);
    }
    notes.push(`connections refused at open by a draining server and opened on the other: ${(await retries()) - retriedBefore}`);
    return { faults, notes, problems };
  },
};

/** kill -9 of the control plane: the data path must not notice, and config pushes work again after the restart. */
const killControlPlane: Scenario = {
  ...killLoop('cp', 'kill -9 of the control plane, restarted on its data directory', false),
  async inject(context) {
    const base = await killLoop('cp', '', false).inject(context);
    const problems = [...base.problems];
    const notes = [...base.notes];
    const started = Date.now();
    const push = await context.mesh.trellisInCp(['policy', 'deny', '--from', `probe-${Date.now()}`, '--to', 'echo-a']);
    if (push.exitCode !== 0) problems.push(`a policy push after the last restart failed: ${push.stderr.trim()}`);
    else notes.push(`a policy push after the last restart took ${Date.now() - started} ms`);
    return { faults: base.faults, notes, problems };
  },
};

const partitionHosts: Scenario = {
  name: 'partition',
  title: 'network partition between hosts (iptables DROP both ways), then heal',
  needsGateways: false,
  durationMs: (quick) => (quick ? 10_000 : 30_000),
  traffic: (mesh) => mixedTraffic(mesh),
  async inject({ mesh, quick }) {
    const faults: FaultEvent[] = [];
    await delay(1_500);
    faults.push(await partition(mesh, 'a1', 'a2', quick ? 3_000 : 6_000));
    if (!quick) {
      await delay(3_000);
      faults.push(await partition(mesh, 'a1', 'a2', 3_000));
      if (mesh.options.gateways) {
        await delay(2_000);
        faults.push(await partition(mesh, 'ga1', 'gb', 4_000));
      }
    }
    return { faults, notes: [], problems: [] };
  },
};

const lossyLink: Scenario = {
  name: 'loss',
  title: 'random packet loss on a link (iptables statistic)',
  needsGateways: false,
  durationMs: (quick) => (quick ? 8_000 : 25_000),
  traffic: (mesh) => mixedTraffic(mesh),
  async inject({ mesh, quick }) {
    await delay(1_000);
    return { faults: [await packetLoss(mesh, ['a1', 'a2'], 0.03, quick ? 5_000 : 18_000)], notes: [], problems: [] };
  },
};

const reorderedLink: Scenario = {
  name: 'reorder',
  title: 'reordering and queueing delay on a link (HTB slow class for a random share of packets)',
  needsGateways: false,
  durationMs: (quick) => (quick ? 8_000 : 25_000),
  traffic: (mesh) => mixedTraffic(mesh),
  async inject({ mesh, quick }) {
    await delay(1_000);
    return { faults: [await reorderAndDelay(mesh, ['a1', 'a2'], 'lanA', 0.25, '4mbit', quick ? 5_000 : 18_000)], notes: [], problems: [] };
  },
};

/** Admin writes while the control plane's disk is full or read-only: a clear error, no crash, traffic unaffected, and writes work again once it is fixed. */
function diskFault(kind: 'full' | 'read-only'): Scenario {
  return {
    name: kind === 'full' ? 'disk-full' : 'disk-read-only',
    title: kind === 'full' ? "control plane's data directory on a full disk (a small tmpfs)" : "control plane's data directory made read-only",
    needsGateways: false,
    durationMs: (quick) => (quick ? 10_000 : 20_000),
    traffic: (mesh) => mixedTraffic(mesh),
    async inject({ mesh, quick }) {
      const notes: string[] = [];
      const problems: string[] = [];
      const faults: FaultEvent[] = [];
      await delay(1_000);
      const at = Date.now();
      const undo = kind === 'full' ? await fillDisk(mesh) : (await mesh.cpData.remount('ro'), () => mesh.cpData.remount('rw'));
      let endsAt = at;
      try {
        const push = await mesh.trellisInCp(['policy', 'deny', '--from', `probe-${Date.now()}`, '--to', 'echo-a']);
        notes.push(`policy push on a ${kind} disk: exit ${push.exitCode}${push.exitCode === 0 ? '' : `, ${firstLine(push.stderr)}`}`);
        const token = await mesh.trellisInCp(['token', 'create', '--service', 'echo-a', '--ttl', '1h']);
        notes.push(`token create on a ${kind} disk: exit ${token.exitCode}${token.exitCode === 0 ? '' : `, ${firstLine(token.stderr)}`}`);
        // A sidecar restarting meanwhile must still come up from its data directory and register.
        const restart = await killAndRestart(mesh, 'server-a', 200).then(
          (fault) => fault,
          (error: Error) => {
            problems.push(`the server sidecar did not come back while the disk was ${kind}: ${firstLine(error.message)}`);
            return undefined;
          },
        );
        if (restart !== undefined) {
          faults.push(restart);
          notes.push('the server sidecar restarted and came up while the disk was faulty');
        }
        await delay(quick ? 1_000 : 4_000);
        if (!mesh.process('cp').running) problems.push(`the control plane exited on a ${kind} disk: ${firstLine(mesh.process('cp').stderr())}`);
      } finally {
        await undo();
        endsAt = Date.now();
      }
      if (!mesh.process('cp').running) {
        notes.push('restarting the control plane after the disk fault');
        await mesh.restart('cp');
      }
      const retryStart = Date.now();
      let pushed = false;
      for (let attempt = 0; attempt < 20 && !pushed; attempt++) {
        const push = await mesh.trellisInCp(['policy', 'deny', '--from', `probe-${Date.now()}`, '--to', 'echo-a']);
        pushed = push.exitCode === 0;
        if (!pushed) await delay(500);
      }
      if (pushed) notes.push(`config writes worked again ${Date.now() - retryStart} ms after the disk was fixed`);
      else problems.push('config writes still fail 10 s after the disk was fixed');
      return { faults: [{ what: `${kind} data directory`, at, endsAt }, ...faults], notes, problems };
    },
  };
}

function firstLine(text: string): string {
  return text.trim().split('\n')[0]?.slice(0, 200) ?? '';
}

/** A misbehaving app behind the server sidecar, beside ordinary traffic; the sidecars' memory must stay bounded. */
function badApp(name: string, title: string, extra: Partial<TrafficSpec['plan']>): Scenario {
  return {
    name,
    title,
    needsGateways: false,
    durationMs: (quick) => (quick ? 8_000 : 20_000),
    traffic: (mesh) => mixedTraffic(mesh, extra),
    async inject({ mesh, durationMs }) {
      const roles: Role[] = ['client', 'server-a'];
      const before = roles.map((role) => procStats(mesh.process(role).pid)?.rssBytes ?? 0);
      let peak = [...before];
      const stopAt = Date.now() + durationMs - 1_000;
      while (Date.now() < stopAt) {
        await delay(500);
        peak = roles.map((role, index) => Math.max(peak[index] ?? 0, procStats(mesh.process(role).pid)?.rssBytes ?? 0));
      }
      const mib = (bytes: number): string => (bytes / 1024 / 1024).toFixed(1);
      const notes = roles.map((role, index) => `${role} sidecar RSS ${mib(before[index] ?? 0)} → peak ${mib(peak[index] ?? 0)} MiB`);
      const problems = roles.filter((_, index) => (peak[index] ?? 0) - (before[index] ?? 0) > 128 * 1024 * 1024).map((role) => `${role} sidecar grew by more than 128 MiB`);
      return { faults: [], notes, problems };
    },
  };
}

export const SCENARIOS: readonly Scenario[] = [
  killLoop('client', 'kill -9 of the client sidecar, restarted from its data directory', false),
  killLoop('server-a', 'kill -9 of the server sidecar, restarted from its data directory', false),
  killBusyGateway,
  drainBusyGateway,
  drainServer,
  killLoop('gb', "kill -9 of zone b's only gateway, restarted", true),
  killControlPlane,
  partitionHosts,
  lossyLink,
  reorderedLink,
  diskFault('full'),
  diskFault('read-only'),
  badApp('slow-consumer', 'a slow-consumer app (reads 64 KiB every 20 ms) beside ordinary traffic', { slow: 2 }),
  badApp('never-reads', 'an app that accepts and never reads (the client gives up after 4 s) beside ordinary traffic', { noread: 2 }),
  badApp('app-resets', 'an app that resets every connection after 64 KiB beside ordinary traffic', { reset: 2 }),
  ...CONTROL_PLANE_SCENARIOS,
];
