/**
 * Revocation as mesh-wide config entries (`revoked/sidecar/<id>`, `revoked/service/<service>`):
 * every sidecar and gateway gets them and closes its links to what they cover; the control
 * plane refuses the revoked identity's channel, renewals and, for a service, joins.
 */
import { setTimeout as delay } from 'node:timers/promises';
import type { EndpointValue, RevocationsView, RevokedServiceValue, RevokedSidecarValue } from '../proto/control.js';
import { ControlErrorCode, ENDPOINT_KEY_PREFIX, REVOKED_KEY_PREFIX, REVOKED_SERVICE_KEY_PREFIX, REVOKED_SIDECAR_KEY_PREFIX, endpointKey, revokedServiceKey, revokedSidecarKey } from '../proto/control.js';
import type { CertificateHolder, RevocationLookup } from '../proto/revocation.js';
import { revocationOf } from '../proto/revocation.js';
import { CLOCK_SKEW_ALLOWANCE_MS } from './ca.js';
import type { ConfigState } from './config-state.js';
import { ApiError } from './errors.js';
import type { ChannelIdentity } from './peer-identity.js';

/** Reads and changes the revocation entries of the config. */
export class RevocationService implements RevocationLookup {
  readonly #config: ConfigState;
  readonly #now: () => number;
  readonly #listeners: (() => void)[] = [];

  constructor(config: ConfigState, now: () => number) {
    this.#config = config;
    this.#now = now;
    // Through the config, not the calls here: another replica's revocation arrives the same way.
    config.onChange((_version, changes) => {
      if (changes.some(([key]) => key.startsWith(REVOKED_KEY_PREFIX))) for (const listener of this.#listeners) listener();
    });
  }

  /** Calls `listener` after every change of a revocation entry. */
  onChange(listener: () => void): void {
    this.#listeners.push(listener);
  }

  sidecar(sidecarId: string): RevokedSidecarValue | undefined {
    return this.#config.get(revokedSidecarKey(sidecarId)) as RevokedSidecarValue | undefined;
  }

  service(service: string): RevokedServiceValue | undefined {
    return this.#config.get(revokedServiceKey(service)) as RevokedServiceValue | undefined;
  }

  /** Why the certificate `identity` came with is revoked, or undefined when it is not. */
  refusalFor(identity: ChannelIdentity): string | undefined {
    const holder: CertificateHolder =
      identity.kind === 'sidecar'
        ? { id: identity.sidecarId, service: identity.service, notBeforeMs: identity.notBeforeMs }
        : { id: identity.gatewayId, service: undefined, notBeforeMs: identity.notBeforeMs };
    return revocationOf(this, holder);
  }

  /** @throws ApiError `TRELLIS_ERR_REVOKED` (403) while `service` is revoked and refuses joins. */
  assertMayJoin(service: string): void {
    if (this.service(service)?.refuseJoins === true) {
      throw new ApiError(ControlErrorCode.REVOKED, `service ${service} is revoked; joins are refused until an operator allows them again`, 403);
    }
  }

  view(): RevocationsView {
    const sidecars = this.#config.list(REVOKED_SIDECAR_KEY_PREFIX).map(([, value]) => value as RevokedSidecarValue);
    const services = this.#config.list(REVOKED_SERVICE_KEY_PREFIX).map(([, value]) => value as RevokedServiceValue);
    sidecars.sort((a, b) => a.sidecarId.localeCompare(b.sidecarId));
    services.sort((a, b) => a.service.localeCompare(b.service));
    return { sidecars, services, version: this.#config.version };
  }

  /**
   * Revokes sidecar (or gateway) `sidecarId` and removes its endpoints in the same step, so
   * that no sidecar picks it while its lease would run out. Revoking again changes nothing.
   */
  async revokeSidecar(sidecarId: string): Promise<RevocationsView> {
    const endpoints = this.#endpoints((endpoint) => endpoint.sidecarId === sidecarId);
    if (this.sidecar(sidecarId) === undefined) {
      await this.#config.apply([[revokedSidecarKey(sidecarId), { sidecarId, revokedAt: this.#now() }], ...endpoints.map(removal)]);
    }
    return { ...this.view(), known: endpoints.length > 0 };
  }

  /**
   * Revokes every certificate `service` holds now and refuses its joins, removing its endpoints
   * in the same step. Revoking again moves the cut-off to now and refuses joins again.
   */
  async revokeService(service: string): Promise<RevocationsView> {
    const endpoints = this.#endpoints((endpoint) => endpoint.service === service);
    const revokedAt = this.#now();
    // Leaves are backdated by the skew allowance: one issued before now has a notBefore at or
    // before this. X.509 keeps whole seconds, so one issued later in the same second has one
    // too: allowJoins waits for that second to pass.
    const value: RevokedServiceValue = { service, revokedAt, notBeforeCutoff: revokedAt - CLOCK_SKEW_ALLOWANCE_MS, refuseJoins: true };
    await this.#config.apply([[revokedServiceKey(service), value], ...endpoints.map(removal)]);
    return { ...this.view(), known: endpoints.length > 0 };
  }

  /**
   * Lets a revoked service join again; certificates issued before its revocation stay revoked.
   * @throws ApiError `TRELLIS_ERR_NOT_FOUND` (404) when the service is not revoked.
   */
  async allowJoins(service: string): Promise<RevocationsView> {
    const current = this.service(service);
    if (current === undefined) throw new ApiError(ControlErrorCode.NOT_FOUND, `service ${service} is not revoked`, 404);
    // A leaf's notBefore is cut to the second: one signed in the second of the revocation would
    // fall at the cut-off and be refused as revoked by every peer. Joins open after that second.
    const joinsFromMs = Math.floor(current.revokedAt / 1000) * 1000 + 1000;
    const waitMs = joinsFromMs - this.#now();
    if (waitMs > 0) await delay(waitMs);
    await this.#config.apply([[revokedServiceKey(service), { ...current, refuseJoins: false }]]);
    return this.view();
  }

  #endpoints(matches: (endpoint: EndpointValue) => boolean): EndpointValue[] {
    return this.#config
      .list(ENDPOINT_KEY_PREFIX)
      .map(([, value]) => value as EndpointValue)
      .filter(matches);
  }
}

function removal(endpoint: EndpointValue): [string, null] {
  return [endpointKey(endpoint.service, endpoint.sidecarId), null];
}
