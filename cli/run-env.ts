/** Hosts a command under `trellis run` always reaches directly, never through the proxy. */
export const LOCAL_NO_PROXY_HOSTS = ['localhost', '127.0.0.1', '::1'] as const;

/** Variables of the parent that the command must not inherit: the join token is the sidecar's secret. */
const WITHHELD_VARIABLES = ['TRELLIS_JOIN_TOKEN'];

/** The variable that tells a command where an upstream is: `TRELLIS_UPSTREAM_<SERVICE>`, `-` as `_`. */
export function upstreamVariableName(service: string): string {
  return `TRELLIS_UPSTREAM_${service.toUpperCase().replaceAll('-', '_')}`;
}

export interface MeshEnvironmentInit {
  /** The parent's environment, passed on. */
  inherited: NodeJS.ProcessEnv;
  /** Bound upstream listeners: service and `host:port`. */
  upstreams: readonly { service: string; address: string }[];
  /** The proxy port, `host:port`. */
  proxyAddress: string;
}

/**
 * The environment of a command under `trellis run`: the parent's, plus where each upstream
 * listens, plus the proxy variables that proxy-aware clients (curl, Python, Go, Java, …) read
 * in one case or the other. `NO_PROXY` keeps the parent's entries (a way for users to let
 * some hosts bypass the mesh) and adds loopback, so local calls, upstream ports included, stay
 * direct.
 */
export function meshEnvironment(init: MeshEnvironmentInit): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...init.inherited };
  for (const name of WITHHELD_VARIABLES) delete env[name];
  for (const upstream of init.upstreams) env[upstreamVariableName(upstream.service)] = upstream.address;
  const socksUrl = `socks5h://${init.proxyAddress}`;
  const httpUrl = `http://${init.proxyAddress}`;
  const noProxy = [...splitList(init.inherited['NO_PROXY']), ...splitList(init.inherited['no_proxy']), ...LOCAL_NO_PROXY_HOSTS];
  const proxyVariables: Record<string, string> = {
    ALL_PROXY: socksUrl,
    HTTP_PROXY: httpUrl,
    HTTPS_PROXY: httpUrl,
    NO_PROXY: [...new Set(noProxy)].join(','),
  };
  for (const [name, value] of Object.entries(proxyVariables)) {
    env[name] = value;
    env[name.toLowerCase()] = value;
  }
  return env;
}

function splitList(value: string | undefined): string[] {
  return (value ?? '')
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '');
}
