// Listen and upstream addresses: reading and showing them, which of them clash, how a listener is
// reached, and the URL a host name is opened at. One home, so the rules (a wildcard is reached on
// loopback, `:80` is left out of a URL) are said once.

import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';

export interface ListenAddress {
  /** An IP address or a name that resolves to one; IPv6 without brackets. */
  host: string;
  /** 0 lets the OS choose (useful in tests); the bound port is reported at start. */
  port: number;
}

/** Parses `"host:port"`, `"[::1]:port"`, `"8080"` or `8080` (which means 127.0.0.1:8080); a string says what is wrong. */
export function parseListenAddress(value: unknown): ListenAddress | string {
  if (typeof value === 'number') {
    return isPort(value, true) ? { host: '127.0.0.1', port: value } : `${value} is not a port number (0–65535)`;
  }
  if (typeof value !== 'string') return 'expected "host:port" or a port number';
  const text = value.trim();
  if (/^\d+$/.test(text)) return parseListenAddress(Number(text));
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d+)$/.exec(text);
  if (!match) return `"${value.length > 80 ? `${value.slice(0, 80)}…` : value}" is not "host:port", "[::1]:port" or a port number`;
  const host = match[1] ?? match[2]!;
  if (match[1] !== undefined && isIP(host) !== 6) return `"${host}" in brackets is not an IPv6 address`;
  const port = Number(match[3]);
  if (!isPort(port, true)) return `${port} is not a port number (0–65535)`;
  return { host, port };
}

