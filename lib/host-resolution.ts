// Whether the configured host names resolve to this machine for programs that are not browsers.
// Browsers (and curl) map `*.localhost` to loopback themselves; everything that asks the system's
// resolver (getaddrinfo: Node's dns.lookup, Python, Go with cgo, Safari through /etc/hosts) needs
// glibc's nss-myhostname, systemd-resolved, or an /etc/hosts entry. For the doctor.

import { lookup as dnsLookup } from 'node:dns/promises';
import { platform } from 'node:os';
import { shellWord } from './errors.js';

/** The addresses a name resolves to; rejects (with a code such as ENOTFOUND) when it does not. */
export type Lookup = (host: string) => Promise<string[]>;

/** How long one name may take to resolve. */
const LOOKUP_TIMEOUT_MS = 3000;

/** dns.lookup, every address: what getaddrinfo gives a program. */
export async function systemLookup(host: string): Promise<string[]> {
  return (await dnsLookup(host, { all: true })).map((entry) => entry.address);
}

/** A name and what it resolves to: its addresses, or why it does not (an error code). */
export interface Resolution {
  name: string;
  addresses: string[] | undefined;
  error: string | undefined;
}

/** Resolves every name at once, each within LOOKUP_TIMEOUT_MS. */
export function resolveNames(names: string[], lookup: Lookup = systemLookup): Promise<Resolution[]> {
  return Promise.all(names.map(async (name) => {
    const outcome = await resolveWithin(lookup, name);
    return typeof outcome === 'string' ? { name, addresses: undefined, error: outcome } : { name, addresses: outcome, error: undefined };
  }));
}

/** The fix for names that do not resolve, for this system. */
export function resolutionFix(configFile: string, system: NodeJS.Platform = platform()): string {
  const sync = `sudo env "PATH=$PATH" norikae-splice hosts sync --config ${shellWord(configFile)}`;
  if (system === 'linux') {
    return `add them to /etc/hosts: ${sync} (again after adding a service); or resolve every *.localhost name: `
      + 'install libnss-myhostname (Debian, Ubuntu: sudo apt-get install libnss-myhostname) and put `myhostname` on the hosts line of /etc/nsswitch.conf, before `dns`';
  }
  return `add them to /etc/hosts: ${sync} (again after adding a service)`;
}

/** The addresses, or the error code when the name does not resolve in time. */
async function resolveWithin(lookup: Lookup, name: string): Promise<string[] | string> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      lookup(name),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(Object.assign(new Error('timed out'), { code: `no answer within ${LOOKUP_TIMEOUT_MS / 1000} s` })), LOOKUP_TIMEOUT_MS);
      }),
    ]);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? (err as Error).message;
  } finally {
    clearTimeout(timer);
  }
}

export function isLoopbackAddress(address: string): boolean {
  return address === '::1' || address.startsWith('127.') || address === '::ffff:127.0.0.1';
}
