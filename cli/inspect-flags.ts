import { connectAdmin } from './admin-client.js';
import type { AdminClient } from './admin-client.js';
import { controlPlaneUrls } from './args.js';

/** Flags of the commands that read the mesh's state from the control plane. */
export const inspectFlagOptions = {
  'control-plane': { type: 'string' },
  'admin-token-file': { type: 'string' },
  json: { type: 'boolean' },
} as const;

/** Help lines of {@link inspectFlagOptions}. */
export const inspectFlagsHelp = `  --control-plane URL      https://HOST:PORT (or set TRELLIS_CONTROL_PLANE)
  --admin-token-file FILE  the admin token (or set TRELLIS_ADMIN_TOKEN)
  --json                   print JSON for scripts instead of a table`;

/** Connects to the control plane named by the flags (or the environment). */
export function connectFromFlags(values: { 'control-plane'?: string; 'admin-token-file'?: string }): Promise<AdminClient> {
  return connectAdmin(controlPlaneUrls(values['control-plane'])[0] as string, values['admin-token-file']);
}

/** Prints `value` as indented JSON and a newline. */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}
