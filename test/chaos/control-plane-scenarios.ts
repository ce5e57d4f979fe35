// Chaos scenarios aimed at the control plane's own dependencies: a replica killed while the other
// serves, etcd killed under both replicas, and the control plane's wall clock jumping. The data
// path must not notice any of them; what the control plane can still do meanwhile, and how soon
// it can do everything again, goes into the notes.
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FaultEvent } from './faults.js';
import { delay, killAndRestart } from './faults.js';
import type { ChaosMesh, Replica, Role } from './mesh.js';
import type { Injected, Scenario, TrafficSpec } from './scenarios.js';

const BOUND_MS = 30_000;

function mixed(mesh: ChaosMesh): TrafficSpec[] {
  const specs: TrafficSpec[] = [{ service: 'echo-a', plan: { bulk: 1, bulkBytes: 4 * 1024 * 1024, short: 2, idle: 3 } }];
  if (mesh.options.gateways) specs.push({ service: 'echo-b', plan: { bulk: 1, bulkBytes: 2 * 1024 * 1024, short: 1, idle: 2 } });
  return specs;
}

interface SidecarStatus {
  readonly controlPlaneConnected: boolean;
  readonly configVersion: number;
}

async function sidecarStatus(mesh: ChaosMesh, role: Role): Promise<SidecarStatus | undefined> {
  const page = await mesh.adminPage(role, '/status');
  return page === undefined ? undefined : (JSON.parse(page) as SidecarStatus);
}

/** Polls `check` every 200 ms until it holds; the milliseconds it took, or undefined after `boundMs`. */
async function timeUntil(check: () => Promise<boolean>, boundMs = BOUND_MS): Promise<number | undefined> {
  const started = Date.now();
  while (Date.now() - started < boundMs) {
    if (await check()) return Date.now() - started;
    await delay(200);
  }
  return undefined;
}

const errorCode = (stderr: string): string | undefined => /\[(TRELLIS_ERR_[A-Z_]+)\]/.exec(stderr)?.[1];

/**
 * Pushes a rule for a service that does not exist towards echo-a through `replica` (harmless to
 * the traffic; with scoped push only echo-a's sidecar gets it). Returns whether the write
 * succeeded (else the error code) and how long it took, then how long until the server sidecar
 * held the new config and the client sidecar had a control-plane session.
 */
async function probePush(mesh: ChaosMesh, replica: Replica): Promise<{ ok: boolean; failure?: string; ms: number; reachedMs?: number }> {
  const before = (await sidecarStatus(mesh, 'server-a'))?.configVersion ?? Number.POSITIVE_INFINITY;
  const started = Date.now();
  const push = await mesh.trellisInCp(['policy', 'deny', '--from', `probe-${Date.now()}`, '--to', 'echo-a'], replica);
  const ms = Date.now() - started;
  if (push.exitCode !== 0) return { ok: false, failure: `exit ${push.exitCode}, ${errorCode(push.stderr) ?? `no error code: ${push.stderr.trim().split('\n')[0] ?? ''}`}`, ms };
  const reachedMs = await timeUntil(async () => {
    const [server, client] = await Promise.all([sidecarStatus(mesh, 'server-a'), sidecarStatus(mesh, 'client')]);
    return server !== undefined && server.controlPlaneConnected && server.configVersion > before && client?.controlPlaneConnected === true;
  });
  return { ok: true, ms, reachedMs: reachedMs === undefined ? undefined : reachedMs + ms };
}

