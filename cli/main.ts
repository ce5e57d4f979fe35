import { TrellisError, ValidationError } from '../proto/errors.js';
import { closest, UsageError } from './args.js';
import { exitWhenWritten } from './exit.js';
import { tuneGarbageCollectorForForwarding } from './gc-tuning.js';
import { packageVersion } from './version.js';

const usage = `Usage: trellis <command> [flags]

Commands:
  control-plane   run the control plane (CA, registry, config)
  sidecar         run a sidecar next to a service instance
  gateway         run a gateway that relays tunnels between zones
  run             run a command next to its own sidecar (trellis run [flags] -- CMD ARGS...)
  token           create, list or revoke join tokens (for a service or a gateway)
  policy          allow or deny calls between services; policy list shows them
  revoke          revoke a sidecar's or a service's certificates
  status          check the mesh and say what is wrong (exit 1 if anything is)
  services        list the registered services
  endpoints       list the endpoints of one service
  ca              rotate the mesh's root certificate, show its status

Run 'trellis help <command>' (or 'trellis <command> --help') for a command's flags and examples,
'trellis --version' for the version.

Example:
  trellis control-plane --data-dir ./cp-data
  trellis token create --service api --control-plane https://127.0.0.1:7400 --admin-token-file ./cp-data/admin.token`;

// Each command is loaded only when run: a sidecar's heap then holds no control-plane code
// (the CA's libraries among it), which keeps its garbage collections short. The commands that
// forward traffic tune V8 before their code loads (cli/gc-tuning.ts says why it must be first).
const commands: Record<string, (args: string[]) => Promise<number>> = {
  'control-plane': async (args) => (await import('./commands/control-plane.js')).controlPlaneCommand(args),
  sidecar: async (args) => {
    tuneGarbageCollectorForForwarding();
    return (await import('./commands/sidecar.js')).sidecarCommand(args);
  },
  gateway: async (args) => {
    tuneGarbageCollectorForForwarding();
    return (await import('./commands/gateway.js')).gatewayCommand(args);
  },
  run: async (args) => {
    tuneGarbageCollectorForForwarding();
    return (await import('./commands/run.js')).runCommand(args);
  },
  token: async (args) => (await import('./commands/token.js')).tokenCommand(args),
  policy: async (args) => (await import('./commands/policy.js')).policyCommand(args),
  revoke: async (args) => (await import('./commands/revoke.js')).revokeCommand(args),
  status: async (args) => (await import('./commands/status.js')).statusCommand(args),
  services: async (args) => (await import('./commands/services.js')).servicesCommand(args),
  endpoints: async (args) => (await import('./commands/services.js')).endpointsCommand(args),
  ca: async (args) => (await import('./commands/ca.js')).caCommand(args),
};

/** Raised for a command name nobody knows: its hint points at the top-level help. */
class UnknownCommandError extends UsageError {}

async function main(argv: string[]): Promise<number> {
  const [name, ...args] = argv;
  if (name === '--version' || name === '-V' || name === 'version') {
    process.stdout.write(`trellis ${packageVersion()}\n`);
    return 0;
  }
  if (name === 'help' && args[0] !== undefined) return main([args[0], '--help']);
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    (name === undefined ? process.stderr : process.stdout).write(`${usage}\n`);
    return name === undefined ? 2 : 0;
  }
  const command = commands[name];
  if (command === undefined) {
    const suggestion = closest(name, Object.keys(commands));
    throw new UnknownCommandError(`unknown command "${name}"${suggestion === undefined ? '' : ` (did you mean "${suggestion}"?)`}`);
  }
  return command(args);
}

main(process.argv.slice(2)).then(
  (code) => exitWhenWritten(code),
  (error: unknown) => {
    // A malformed address comes from a flag here (the parsers name it): a usage mistake too.
    if (error instanceof UsageError || (error instanceof ValidationError && (error.code === 'TRELLIS_ERR_BAD_ADDRESS' || error.code === 'TRELLIS_ERR_CONFIG_FILE'))) {
      const help = error instanceof UnknownCommandError ? 'trellis --help' : `trellis help ${process.argv[2] ?? ''}`;
      process.stderr.write(`trellis: ${error.message} (see '${help}') [${error.code}]\n`);
      exitWhenWritten(2);
      return;
    }
    if (error instanceof TrellisError) {
      process.stderr.write(`trellis: ${error.message} [${error.code}]\n`);
    } else if ((error as NodeJS.ErrnoException).code === 'EADDRINUSE') {
      const e = error as NodeJS.ErrnoException & { address?: string; port?: number };
      process.stderr.write(`trellis: address ${e.address ?? ''}:${e.port ?? ''} is already in use [EADDRINUSE]\n`);
    } else {
      process.stderr.write(`trellis: ${error instanceof Error ? error.message : String(error)}\n`);
    }
    exitWhenWritten(1);
  },
);
