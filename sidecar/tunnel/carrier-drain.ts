import type { MuxStream } from '../mux/index.js';

/** Registers a listener for the first TUNNEL_DRAIN of a tunnel; one that arrived already is passed at once. */
export type CarrierDrainWatch = (listener: (gateway: string) => void) => void;

/**
 * Watches tunnel stream `stream` for TUNNEL_DRAIN from the moment it is opened: the frame may
 * come while the end-to-end TLS inside is still shaking hands, before the link's session
 * exists to act on it, so the first one is kept for listeners that come later.
 */
export function watchCarrierDrain(stream: MuxStream): CarrierDrainWatch {
  let drainingGateway: string | undefined;
  const listeners: ((gateway: string) => void)[] = [];
  stream.on('tunnelDrain', (gateway: string) => {
    if (drainingGateway !== undefined) return;
    drainingGateway = gateway;
    for (const listener of listeners.splice(0)) listener(gateway);
  });
  return (listener) => {
    if (drainingGateway !== undefined) listener(drainingGateway);
    else listeners.push(listener);
  };
}
