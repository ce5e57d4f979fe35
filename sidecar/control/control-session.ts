import { EventEmitter } from 'node:events';
import type { ConnectionOptions } from 'node:tls';
import type { Logger } from 'pino';
import WebSocket from 'ws';
import type { ControlPlaneMessage, SidecarMessage } from '../../proto/control.js';
import { decodeControlPlaneMessage, encodeControlMessage, MAX_CONTROL_MESSAGE_BYTES, SIDECAR_CHANNEL_PATH } from '../../proto/control.js';
import { reportIntervalFromHeaders } from '../../proto/control.js';
import { TrellisError } from '../../proto/errors.js';
import { controlPlaneSpiffeId, uriSansOf } from '../../proto/spiffe.js';
import type { MeshConfig } from '../config/mesh-config.js';
import { typedEntry } from '../config/entries.js';
import type { Credentials } from '../identity/credentials.js';

const MIN_RECONNECT_DELAY_MS = 200;
const MAX_RECONNECT_DELAY_MS = 5000;

export interface ControlSessionInit {
  /** Control-plane URLs (`https://…`), tried in turn. */
  urls: string[];
  credentials: Credentials;
  config: MeshConfig;
  logger: Logger;
  /** The first message on every channel: a sidecar's `register` or a gateway's `register-gateway`. */
  registration: Extract<SidecarMessage, { type: 'register' | 'register-gateway' }>;
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

  constructor(init: ControlSessionInit) {
    super();
    this.#init = init;
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
      this.send(this.#init.registration);
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
    socket.on('error', (error) => logger.debug({ controlPlane: base, err: error.message }, 'control plane channel error'));
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

  #onMessage(message: ControlPlaneMessage): void {
    const { config, credentials, logger } = this.#init;
    switch (message.type) {
      case 'snapshot':
        config.applySnapshot(message.version, message.entries.map(([key, value]) => typedEntry(key, value)));
        this.send({ type: 'ack', version: config.version });
        break;
      case 'delta':
        if (!config.applyDelta(message.version, message.baseVersion, message.changes.map(([key, value]) => ({ key, entry: value === null ? undefined : typedEntry(key, value) })))) {
          // A gap in the versions: reconnecting brings a fresh snapshot.
          logger.warn({ have: config.version, base: message.baseVersion }, 'config delta out of order; resyncing');
          this.#socket?.close(1000, 'resync');
          return;
        }
        this.send({ type: 'ack', version: config.version });
        break;
      case 'certificate':
        credentials.replace({ certPem: message.certPem, caPems: message.caPems, expiresAt: message.expiresAt });
        this.emit('certificate');
        break;
      case 'error':
        logger.error({ code: message.code, err: message.message }, 'control plane reported an error');
        break;
    }
  }
}
