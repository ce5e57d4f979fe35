/**
 * The proxy port: SOCKS5 and HTTP proxy handshakes (pure state machines) in front of the
 * outbound path, for apps that reach services by name (`<service>.mesh`).
 */
export { startProxyListener, DEFAULT_PROXY_HANDSHAKE_TIMEOUT_MS } from './proxy-listener.js';
export type { ProxyListener, ProxyListenerInit } from './proxy-listener.js';
export type { ConnectionForwarder, ProxyRefusal } from './proxy-connection.js';
export { ProxyError } from './errors.js';
export type { ProxyErrorCode } from './errors.js';
export type { HandshakeStep, ProxyHandshake, ProxyRequest, ProxyTarget } from './handshake.js';
export { Socks5Handshake, Socks5Reply, MAX_SOCKS5_GREETING_BYTES, MAX_SOCKS5_REQUEST_BYTES } from './socks5-handshake.js';
export { HttpProxyHandshake, MAX_HTTP_HEAD_BYTES, originFormHead } from './http-handshake.js';
export { parseRequestHead, MAX_HTTP_HEADER_COUNT } from './http-request-head.js';
export { meshServiceOf, MESH_DOMAIN_SUFFIX } from './mesh-name.js';
