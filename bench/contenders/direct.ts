import type { Contender, RunningContender } from './contender.js';

/** No proxy at all: the client connects to the app itself. The floor every proxy is held to. */
export function createDirectContender(): Contender {
  return {
    id: 'direct',
    start: (appPort: number): Promise<RunningContender> => Promise.resolve({ clientPort: appPort, sides: undefined, serverSidePort: undefined, stop: () => Promise.resolve() }),
    close: () => Promise.resolve(),
  };
}
