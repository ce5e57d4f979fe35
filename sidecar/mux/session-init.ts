/**
 * Options of a {@link Session}, their defaults, and the checks that run before a session
 * touches its socket.
 */

import { Limits, PROTOCOL_MAX_VERSION, PROTOCOL_MIN_VERSION, ValidationError } from '../../proto/index.js';
import type { TunnelFrame } from '../../proto/index.js';
import type { RefusalBudgetOptions } from './refusal-budget.js';
import { DEFAULT_REFUSAL_BURST, DEFAULT_REFUSALS_PER_SECOND } from './refusal-budget.js';
import type { MuxStream } from './stream.js';

/** Options of a session over one link. */
export interface SessionInit {
  /** 'dialer' uses odd stream ids, 'acceptor' even. */
  role: 'dialer' | 'acceptor';
  /** @default 256 KiB — credit granted to the peer per stream, per direction. */
  initialWindowBytes?: number;
  /** @default 64 KiB — largest DATA payload this end sends in one frame. */
  maxFramePayloadBytes?: number;
  /** @default 10_000 — streams the peer may have open at once on this link; more get RESET RESOURCE_EXHAUSTED. */
  maxConcurrentStreams?: number;
  /** @default 10_000 ms — HELLO must arrive within this. */
  helloTimeoutMs?: number;
  /**
   * Bytes queued on the socket above which streams stop handing it DATA and wait for the
   * socket to drain (control frames still go out). Bounds a link's memory whatever the
   * number of streams. Raised to the socket's own high-water mark when below it.
   * @default 1 MiB
   */
  maxLinkBufferedBytes?: number;
  /** Called for each stream the peer opens. Return nothing; accept by using the stream, refuse by stream.reset(code, msg). */
  onStream?: (stream: MuxStream, service: string) => void;
  /** Called for each tunnel stream the peer opens (version 2); without it tunnels get RESET ROUTE_REFUSED. */
  onTunnel?: (stream: MuxStream, tunnel: TunnelFrame) => void;
  /** Highest protocol version to offer in HELLO. @default PROTOCOL_MAX_VERSION */
  maxVersion?: number;
  /** Streams of the peer refused at open (by this session or its handlers) before reading pauses: see {@link RefusalBudget}. */
  refusals?: RefusalBudgetOptions;
}

/** {@link SessionInit} with every default applied. */
export interface ResolvedSessionInit {
  readonly role: 'dialer' | 'acceptor';
  readonly initialWindowBytes: number;
  readonly maxFramePayloadBytes: number;
  readonly maxConcurrentStreams: number;
  readonly helloTimeoutMs: number;
  readonly maxLinkBufferedBytes: number;
  readonly onStream: ((stream: MuxStream, service: string) => void) | undefined;
  readonly onTunnel: ((stream: MuxStream, tunnel: TunnelFrame) => void) | undefined;
  readonly maxVersion: number;
  readonly refusals: Required<RefusalBudgetOptions>;
}

export const DEFAULT_INITIAL_WINDOW_BYTES = 256 * 1024;
export const DEFAULT_MAX_FRAME_PAYLOAD_BYTES = 64 * 1024;
export const DEFAULT_MAX_CONCURRENT_STREAMS = 10_000;
export const DEFAULT_HELLO_TIMEOUT_MS = 10_000;
export const DEFAULT_MAX_LINK_BUFFERED_BYTES = 1024 * 1024;

function integerOption(name: string, value: number | undefined, fallback: number, min: number, max: number): number {
  const resolved = value ?? fallback;
  if (!Number.isInteger(resolved) || resolved < min || resolved > max) {
    throw new ValidationError(`${name} must be an integer in ${min}..${max}, got ${resolved}`);
  }
  return resolved;
}

/**
 * Applies defaults and checks ranges.
 * @throws ValidationError `TRELLIS_ERR_INVALID` for an option out of range.
 */
export function resolveSessionInit(init: SessionInit): ResolvedSessionInit {
  if (init.role !== 'dialer' && init.role !== 'acceptor') {
    throw new ValidationError(`role must be 'dialer' or 'acceptor'`);
  }
  return {
    role: init.role,
    // A window below one byte would leave the peer unable to send anything.
    initialWindowBytes: integerOption('initialWindowBytes', init.initialWindowBytes, DEFAULT_INITIAL_WINDOW_BYTES, 1, Limits.MAX_WINDOW_BYTES),
    // The peer's decoder rejects anything above the protocol's payload limit.
    maxFramePayloadBytes: integerOption('maxFramePayloadBytes', init.maxFramePayloadBytes, DEFAULT_MAX_FRAME_PAYLOAD_BYTES, 1, Limits.MAX_DATA_PAYLOAD_BYTES),
    maxConcurrentStreams: integerOption('maxConcurrentStreams', init.maxConcurrentStreams, DEFAULT_MAX_CONCURRENT_STREAMS, 0, Limits.MAX_STREAM_ID),
    helloTimeoutMs: integerOption('helloTimeoutMs', init.helloTimeoutMs, DEFAULT_HELLO_TIMEOUT_MS, 1, 2 ** 31 - 1),
    maxLinkBufferedBytes: integerOption('maxLinkBufferedBytes', init.maxLinkBufferedBytes, DEFAULT_MAX_LINK_BUFFERED_BYTES, 1, Number.MAX_SAFE_INTEGER),
    onStream: init.onStream,
    onTunnel: init.onTunnel,
    maxVersion: integerOption('maxVersion', init.maxVersion, PROTOCOL_MAX_VERSION, PROTOCOL_MIN_VERSION, PROTOCOL_MAX_VERSION),
    refusals: {
      burst: integerOption('refusals.burst', init.refusals?.burst, DEFAULT_REFUSAL_BURST, 1, Number.MAX_SAFE_INTEGER),
      perSecond: integerOption('refusals.perSecond', init.refusals?.perSecond, DEFAULT_REFUSALS_PER_SECOND, 1, Number.MAX_SAFE_INTEGER),
    },
  };
}
