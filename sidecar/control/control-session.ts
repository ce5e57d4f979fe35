import { EventEmitter } from 'node:events';
import type { ConnectionOptions } from 'node:tls';
import type { Logger } from 'pino';
import WebSocket from 'ws';
import type { ControlPlaneMessage, DeltaMessage, SidecarMessage, SnapshotMessage } from '../../proto/control.js';
import { CHANNEL_VERSION, decodeControlPlaneMessage, encodeControlMessage, MAX_CONTROL_MESSAGE_BYTES, MAX_RECONNECT_DELAY_MS, MAX_SERVICES_PER_SUBSCRIBE, reportIntervalFromHeaders, SIDECAR_CHANNEL_PATH } from '../../proto/control.js';
import { TrellisError } from '../../proto/errors.js';
import { controlPlaneSpiffeId, uriSansOf } from '../../proto/spiffe.js';
import type { MeshConfig } from '../config/mesh-config.js';
import { endpointServiceOf, typedEntry } from '../config/entries.js';
import type { ConfigSubscriptions } from '../config/subscriptions.js';
import type { Credentials } from '../identity/credentials.js';
import { leafRefusalAt } from '../identity/leaf-validity.js';

const MIN_RECONNECT_DELAY_MS = 200;

export interface ControlSessionInit {
  /** Control-plane URLs (`https://…`), tried in turn. */
  urls: string[];
  credentials: Credentials;
  config: MeshConfig;
  logger: Logger;
  /** The first message on every channel: a sidecar's `register` or a gateway's `register-gateway`. */
  registration: Extract<SidecarMessage, { type: 'register' | 'register-gateway' }>;
  /**
   * The services whose endpoints a sidecar wants (channel 2 scoped push). A gateway has none:
   * it is pushed everything.
   */
  subscriptions?: ConfigSubscriptions;
}

/**
 * The sidecar's channel to the control plane: WebSocket over mutual TLS, msgpack messages.
 * Registers the endpoint, applies the snapshot and the deltas that follow, acks versions, and
 * reconnects by itself (with back-off, across every URL) whenever the channel drops; the data
 * plane keeps serving with what it last had meanwhile. Emits 'connected' and 'disconnected'.
 */
export class ControlSession extends EventEmitter {
  readonly #init: ControlSessionInit;
  #socket: WebSocket | undefined;
  #attempt = 0;
  #reconnectTimer: NodeJS.Timeout | undefined;
  #stopped = false;
  #connected = false;
  #deregistered = false;
  #reportIntervalMs: number | undefined;
  /** Channel version of the current connection: 1 until the control plane says otherwise. */
  #channel = 1;
  /** Services named in this connection's register or subscribe messages. */
  readonly #requested = new Set<string>();
  /** The services this connection's register said were held in full at the resumed version. */
  #resumedServices: string[] = [];