/** The name a listen address is shown by: `127.0.0.1:8080`, `[::1]:8080`. */
export function formatAddress(address: ListenAddress): string {
  return isIP(address.host) === 6 ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`;
}

/** Whether only this machine can reach a listener on `host` (anything else gets a warning). */
export function isLoopback(host: string): boolean {
  return host === '::1' || host.startsWith('127.') || host === 'localhost';
}

/** The host to connect to for a listener on `host`: a wildcard (`0.0.0.0`, `::`) is reached on loopback of its family. */
export function hostToDial(host: string): string {
  return host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host;
}

/** `:PORT` as a URL writes it: nothing for port 80 (or no port known), else `:8080`. */
export function portSuffix(port: number | undefined): string {
  return port === undefined || port === 80 ? '' : `:${port}`;
}

/** `http://HOST` on `port`, as a browser opens it (`http://web.localhost:8080`, no `:80`). */
export function serviceUrl(host: string, port: number | undefined): string {
  return `http://${host}${portSuffix(port)}`;
}

/** Where the top-level listen addresses being checked come from: they are named so in errors. */
export type ListenOrigin = 'file' | 'cli' | 'running';

/** What findAddressClash looks at: a Config, or a part of one. */
export interface AddressPlan {
  listen: readonly ListenAddress[];
  /** TLS listeners (`https`); none when absent. */
  https?: readonly ListenAddress[];
  services: readonly { name: string; listen: readonly ListenAddress[]; port: number | undefined; upstream: string | undefined }[];
}

/**
 * Every service's own `listen` address with its service, in config order. An indexed loop that
 * skips the services without one (most): a reload runs this over all 1,000 services a few times
 * in a process, before it is compiled, where for-of's iterator calls cost ~3 times as much.
 */
export function serviceListenAddresses<S extends { listen: readonly ListenAddress[] }>(services: readonly S[]): { service: S; address: ListenAddress }[] {
  const found: { service: S; address: ListenAddress }[] = [];
  for (let i = 0; i < services.length; i++) {
    const service = services[i]!;
    if (service.listen.length > 0) for (const address of service.listen) found.push({ service, address });
  }
  return found;
}

/**
 * Two listeners on one address, or a service whose upstream is one of norikae's own listeners
 * (every connection would loop back into norikae until it runs out of descriptors): the first
 * such mistake, with the config key to point at (none when only `--listen` or the running
 * listeners are to blame). `origin` says what `config.listen` holds: the file's `listen`, the
 * command line's `--listen`, or, on a reload, the addresses the running norikae has bound.
 * Upstreams are compared as the kernel reads them (canonicalHost: `127.1` is 127.0.0.1), and
 * names as `resolved` says they resolve (the start, `check` and reloads resolve them first).
 */
export function findAddressClash(
  config: AddressPlan,
  origin: ListenOrigin = 'file',
  /** What names resolve to, and this machine's own addresses (see resolveAddressPlan); without them, names are compared as spelt. */
  resolved: ResolvedAddresses = { names: new Map(), own: new Set() },
): { path: string[] | undefined; message: string } | undefined {
  const topWhat = { file: 'the `listen` of norikae-splice', cli: 'the --listen of norikae-splice', running: 'a listener of the running norikae-splice' }[origin];
  const listeners = [
    ...config.listen.map((address) => ({ address, path: origin === 'file' ? ['listen'] : undefined, what: topWhat })),
    ...(config.https ?? []).map((address) => ({
      address, path: origin === 'running' ? undefined : ['https'], what: origin === 'running' ? topWhat : 'the `https` of norikae-splice',
    })),
    ...serviceListenAddresses(config.services).map(({ service, address }) => ({
      address, path: ['service', service.name, 'listen'], what: `the \`listen\` of service "${service.name}"`,
    })),
  ].filter(({ address }) => address.port !== 0);
  for (let i = 0; i < listeners.length; i++) {
    for (let j = 0; j < i; j++) {
      const [earlier, later] = [listeners[j]!, listeners[i]!];
      if (earlier.address.port === later.address.port && listenersOverlap(earlier.address.host, later.address.host)) {
        return {
          path: later.path ?? earlier.path,
          message: `${formatAddress(later.address)} is also ${earlier.what} (${formatAddress(earlier.address)}); each address can be listened on once`,
        };
      }
    }
  }
  const ports = new Set(listeners.map(({ address }) => address.port));
  // Indexed, as in serviceListenAddresses.
  for (let i = 0; i < config.services.length; i++) {
    const service = config.services[i]!;
    // Only a listener on the service's port can be reached by it.
    if (service.port === undefined || !ports.has(service.port)) continue;
    const upstreams = service.upstream === undefined ? ['127.0.0.1', '::1'] : resolved.names.get(canonicalHost(service.upstream)) ?? [service.upstream];
    const own = listeners.find(({ address }) => address.port === service.port && upstreams.some((host) => listenerReaches(address.host, host, resolved)));
    if (own !== undefined) {
      return {
        path: ['service', service.name, 'port'],
        message: `port ${service.port} is ${own.what} (${formatAddress(own.address)}), so "${service.name}" would connect back to norikae-splice; `
          + 'give its dev server a port of its own',
      };
    }
  }
  return undefined;
}

/**
 * A host as the address the kernel takes it for, where that needs no lookup: `Localhost` →
 * 127.0.0.1; the numeric forms inet_aton reads (`127.1`, `2130706433`, `0x7f.1`) → 127.0.0.1;
 * IPv6 in full (`0:0:0:0:0:0:0:1`) → ::1; IPv4-mapped (`::ffff:127.0.0.1`) → the IPv4 address.
 * Another name stays a name, lower-cased and without its trailing dot.
 */
export function canonicalHost(host: string): string {
  const name = host.toLowerCase().replace(/\.$/, '');
  if (name === 'localhost') return '127.0.0.1';
  if (isIP(name) === 6) {
    let full: string;
    try {
      full = new URL(`http://[${name.replace(/%.*$/, '')}]/`).hostname.slice(1, -1);
    } catch {
      return name;
    }
    // `::ffff:7f00:1`, as the URL parser writes a mapped address.
    const hex = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(full);
    if (hex) {
      const [high, low] = [parseInt(hex[1]!, 16), parseInt(hex[2]!, 16)];
      return `${high >> 8}.${high & 255}.${low >> 8}.${low & 255}`;
    }
    return full;
  }
  // The WHATWG URL parser reads IPv4 as inet_aton does: 127.1, 2130706433, 0x7f.0.0.1, 0177.0.0.1.
  if (/^[0-9a-fx.]+$/.test(name)) {
    try {
      const parsed = new URL(`http://${name}/`).hostname;
      if (isIP(parsed) === 4) return parsed;
    } catch {
      // Not an address: a name.
    }
  }
  return name;
}

/** What findAddressClash knows beyond the text: names resolved, and this machine's own addresses. */
export interface ResolvedAddresses {
  /** A name (canonicalHost) → the addresses it resolves to. */
  names: ReadonlyMap<string, readonly string[]>;
  /** The addresses of this machine's interfaces: a wildcard listener is reached on each. */
  readonly own: ReadonlySet<string>;
}

/**
 * Resolves every upstream that is a name (`dns.lookup`, all addresses, as a dial would), and
 * lists this machine's addresses, so that findAddressClash sees through the machine's own host
 * name. A name that does not resolve (in `timeoutMs`) is left as spelt: the dial will say so.
 */
export async function resolveAddressPlan(config: AddressPlan, timeoutMs = 2000): Promise<ResolvedAddresses> {
  const names = new Map<string, string[]>();
  const wanted = new Set<string>();
  for (const service of config.services) {
    if (service.upstream === undefined) continue;
    const host = canonicalHost(service.upstream);
    if (isIP(host) === 0) wanted.add(host);
  }
  await Promise.all([...wanted].map(async (name) => {
    let timer: NodeJS.Timeout | undefined;
    try {
      const found = await Promise.race([
        lookup(name, { all: true }),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error('timed out')), timeoutMs);
        }),
      ]);
      names.set(name, found.map(({ address }) => canonicalHost(address)));
    } catch {
      // Unresolvable here: compared as spelt.
    } finally {
      clearTimeout(timer);
    }
  }));
  // Read when first asked, which only a wildcard listener on a service's port does: canonicalHost of
  // an IPv6 address makes node compile its IPv6 pattern, tens of ms of a start or a `check`.
  let own: Set<string> | undefined;
  return {
    names,
    get own() {
      own ??= new Set(Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map(({ address }) => canonicalHost(address))));
      return own;
    },
  };
}

