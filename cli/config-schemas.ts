/** What each command's `--config` file checks beyond "a string": the same parsers as its flags. */
import { z } from 'zod';
import { SERVICE_NAME_PATTERN } from '../proto/control.js';
import { parseLinkUrl } from '../sidecar/links/link-url.js';
import { parseHostPort } from '../sidecar/net/address.js';
import { parseControlPlaneUrl, parseDurationMs } from './args.js';
import type { ConfigFileSpec } from './config-file.js';
import { checkedText } from './config-file.js';

const hostPort = checkedText((text) => parseHostPort(text), 'HOST:PORT');
const linkUrl = checkedText((text) => parseLinkUrl(text), 'HOST:PORT, tls://HOST:PORT or wss://HOST:PORT[/PATH]');
const controlPlaneUrl = checkedText((text) => parseControlPlaneUrl(text), 'an https:// URL like https://127.0.0.1:7400');
const duration = checkedText((text) => parseDurationMs(text, 'duration'), 'a duration like 90s, 15m, 24h or 7d');
const name = z.string().regex(SERVICE_NAME_PATTERN, 'expected a name of lowercase letters, digits and inner dashes, at most 63');
const logFormat = z.enum(['json', 'pretty']);
const workers = z.union([z.number().int().min(1), z.literal('auto')], 'expected a whole number or auto');

/** `upstreams: [{ service: db, address: 127.0.0.1:9000 }]`, the file's form of `--upstream db=127.0.0.1:9000`. */
const upstreams = z.array(z.strictObject({ service: name, address: hostPort }));

export const sidecarConfigFile: ConfigFileSpec = {
  fields: {
    service: name,
    'control-plane': controlPlaneUrl,
    listen: linkUrl,
    advertise: linkUrl,
    app: hostPort,
    proxy: hostPort,
    admin: hostPort,
    zone: name,
    weight: z.number('expected a whole number 1..1000').int('expected a whole number 1..1000').min(1, 'expected a whole number 1..1000').max(1000, 'expected a whole number 1..1000'),
    'drain-timeout': duration,
    'drain-delay': duration,
    'connect-timeout': duration,
    'log-format': logFormat,
    workers,
    upstreams,
  },
  toArgs: {
    upstreams: (value) => (value as z.infer<typeof upstreams>).flatMap((upstream) => ['--upstream', `${upstream.service}=${upstream.address}`]),
  },
};

/** `upstreams: [{ service: db }, { service: api, address: 127.0.0.1:9000 }]`: `--upstream db --upstream api=…`. */
const runUpstreams = z.array(z.strictObject({ service: name, address: hostPort.optional() }));
const port = z.number('expected a port 1..65535').int('expected a port 1..65535').min(1, 'expected a port 1..65535').max(65535, 'expected a port 1..65535');

export const runConfigFile: ConfigFileSpec = {
  fields: {
    service: name,
    'control-plane': controlPlaneUrl,
    'app-port': port,
    listen: linkUrl,
    advertise: linkUrl,
    admin: hostPort,
    'log-format': logFormat,
    workers,
    upstreams: runUpstreams,
  },
  toArgs: {
    upstreams: (value) =>
      (value as z.infer<typeof runUpstreams>).flatMap((upstream) => ['--upstream', upstream.address === undefined ? upstream.service : `${upstream.service}=${upstream.address}`]),
  },
};

export const controlPlaneConfigFile: ConfigFileSpec = {
  fields: {
    listen: hostPort,
    'cert-ttl': duration,
    'lease-ttl': duration,
    store: z.enum(['file', 'etcd']),
    'log-format': logFormat,
  },
};

export const gatewayConfigFile: ConfigFileSpec = {
  fields: {
    zone: name,
    name,
    'control-plane': controlPlaneUrl,
    listen: linkUrl,
    advertise: linkUrl,
    admin: hostPort,
    'connect-timeout': duration,
    'drain-timeout': duration,
    'log-format': logFormat,
  },
};
