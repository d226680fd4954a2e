// Host → service. Exact names first, then wildcards from the most specific suffix out, so
// `api.app.localhost` beats `*.app.localhost`, which beats `*.localhost`. Only configured names
// ever route: an address or an unknown name in a Host header reaches nothing.

import { isIP } from 'node:net';
import type { ServiceConfig } from './config.js';

export class Router {
  private readonly exact = new Map<string, ServiceConfig>();
  /** Keyed by the suffix after `*.`: `*.app.localhost` is stored under `app.localhost`. */
  private readonly wildcard = new Map<string, ServiceConfig>();

  constructor(readonly services: readonly ServiceConfig[]) {
    for (const service of services) {
      for (const host of service.hosts) {
        if (host.startsWith('*.')) this.wildcard.set(host.slice(2), service);
        else this.exact.set(host, service);
      }
    }
  }

  /** The service for a host already normalised by `hostOfAuthority`, or undefined. */
  route(host: string): ServiceConfig | undefined {
    const exact = this.exact.get(host);
    if (exact !== undefined || this.wildcard.size === 0) return exact;
    // Walk the parent names: a.b.c → b.c → c; a wildcard never matches its own bare suffix.
    for (let dot = host.indexOf('.'); dot !== -1; dot = host.indexOf('.', dot + 1)) {
      const service = this.wildcard.get(host.slice(dot + 1));
      if (service !== undefined) return service;
    }
    return undefined;
  }
}

/**
 * The host name of an HTTP authority (`Host` header or absolute-form target), lower-cased, without
 * port or trailing dot: `App.Localhost.:8080` → `app.localhost`. IPv6 literals lose their
 * brackets. Undefined when it is not a valid authority.
 */
export function hostOfAuthority(authority: string): string | undefined {
  let host: string;
  let rest: string;
  if (authority.startsWith('[')) {
    const close = authority.indexOf(']');
    if (close === -1) return undefined;
    host = authority.slice(1, close);
    if (isIP(host) !== 6) return undefined;
    rest = authority.slice(close + 1);
  } else {
    const colon = authority.indexOf(':');
    host = colon === -1 ? authority : authority.slice(0, colon);
    rest = colon === -1 ? '' : authority.slice(colon);
  }
  if (rest !== '' && !/^:\d{0,5}$/.test(rest)) return undefined;
  host = host.toLowerCase();
  if (host.endsWith('.')) host = host.slice(0, -1);
  // RFC 3986 reg-name characters, less percent-encoding: dev host names never need it.
  if (host === '' || (!authority.startsWith('[') && !/^[a-z0-9._~!$&'()*+,;=-]+$/.test(host))) return undefined;
  return host;
}