/**
 * Whether two listeners on one port cannot both be bound: the same host, or a wildcard and an
 * address of its family. Other names are not resolved here; binding says so if they clash.
 */
function listenersOverlap(a: string, b: string): boolean {
  [a, b] = [canonicalHost(a), canonicalHost(b)];
  if (a === b) return true;
  const covers = (wildcard: string, other: string): boolean => (wildcard === '0.0.0.0' && isIP(other) === 4) || (wildcard === '::' && isIP(other) === 6);
  return covers(a, b) || covers(b, a);
}

/**
 * Whether a connection to `upstream` lands on a listener bound to `listenHost`: the same address,
 * loopback on a wildcard listener, or loopback for the unspecified address. An address or name
 * of another machine never does (the same port there is another server); this machine's own
 * other addresses are `resolved.own`, read only for a wildcard listener.
 */
function listenerReaches(listenHost: string, upstream: string, resolved: Pick<ResolvedAddresses, 'own'>): boolean {
  [listenHost, upstream] = [canonicalHost(listenHost), canonicalHost(upstream)];
  if (listenHost === upstream) return true;
  // A wildcard listener is reached on every address of this machine of its family.
  if (((listenHost === '0.0.0.0' && isIP(upstream) === 4) || (listenHost === '::' && isIP(upstream) === 6)) && resolved.own.has(upstream)) return true;
  // Linux sends a connect to the unspecified address to loopback: 127.0.0.1, or ::1.
  if (upstream === '0.0.0.0') return listenHost === '0.0.0.0' || listenHost === '127.0.0.1';
  if (upstream === '::') return listenHost === '::' || listenHost === '::1';
  return (listenHost === '0.0.0.0' && upstream.startsWith('127.') && isIP(upstream) === 4) || (listenHost === '::' && upstream === '::1');
}

/** A whole number in the port range; 0 ("any") only where `zeroAllowed`. */
function isPort(value: number, zeroAllowed: boolean): boolean {
  return Number.isInteger(value) && value <= 65535 && value >= (zeroAllowed ? 0 : 1);
}