  constructor(init: ControlSessionInit) {
    super();
    this.#init = init;
    const { subscriptions, config } = init;
    if (subscriptions !== undefined) {
      // From a cached config: what it holds of the wanted services is held in full at its version
      // (endpoints of services not held are never applied, so none are half-known).
      const cached = config.servicesWithEndpoints();
      config.forgetEndpoints([...cached].filter((service) => !subscriptions.wanted.has(service)));
      subscriptions.hold([...cached].filter((service) => subscriptions.wanted.has(service)));
      subscriptions.on('subscribe', () => this.#requestMissing());
      subscriptions.on('unsubscribe', (service: string) => {
        config.forgetEndpoints([service]);
        this.#requested.delete(service);
        if (this.#channel >= 2) this.send({ type: 'unsubscribe', services: [service] });
      });
    }
  }

  get connected(): boolean {
    return this.#connected;
  }

  /** How often the control plane of the current channel takes reports; `undefined`: it takes none (channel version 1). */
  get reportIntervalMs(): number | undefined {
    return this.#reportIntervalMs;
  }

  start(): void {
    this.#connect();
  }

  /** Sends a message if the channel is up; returns false when it is not. */
  send(message: SidecarMessage): boolean {
    if (this.#socket?.readyState !== WebSocket.OPEN) return false;
    this.#socket.send(encodeControlMessage(message));
    return true;
  }

  /**
   * Draining: asks the control plane to remove this endpoint now. The channel stays up (config
   * keeps arriving) but is not re-established, since registering again would undo this.
   */
  deregister(): void {
    this.#deregistered = true;
    this.send({ type: 'deregister' });
  }

  close(): void {
    this.#stopped = true;
    clearTimeout(this.#reconnectTimer);
    this.#socket?.terminate();
  }

  #connect(): void {
    const { urls, credentials, logger } = this.#init;
    const base = urls[this.#attempt % urls.length] ?? '';
    const { trustDomain, caPems, privateKeyPem, certPem } = credentials.current;
    const expectedId = controlPlaneSpiffeId(trustDomain);
    const url = new URL(SIDECAR_CHANNEL_PATH, base);
    url.protocol = 'wss:';
    const tlsOptions: ConnectionOptions = {
      ca: caPems,
      key: privateKeyPem,
      cert: certPem,
      checkServerIdentity: (_host, certificate) =>
        uriSansOf(certificate.subjectaltname).includes(expectedId)
          ? undefined
          : new TrellisError('TRELLIS_ERR_CONTROL_PLANE_IDENTITY', `${base} is not ${expectedId}`),
    };
    // ws hands these TLS options to tls.connect as they are (its typings for
    // checkServerIdentity are narrower than Node's).
    const socket = new WebSocket(url, {
      ...(tlsOptions as WebSocket.ClientOptions),
      maxPayload: MAX_CONTROL_MESSAGE_BYTES,
      handshakeTimeout: 10_000,
    });
    this.#socket = socket;
    socket.once('upgrade', (response) => (this.#reportIntervalMs = reportIntervalFromHeaders(response.headers)));
    socket.on('open', () => {
      if (this.#deregistered) {
        socket.close(1000, 'draining');
        return;
      }
      this.#attempt = 0;
      this.#connected = true;
      logger.info({ controlPlane: base }, 'control plane connected');
      this.send(this.#registration());
      this.emit('connected');
    });
    socket.on('message', (data: Buffer, isBinary: boolean) => {
      try {
        if (!isBinary) throw new TrellisError('TRELLIS_ERR_BAD_MESSAGE', 'control plane sent a text frame');
        this.#onMessage(decodeControlPlaneMessage(data));
      } catch (error) {
        logger.error({ err: (error as Error).message, code: (error as TrellisError).code }, 'bad message from control plane; reconnecting');
        socket.close(1008, 'bad message');
      }
    });
    socket.on('error', (error) => {
      // An HTTP answer instead of the upgrade (401, 403 REVOKED…) is the control plane refusing
      // this sidecar, which retrying will not change by itself: the operator must see it.
      // Anything else is the control plane being out of reach, told by 'disconnected'.
      if (error.message.startsWith('Unexpected server response')) logger.warn({ controlPlane: base, err: error.message }, 'control plane refused the channel');
      else logger.debug({ controlPlane: base, err: error.message }, 'control plane channel error');
    });
    socket.on('close', () => {
      if (this.#socket !== socket) return;
      this.#socket = undefined;
      if (this.#connected) {
        this.#connected = false;
        logger.warn({ controlPlane: base }, 'control plane disconnected; serving with the last config');
        this.emit('disconnected');
      }
      this.#scheduleReconnect();
    });
  }

  #scheduleReconnect(): void {
    if (this.#stopped || this.#deregistered) return;
    this.#attempt += 1;
    const exponential = Math.min(MAX_RECONNECT_DELAY_MS, MIN_RECONNECT_DELAY_MS * 2 ** Math.min(this.#attempt, 10));
    // Jitter spreads the reconnects of many sidecars after a control-plane restart.
    const delayMs = exponential / 2 + Math.random() * (exponential / 2);
    this.#reconnectTimer = setTimeout(() => this.#connect(), delayMs);
    this.#reconnectTimer.unref();
  }

  /**
   * The register message with what channel 2 adds: the wanted services, and the version held
   * with the services held in full at it, so that a replica that can gives a delta from there.
   */
  #registration(): SidecarMessage {
    const { registration, subscriptions, config } = this.#init;
    this.#channel = 1;
    this.#requested.clear();
    const resumeVersion = config.version > 0 ? config.version : undefined;
    if (registration.type === 'register-gateway') {
      return { ...registration, channel: CHANNEL_VERSION, ...(resumeVersion === undefined ? {} : { resume: { version: resumeVersion } }) };
    }
    const services = [...(subscriptions?.wanted ?? [])];
    for (const service of services) this.#requested.add(service);
    this.#resumedServices = resumeVersion === undefined ? [] : (subscriptions?.held() ?? []);
    const resume = resumeVersion === undefined ? {} : { resume: { version: resumeVersion, services: this.#resumedServices } };
    return { ...registration, channel: CHANNEL_VERSION, services, ...resume };
  }

  /** Subscribes to wanted services not yet asked for on this connection (channel 2 only). */
  #requestMissing(): void {
    const { subscriptions } = this.#init;
    if (subscriptions === undefined || this.#channel < 2 || !this.#connected) return;
    const missing = [...subscriptions.wanted].filter((service) => !this.#requested.has(service));
    for (let i = 0; i < missing.length; i += MAX_SERVICES_PER_SUBSCRIBE) {
      const batch = missing.slice(i, i + MAX_SERVICES_PER_SUBSCRIBE);
      if (this.send({ type: 'subscribe', services: batch })) for (const service of batch) this.#requested.add(service);
    }
  }

  #onSnapshot(message: SnapshotMessage): void {
    const { config, subscriptions } = this.#init;
    this.#channel = message.channel ?? 1;
    config.applySnapshot(message.version, message.entries.map(([key, value]) => typedEntry(key, value)));
    if (this.#channel >= 2) subscriptions?.holdExactly(message.subscribed ?? []);
    else subscriptions?.holdAll();
    this.send({ type: 'ack', version: config.version });
    this.#requestMissing();
  }

  #onDelta(message: DeltaMessage): void {
    const { config, subscriptions, logger } = this.#init;
    // A delta that names the channel answers a resume: what is held is what the register said
    // (a channel-1 control plane before may have pushed everything).
    if (message.channel !== undefined) {
      this.#channel = message.channel;
      if (this.#channel >= 2) subscriptions?.holdExactly(this.#resumedServices);
    }
    const replaced = message.subscribed ?? [];
    // Endpoint changes of a service not held (an unsubscribe crossing them) are not applied:
    // they would leave it half-known.
    const applies = (key: string): boolean => {
      const service = endpointServiceOf(key);
      return service === undefined || this.#channel < 2 || subscriptions === undefined || subscriptions.holds(service) || replaced.includes(service);
    };
    const changes = message.changes.filter(([key]) => applies(key)).map(([key, value]) => ({ key, entry: value === null ? undefined : typedEntry(key, value) }));
    if (!config.applyDelta(message.version, message.baseVersion, changes, this.#channel >= 2 ? replaced : [])) {
      logger.warn({ have: config.version, base: message.baseVersion, version: message.version }, 'config delta does not follow the version held; asking for a snapshot');
      if (this.#channel >= 2) this.send({ type: 'nack', version: message.version, haveVersion: config.version });
      // A channel-1 control plane knows no nack: reconnecting brings a fresh snapshot.
      else this.#socket?.close(1000, 'resync');
      return;
    }
    if (this.#channel >= 2) subscriptions?.hold(replaced);
    this.send({ type: 'ack', version: config.version });
    this.#requestMissing();
  }

  #onMessage(message: ControlPlaneMessage): void {
    const { credentials, logger } = this.#init;
    switch (message.type) {
      case 'snapshot':
        this.#onSnapshot(message);
        break;
      case 'delta':
        this.#onDelta(message);
        break;
      case 'certificate': {
        const refusal = leafRefusalAt(message.certPem, Date.now());
        if (refusal !== undefined) {
          // The certificate in use stays; the renewer counts the failure and asks again.
          logger.warn({ code: refusal.code, reason: refusal.message }, 'renewed certificate refused; keeping the current one');
          this.emit('certificate-refused', refusal);
          break;
        }
        credentials.replace({ certPem: message.certPem, caPems: message.caPems, expiresAt: message.expiresAt });
        this.emit('certificate');
        break;
      }
      case 'error':
        logger.error({ code: message.code, err: message.message }, 'control plane reported an error');
        break;
    }
  }
}
