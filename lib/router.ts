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
  const bracketed = authority.startsWith('[');
  let host: string;
  /** Where the host ends and an optional `:port` starts. */
  let end: number;
  if (bracketed) {
    const close = authority.indexOf(']');
    if (close === -1) return undefined;
    host = authority.slice(1, close);
    if (isIP(host) !== 6) return undefined;
    end = close + 1;
  } else {
    const colon = authority.indexOf(':');
    end = colon === -1 ? authority.length : colon;
    host = authority.slice(0, end);
  }
  if (!isPortSuffix(authority, end)) return undefined;
  // This runs per request. Most names are lower-case reg-names already: checked in place (the
  // slice is slower to scan), they need neither toLowerCase() nor a second check.
  const lowerRegName = !bracketed && isRegName(authority, 0, end);
  if (!lowerRegName) host = host.toLowerCase();
  if (host.charCodeAt(host.length - 1) === 0x2e /* . */) host = host.slice(0, -1);
  if (host === '' || (!bracketed && !lowerRegName && !isRegName(host, 0, host.length))) return undefined;
  return host;
}

/** Whether `authority` from `at` is nothing, or `:` and at most five digits (`/^(:\d{0,5})?$/`). */
function isPortSuffix(authority: string, at: number): boolean {
  if (at === authority.length) return true;
  if (authority.length - at > 6 || authority.charCodeAt(at) !== 0x3a /* : */) return false;
  for (let i = at + 1; i < authority.length; i++) {
    const c = authority.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return false;
  }
  return true;
}

/** RFC 3986 reg-name characters, less percent-encoding (dev host names never need it), by char code. */
const REG_NAME = new Uint8Array(128);
for (const c of "abcdefghijklmnopqrstuvwxyz0123456789._~!$&'()*+,;=-") REG_NAME[c.charCodeAt(0)] = 1;

/** Whether `text` from `start` to `end` is all REG_NAME characters (`/^[a-z0-9._~!$&'()*+,;=-]*$/`). */
function isRegName(text: string, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c > 0x7f || REG_NAME[c] === 0) return false;
  }
  return true;
}