/** kill -9 of one replica a round (alternating, so every round takes away the one the sidecars moved to), restarted on its data directory. */
const killReplica: Scenario = {
  name: 'kill-cp-replica',
  title: 'kill -9 of one of two control-plane replicas on etcd (alternating), restarted; pushes through the survivor',
  needsGateways: false,
  mesh: { replicas: true },
  durationMs: (quick) => (quick ? 12_000 : 40_000),
  traffic: mixed,
  async inject({ mesh, quick, durationMs }): Promise<Injected> {
    const rounds = quick ? 1 : 3;
    const gapMs = (durationMs * 0.6) / rounds;
    const faults: FaultEvent[] = [];
    const notes: string[] = [];
    const problems: string[] = [];
    for (let round = 0; round < rounds; round++) {
      await delay(round === 0 ? 1_500 : gapMs / 4);
      const victim: Replica = round % 2 === 0 ? 'cp' : 'cp2';
      const survivor: Replica = victim === 'cp' ? 'cp2' : 'cp';
      const at = Date.now();
      await mesh.kill(victim);
      // The push lands in etcd; only the survivor can bring it to the sidecars, so its arrival shows they moved.
      const during = await probePush(mesh, survivor);
      if (!during.ok) problems.push(`round ${round + 1}: a policy push through ${survivor} with ${victim} down failed: ${during.failure ?? ''}`);
      else if (during.reachedMs === undefined) problems.push(`round ${round + 1}: a push through ${survivor} did not reach the server sidecar within ${BOUND_MS} ms of ${victim}'s kill`);
      const endsAt = Date.now();
      await mesh.restart(victim);
      const after = await probePush(mesh, victim);
      if (!after.ok) problems.push(`round ${round + 1}: a policy push through the restarted ${victim} failed: ${after.failure ?? ''}`);
      else if (after.reachedMs === undefined) problems.push(`round ${round + 1}: a push through the restarted ${victim} did not reach the sidecars within ${BOUND_MS} ms`);
      faults.push({ what: `kill -9 ${victim}, restart once the sidecars took a push through ${survivor}`, at, endsAt, killed: victim });
      notes.push(
        `round ${round + 1}: ${victim} killed; a push through ${survivor} took ${during.ms} ms and reached the server sidecar (moved to ${survivor}, as the client's) ${during.reachedMs ?? '—'} ms after the kill; after ${victim}'s restart a push through it reached them in ${after.reachedMs ?? '—'} ms`,
      );
      await delay(gapMs / 4);
    }
    return { faults, notes, problems };
  },
};

/** kill -9 of etcd under both replicas, restarted on its data directory after a few seconds. */
const killEtcd: Scenario = {
  name: 'kill-etcd',
  title: 'kill -9 of etcd under two control-plane replicas, restarted on its data directory',
  needsGateways: false,
  mesh: { replicas: true },
  durationMs: (quick) => (quick ? 12_000 : 30_000),
  traffic: mixed,
  async inject({ mesh, quick, durationMs }): Promise<Injected> {
    const rounds = quick ? 1 : 2;
    const downMs = 3_000;
    const gapMs = (durationMs * 0.6) / rounds;
    const faults: FaultEvent[] = [];
    const notes: string[] = [];
    const problems: string[] = [];
    for (let round = 0; round < rounds; round++) {
      await delay(round === 0 ? 1_500 : gapMs / 4);
      const at = Date.now();
      await mesh.kill('etcd');
      const write = await mesh.trellisInCp(['policy', 'deny', '--from', `probe-${Date.now()}`, '--to', 'echo-a']);
      const writeMs = Date.now() - at;
      const code = errorCode(write.stderr);
      if (write.exitCode === 0) problems.push(`round ${round + 1}: a policy push succeeded with etcd down`);
      else if (code === undefined) problems.push(`round ${round + 1}: a policy push with etcd down failed without an error code: ${write.stderr.trim().split('\n')[0] ?? ''}`);
      notes.push(`round ${round + 1}: with etcd down a policy push exits ${write.exitCode} with ${code ?? 'no code'} after ${writeMs} ms`);
      await delay(Math.max(0, downMs - (Date.now() - at)));
      const endsAt = Date.now();
      await mesh.restart('etcd');
      faults.push({ what: `kill -9 etcd, restart after ${endsAt - at} ms`, at, endsAt, killed: 'etcd' });
      // Writes work again once the replicas' clients reconnect; the watches bring them to the sidecars.
      const retried = Date.now();
      let push: Awaited<ReturnType<typeof probePush>> | undefined;
      let attempts = 0;
      while (Date.now() - retried < BOUND_MS) {
        attempts++;
        push = await probePush(mesh, round % 2 === 0 ? 'cp' : 'cp2');
        if (push.ok) break;
        await delay(250);
      }
      if (push?.ok !== true) problems.push(`round ${round + 1}: writes still fail ${BOUND_MS} ms after etcd's restart: ${push?.failure ?? ''}`);
      else if (push.reachedMs === undefined) problems.push(`round ${round + 1}: a push after etcd's restart did not reach the sidecars: the watches did not resume`);
      else notes.push(`round ${round + 1}: after etcd's restart a push succeeded at attempt ${attempts}, ${Date.now() - retried - (push.reachedMs - push.ms)} ms after the restart, and reached the server sidecar ${push.reachedMs - push.ms} ms later`);
      await delay(gapMs / 4);
    }
    return { faults, notes, problems };
  },
};

