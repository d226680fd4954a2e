// Host → service. Exact names first, then wildcards from the most specific suffix out, so
// `api.app.localhost` beats `*.app.localhost`, which beats `*.localhost`. Only configured names
// ever route: an address or an unknown name in a Host header reaches nothing.

import type { ServiceConfig } from './config.js';

export class Router {
  private readonly exact = new Map<string, ServiceConfig>();
  /** Keyed by the suffix after `*.`: `*.app.localhost` is stored under `app.localhost`. */
  private readonly wildcard = new Map<string, ServiceConfig>();

  constructor(readonly services: readonly ServiceConfig[]) {
    // Indexed loops: each reload builds a router of every host, before this is compiled, where
    // for-of's iterator calls cost ~3 times as much (1,500 hosts at 1,000 services).
    for (let i = 0; i < services.length; i++) {
      const service = services[i]!;
      for (let j = 0; j < service.hosts.length; j++) {
        const host = service.hosts[j]!;
        if (host.startsWith('*.')) this.wildcard.set(host.slice(2), service);
        else this.exact.set(host, service);
      }
    }
  }

  /** The service for a host already normalised by `hostOfAuthority` (sniff.ts), or undefined. */
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
