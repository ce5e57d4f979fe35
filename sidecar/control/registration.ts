import type { RegisterMessage } from '../../proto/control.js';

/**
 * The `register` message of a sidecar, sent again on every (re)connect of its control
 * session. `healthy` is read each time the message is encoded, so the control plane learns the
 * app's current verdict with the registration itself and never marks the endpoint healthy on
 * the strength of a verdict the sidecar no longer holds (see PROTOCOL.md, "Sidecar channel").
 */
export function sidecarRegistration(fields: Omit<RegisterMessage, 'type' | 'healthy'>, isHealthy: () => boolean): RegisterMessage {
  return {
    type: 'register',
    ...fields,
    get healthy() {
      return isHealthy();
    },
  };
}