interface SeenCertificate {
  readonly role: Role;
  readonly fingerprint: string;
  readonly notBefore: number;
  readonly notAfter: number;
  /** Real time when it was first seen in the sidecar's data directory. */
  readonly seenAt: number;
}

function currentCertificate(mesh: ChaosMesh, role: Role): X509Certificate | undefined {
  try {
    const identity = JSON.parse(readFileSync(join(mesh.dataDirOf(role), 'identity.json'), 'utf8')) as { certPem: string };
    return new X509Certificate(identity.certPem);
  } catch {
    return undefined;
  }
}

/** Whether every sidecar's certificate is valid by the real clock now. */
function allValidNow(mesh: ChaosMesh, roles: readonly Role[]): boolean {
  const now = Date.now();
  return roles.every((role) => {
    const cert = currentCertificate(mesh, role);
    return cert !== undefined && Date.parse(cert.validFrom) <= now && now < Date.parse(cert.validTo);
  });
}

/**
 * The control plane's wall clock jumps (libfaketime) while traffic runs and sidecars renew
 * short-lived leaves; then the server sidecar is restarted, so that links are dialled again
 * with the certificates the sidecars then hold.
 */
const clockJump: Scenario = {
  name: 'clock-jump',
  title: "the control plane's wall clock jumps (+2 h, and −1 h in the full run) during traffic and 20 s leaf renewals, then the server sidecar restarts",
  needsGateways: false,
  mesh: { fakeClock: true, certTtl: '20s' },
  durationMs: (quick) => (quick ? 24_000 : 50_000),
  traffic: mixed,
  async inject({ mesh, quick }): Promise<Injected> {
    const jumps = quick ? ['+2h'] : ['+2h', '-1h'];
    // Longer than half the 20 s leaf life: every sidecar renews at least once while the clock is off.
    const holdMs = 12_000;
    const roles: Role[] = ['client', 'server-a'];
    const faults: FaultEvent[] = [];
    const notes: string[] = [];
    const problems: string[] = [];
    const seen = new Map<string, SeenCertificate>();
    const watch = (): void => {
      for (const role of roles) {
        const cert = currentCertificate(mesh, role);
        if (cert === undefined || seen.has(`${role}/${cert.fingerprint256}`)) continue;
        seen.set(`${role}/${cert.fingerprint256}`, { role, fingerprint: cert.fingerprint256, notBefore: Date.parse(cert.validFrom), notAfter: Date.parse(cert.validTo), seenAt: Date.now() });
      }
    };
    watch();
    for (const offset of jumps) {
      await delay(1_500);
      const at = Date.now();
      mesh.setCpClock(offset);
      while (Date.now() - at < holdMs) {
        watch();
        await delay(250);
      }
      mesh.setCpClock('+0');
      const endsAt = Date.now();
      faults.push({ what: `control-plane clock ${offset} for ${endsAt - at} ms`, at, endsAt });
      const issued = [...seen.values()].filter((cert) => cert.seenAt >= at);
      const future = issued.filter((cert) => cert.notBefore > cert.seenAt);
      const expired = issued.filter((cert) => cert.notAfter <= cert.seenAt);
      notes.push(
        `clock ${offset}: the sidecars installed ${issued.length} leaves; ${future.length} with a notBefore in the future (by up to ${Math.round(Math.max(0, ...future.map((c) => c.notBefore - c.seenAt)) / 60_000)} min), ${expired.length} already expired`,
      );
      const validMs = await timeUntil(() => {
        watch();
        return Promise.resolve(allValidNow(mesh, roles));
      });
      notes.push(validMs === undefined ? `clock ${offset}: ${BOUND_MS} ms after the clock came back, a sidecar still held a leaf not valid now` : `clock ${offset}: every sidecar held a leaf valid now ${validMs} ms after the clock came back`);
      if (validMs === undefined) problems.push(`after the clock ${offset} jump a sidecar kept a certificate its peers refuse (notBefore in the future or expired)`);
    }
    // Links dialled now use the leaves the sidecars hold: a restart of the server sidecar makes the client dial it again.
    const restart = await killAndRestart(mesh, 'server-a', 200).catch((error: Error) => {
      problems.push(`the server sidecar did not come back after the clock jumps: ${error.message.split('\n')[0] ?? ''}`);
      return undefined;
    });
    if (restart !== undefined) faults.push(restart);
    return { faults, notes, problems };
  },
};

export const CONTROL_PLANE_SCENARIOS: readonly Scenario[] = [killReplica, killEtcd, clockJump];
