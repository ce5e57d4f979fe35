import { TrellisError } from '../../proto/errors.js';
import type { LinkScheme, LinkUrl } from './link-url.js';
import { formatLinkUrl, parseLinkUrl } from './link-url.js';
import type { AuthenticatedLink, LinkListener, LinkTarget, LinkTransport } from './transport.js';

/** The transport of each scheme a process speaks; a scheme left out is refused. */
export type TransportsByScheme = Partial<Record<LinkScheme, LinkTransport>>;

/**
 * Picks the transport by the scheme of the link address: `tls://` (or a bare `HOST:PORT`, as
 * version 1 advertised it) and `wss://`. Callers keep one transport and need not know which
 * kinds of link a peer advertises.
 */
export class SchemeLinkTransport implements LinkTransport {
  // A map, not the object passed in: a scheme read from outside never reaches a prototype key.
  readonly #transports: Map<string, LinkTransport>;

  constructor(transports: TransportsByScheme) {
    this.#transports = new Map(Object.entries(transports).filter((entry): entry is [string, LinkTransport] => entry[1] !== undefined));
  }

  /** @throws TrellisError `TRELLIS_ERR_BAD_ADDRESS` (as a rejection) for an unknown scheme or one without a transport. */
  async dial(target: LinkTarget): Promise<AuthenticatedLink> {
    const url = parseLinkUrl(target.address);
    return this.#transportFor(url).dial(target);
  }

  /** @throws TrellisError `TRELLIS_ERR_BAD_ADDRESS` (as a rejection) for a scheme without a transport. */
  async listen(url: LinkUrl, onLink: (link: AuthenticatedLink) => void): Promise<LinkListener> {
    return this.#transportFor(url).listen(url, onLink);
  }

  #transportFor(url: LinkUrl): LinkTransport {
    const transport = this.#transports.get(url.scheme);
    if (transport === undefined) throw new TrellisError('TRELLIS_ERR_BAD_ADDRESS', `no link transport for ${url.scheme}:// here (${formatLinkUrl(url)})`);
    return transport;
  }
}
