// Judging a run: every client stream matched with the server's record of it, classified, and
// summed into the figures of a scenario. Pure: records in, figures out.
import type { ClientRecord, ServerRecord, StreamKind } from './traffic.js';

/**
 * What happened to one stream, from both apps' points of view.
 * - `whole`: the echo came back byte-exact and the server saw a clean end with the same sha256.
 * - `reset-both`: the client was told (a socket error) and so was the server's app, or it never saw the stream.
 * - `reset-client-only`: the client was told, the server's app saw a clean end or still holds the stream open.
 * - `expected`: the outcome the scenario asked for (an app that resets: the client told; an app that never reads: the client gave up and the server's app was told).
 * - `truncated`, `mismatch`: silent loss or corruption — the one unforgivable outcome.
 * - `hung`: nothing told the client anything within its bound.
 * - `eof-own-sidecar-killed`: the sidecar next to one app was SIGKILLed while the stream ran, and
 *   that app saw a clean end (FIN) instead of a reset, while the other app was told. The kernel
 *   closes a dead process's sockets with FIN unless unread bytes are queued; only SO_LINGER 0
 *   would make it RST, and Node cannot set that on a socket that stays open. A known limit,
 *   reported on its own, never counted as whole.
 * - `reset-after-server-done`: the server's app had every byte, byte-exact, and ended its side
 *   and closed; the echo was then lost on its way (a gateway died) and the client was told. A
 *   closed connection cannot be told anything: plain TCP loses a last response the same way.
 *   Reported on its own, never counted as whole.
 */
export type Verdict = 'whole' | 'reset-both' | 'reset-client-only' | 'expected' | 'truncated' | 'mismatch' | 'hung' | 'eof-own-sidecar-killed' | 'reset-after-server-done';

/** When the sidecar next to the client app, or next to the server app, was SIGKILLed. */
export interface SidecarKill {
  readonly side: 'client' | 'server';
  readonly at: number;
}

export interface JudgedStream {
  readonly client: ClientRecord;
  readonly server: ServerRecord | undefined;
  readonly verdict: Verdict;
  /** Bytes that vanished or changed without either app being told (for a known limit: the bytes its app missed). */
  readonly bytesLost: number;
}

/** Pairs each client record with the server's last record of the same id and judges it; `kills` are the kills of these streams' own sidecars. */
export function judgeStreams(clients: readonly ClientRecord[], servers: readonly ServerRecord[], kills: readonly SidecarKill[] = []): JudgedStream[] {
  const byId = new Map<string, ServerRecord>();
  for (const record of servers) {
    // A close record supersedes the open record of the same connection.
    if (record.event === 'close' || !byId.has(record.id)) byId.set(record.id, record);
  }
  return clients.map((client) => judge(client, byId.get(client.id), kills));
}

function serverTold(server: ServerRecord | undefined): boolean {
  return server === undefined || server.outcome === 'error' || server.outcome === 'closed' || server.outcome === 'app-reset';
}

export function judge(client: ClientRecord, server: ServerRecord | undefined, kills: readonly SidecarKill[] = []): JudgedStream {
  const verdict = withKills(verdictOf(client, server), client, server, kills);
  const bytesLost = verdict === 'truncated' || verdict === 'eof-own-sidecar-killed' ? client.sent - client.received : verdict === 'mismatch' ? client.sent : 0;
  return { client, server, verdict, bytesLost };
}

/** Tells the known limit after a kill of an app's own sidecar apart from the same symptom with no such kill. */
function withKills(verdict: Verdict, client: ClientRecord, server: ServerRecord | undefined, kills: readonly SidecarKill[]): Verdict {
  const killed = (side: SidecarKill['side']): boolean => kills.some((kill) => kill.side === side && kill.at >= client.startedAt && kill.at <= client.endedAt);
  // The client app saw a clean end; the server app was told, or had received every byte and finished its part.
  const serverDone = server?.outcome === 'end' && server.received === client.sent && server.sha256 === client.sentSha256;
  if (verdict === 'truncated' && client.outcome === 'truncated' && (serverTold(server) || serverDone) && killed('client')) return 'eof-own-sidecar-killed';
  // The client app was told, the server app saw a clean end.
  if (verdict === 'reset-client-only' && server?.outcome === 'end' && killed('server')) return 'eof-own-sidecar-killed';
  if (verdict === 'reset-client-only' && serverDone) return 'reset-after-server-done';
  return verdict;
}

