import type { BalancerObserver } from '../balancer/balancer.js';
import type { ForwardObserver } from '../forward/join.js';

/** Where the sidecar reports what it does. The Prometheus adapter is one implementation. */
export interface SidecarMetrics extends ForwardObserver, BalancerObserver {
  streamOpened(direction: 'inbound' | 'outbound'): void;
  streamClosed(direction: 'inbound' | 'outbound'): void;
  /** A stream ended with an error code (by name, e.g. APP_UNREACHABLE). */
  streamError(codeName: string): void;
  /** A stream refused (or reset) by policy; `source` is the caller's service, `destination` the called one. */
  policyDenied(source: string, destination: string): void;
  linkDialed(durationSeconds: number, ok: boolean): void;
  linkRtt(peer: string, rttMs: number): void;
  /** A link was added to, or taken out of, one of the process's sets of open links (several add up). */
  linkOpened(): void;
  linkClosed(): void;
  /** A link closed because the peer broke the protocol, by ProtocolError code. */
  protocolViolation(code: string): void;
  /** An outbound stream was reset because no bytes crossed it for the idle timeout. */
  idleStreamReset(): void;
  /** A client of the proxy port turned away (a name outside `.mesh`, a bad handshake, no route). */
  proxyRefused(reason: string): void;
  /** A connection to a link listener refused or closed before it became a link, by reason (see `LinkRefusalReason`). */
  linkRefused(reason: string): void;
  /** A link paused reading: its peer had streams refused at open beyond the refusal budget. */
  linkReadPaused(): void;
  /** An inbound stream refused with RESOURCE_EXHAUSTED by a stream quota, by reason (see `StreamRefusalReason`). */
  streamRefused(reason: string): void;
  /** A tunnel refused here (at a gateway or a destination), by reason. */
  tunnelRefused(reason: string): void;
  /** A gateway spliced a tunnel stream between two links, and later closed it. */
  tunnelOpened(role: 'relay'): void;
  tunnelClosed(role: 'relay'): void;
  /** An outbound stream to `upstream` opened, `connectSeconds` after its connection was accepted. */
  upstreamStreamOpened(upstream: string, connectSeconds: number): void;
  /** An outbound stream to `upstream` closed after `durationSeconds` open. */
  upstreamStreamClosed(upstream: string, durationSeconds: number): void;
  /** A connection to `upstream` got no stream, or its stream was reset, by wire code name. */
  upstreamStreamFailed(upstream: string, codeName: string): void;
  /** A connection to `upstream` refused at open by a draining endpoint (no byte reached its app) was sent to another. */
  upstreamStreamRetried(upstream: string): void;
  certExpiry(expiresAtMs: number): void;
  /** A certificate renewal that got no certificate: the control plane was away, refused, or did not answer in time. */
  certRenewalFailed(): void;
  /** A renewed certificate arrived. */
  certRenewed(): void;
  configVersion(version: number): void;
  /** Text exposition for `/metrics`. */
  render(): Promise<{ contentType: string; body: string }>;
}
