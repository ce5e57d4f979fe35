import type net from 'node:net';
import type { Logger } from 'pino';
import { ErrorCode, errorCodeName } from '../../proto/errors.js';
import type { StreamLease } from '../balancer/balancer.js';
import type { SidecarMetrics } from '../metrics/metrics.js';
import type { MuxStream } from '../mux/index.js';
import { onFirstAnswer } from './join.js';
import type { OpenReplay, ReplayedOpening } from './open-replay.js';

/** Where a tracked stream keeps its {@link OutboundStream}, for the shared listeners below. */
const OUTBOUND = Symbol('trellis.outbound');
type Tracked = MuxStream & { [OUTBOUND]: OutboundStream };

/** An app connection being forwarded, across the streams it may take (see `OutboundForwarder`'s reopen). */
export interface Connection {
  readonly service: string;
  readonly socket: net.Socket;
  readonly key: string;
  readonly acceptedAtMs: number;
  /** Called once, when its first stream opens. */
  onOpen: (() => void) | undefined;
  /** Endpoints (sidecar ids) that refused it at open because they are draining; made at the first refusal. */
  refusedBy: Set<string> | undefined;
}

/** Sends a refused connection on to another endpoint (`OutboundForwarder.#reopen`). */
export type ReopenConnection = (connection: Connection, refusedBy: string, opening: ReplayedOpening) => void;

/**
 * One stream an app connection took to an endpoint: what its end tells the balancer (the
 * endpoint answered, or failed it), the metrics and the log, and the replay that a refusal at
 * open hands to the next stream (it is the join's `replay`).
 *
 * One object per stream, with listeners shared by every stream, rather than closures: with
 * 10,000 streams open each closure and its context is megabytes (bench/NOTES.md).
 */
export class OutboundStream {
  readonly #init: { metrics: SidecarMetrics; logger: Logger };
  readonly #reopen: ReopenConnection;
  readonly #connection: Connection;
  readonly #stream: MuxStream;
  readonly #lease: StreamLease;
  readonly #openedAtMs = performance.now();
  /** Bytes or a clean FIN came from the peer: its app took the stream, the endpoint works. */
  #answered = false;

  /** What the app sent that a refusal at open hands to the next stream (the join's `replay.record`). */
  readonly record: OpenReplay;

  constructor(init: { metrics: SidecarMetrics; logger: Logger }, reopen: ReopenConnection, connection: Connection, stream: MuxStream, lease: StreamLease, record: OpenReplay) {
    this.#init = init;
    this.record = record;
    this.#reopen = reopen;
    this.#connection = connection;
    this.#stream = stream;
    this.#lease = lease;
  }

  /** Listens for the stream's answer, reset and close. Call after the join (its reset listener goes first). */
  track(): void {
    const stream = this.#stream as Tracked;
    stream[OUTBOUND] = this;
    this.#init.metrics.streamOpened('outbound');
    stream.on('close', onTrackedClose);
    stream.on('reset', onTrackedReset);
    onFirstAnswer(stream, () => {
      this.#answered = true;
      this.#lease.succeeded();
    });
  }

  /** Refused at open by a draining endpoint: the connection goes on with `opening` (the join calls this). */
  onRefusedAtOpen(opening: ReplayedOpening): void {
    this.#reopen(this.#connection, this.#lease.endpoint.sidecarId, opening);
  }

  closed(): void {
    const { metrics } = this.#init;
    this.#lease.release();
    metrics.streamClosed('outbound');
    metrics.upstreamStreamClosed(this.#connection.service, (performance.now() - this.#openedAtMs) / 1000);
  }

  reset(code: number, message: string, local: boolean): void {
    // Refused at open and handed to another endpoint (#reopen): the connection goes on.
    if (this.record.handedOver) return;
    const { metrics, logger } = this.#init;
    const { service } = this.#connection;
    metrics.upstreamStreamFailed(service, errorCodeName(code));
    // Refused by the destination before any answer (POLICY_DENIED, APP_UNREACHABLE…): the
    // caller's operator sees why here, not only in the destination's logs.
    if (!local && !this.#answered) logger.warn({ service, endpoint: this.#lease.endpoint.address, code: errorCodeName(code), reason: message }, 'stream refused by the destination');
    if (local) metrics.streamError(errorCodeName(code));
    else if (code === ErrorCode.APP_UNREACHABLE && !this.#answered) reportEndpointFailure(logger, service, this.#lease);
  }
}

function onTrackedClose(this: Tracked): void {
  this[OUTBOUND].closed();
}

function onTrackedReset(this: Tracked, code: number, message: string, local: boolean): void {
  this[OUTBOUND].reset(code, message, local);
}

/** Counts a failure against `lease`'s endpoint, and says so when that ejected it. */
export function reportEndpointFailure(logger: Logger, service: string, lease: StreamLease): void {
  const ejection = lease.failed();
  if (ejection === undefined) return;
  logger.warn({ service, endpoint: lease.endpoint.address, sidecarId: lease.endpoint.sidecarId, ...ejection }, 'endpoint keeps failing; ejected');
}