function verdictOf(client: ClientRecord, server: ServerRecord | undefined): Verdict {
  if (client.outcome === 'timeout') return 'hung';
  if (client.outcome === 'mismatch') return 'mismatch';
  if (client.outcome === 'truncated') return 'truncated';
  if (client.kind === 'reset') {
    // The app resets every such stream; the client must hear of it as a reset, never as a clean end.
    if (client.outcome === 'reset') return server === undefined || server.outcome === 'app-reset' || serverTold(server) ? 'expected' : 'reset-client-only';
    return client.outcome === 'ok' ? 'mismatch' : 'truncated';
  }
  if (client.kind === 'noread' && client.outcome === 'abandoned') return server !== undefined && server.event === 'open' ? 'reset-client-only' : 'expected';
  if (client.outcome === 'ok') {
    if (server === undefined || server.event !== 'close') return 'mismatch';
    return server.outcome === 'end' && server.received === client.sent && server.sha256 === client.sentSha256 ? 'whole' : 'mismatch';
  }
  // reset (or abandoned outside the never-reading app)
  return serverTold(server) ? 'reset-both' : 'reset-client-only';
}

/** The figures of a set of streams. */
export interface StreamTally {
  readonly streams: number;
  readonly byKind: Partial<Record<StreamKind, number>>;
  readonly byVerdict: Partial<Record<Verdict, number>>;
  readonly bytesCarried: number;
  /** Bytes lost silently, known limits not included. */
  readonly bytesLost: number;
  /** Bytes the apps of known-limit streams missed (an EOF after a kill of their own sidecar). */
  readonly bytesLostKnownLimit: number;
  /** Streams one of whose apps was not told it failed: silent, one-sided or hung (known limits not included). */
  readonly untold: number;
  /** Streams that hit a known limit (an EOF after a kill of the app's own sidecar). */
  readonly knownLimit: number;
}

export function tally(streams: readonly JudgedStream[]): StreamTally {
  const byKind: Partial<Record<StreamKind, number>> = {};
  const byVerdict: Partial<Record<Verdict, number>> = {};
  let bytesCarried = 0;
  let bytesLost = 0;
  let bytesLostKnownLimit = 0;
  let untold = 0;
  let knownLimit = 0;
  for (const stream of streams) {
    byKind[stream.client.kind] = (byKind[stream.client.kind] ?? 0) + 1;
    byVerdict[stream.verdict] = (byVerdict[stream.verdict] ?? 0) + 1;
    if (stream.verdict === 'whole') bytesCarried += stream.client.sent;
    if (isKnownLimit(stream.verdict)) {
      knownLimit += 1;
      bytesLostKnownLimit += stream.bytesLost;
    } else bytesLost += stream.bytesLost;
    if (isKnownLimit(stream.verdict)) continue;
    if (!isAcceptable(stream.verdict)) untold += 1;
  }
  return { streams: streams.length, byKind, byVerdict, bytesCarried, bytesLost, bytesLostKnownLimit, untold, knownLimit };
}

/** A verdict that keeps the promise: whole, or failed loudly on both ends. */
export function isAcceptable(verdict: Verdict): boolean {
  return verdict === 'whole' || verdict === 'reset-both' || verdict === 'expected';
}

/** A verdict that breaks the promise for a reason outside Trellis's reach (see {@link Verdict}); reported, not failed. */
export function isKnownLimit(verdict: Verdict): boolean {
  return verdict === 'eof-own-sidecar-killed' || verdict === 'reset-after-server-done';
}

/**
 * How long the mesh took to serve new connections again after each fault: from the fault's end
 * (for a kill, the restart issued; for a partition, the heal) to the end of the last short
 * connection that failed after it and before the next fault began. 0 when none failed.
 */
export function recoveryTimesMs(streams: readonly JudgedStream[], faults: readonly { at: number; endsAt: number }[]): number[] {
  const sorted = [...faults].sort((a, b) => a.at - b.at);
  const failed = streams.filter((stream) => stream.client.kind === 'short' && stream.verdict !== 'whole');
  return sorted.map((fault, index) => {
    const nextStart = sorted[index + 1]?.at ?? Number.POSITIVE_INFINITY;
    // A connection that began before the fault ended but failed after it counts for this fault.
    // One that failed once the next fault was under way belongs to that one, even if it began
    // before: a short connection in flight when the next kill strikes fails at that kill, and
    // counting it here would report the gap between two faults as this one's recovery.
    const ends = failed.filter((stream) => stream.client.endedAt >= fault.endsAt && stream.client.endedAt < nextStart).map((stream) => stream.client.endedAt - fault.endsAt);
    return Math.max(0, ...ends);
  });
}
