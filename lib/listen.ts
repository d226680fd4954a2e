// Binding a listener: server.listen as a promise, and what to do when the address cannot be had
// (in use, a privileged port, not on this machine) said in the error itself. A listener may also
// be made before us (systemd's socket activation): then it is listened on as it is, not bound.

import type { AddressInfo, Server } from 'node:net';
import { createDebug } from './packages.js';
import { formatAddress, type ListenAddress } from './address.js';
import { ListenError } from './errors.js';

const debug = createDebug('norikae:listen');

/** Listening sockets made before us, by listen address; whatever made them is not our concern here. */
export interface PremadeListeners {
  /** The socket made for `address` (HTTP, or `service`'s own `listen`), handed out once; none: bind it. */
  take(address: ListenAddress, service?: string): { fd: number } | undefined;
}

/** Where `server` listens (port 0 resolved); none when it is not listening. */
export function boundAddress(server: Server): ListenAddress[] {
  const address = server.address() as AddressInfo | null;
  return address ? [{ host: address.address, port: address.port }] : [];
}

/**
 * server.listen as a promise, with the errors a user can act on turned into advice; `service`
 * names the service whose own `listen` this is (none: an HTTP listener). `premade`: a listening
 * socket to take instead of binding (see PremadeListeners).
 */
export function bind(server: Server, address: ListenAddress, service?: string, flag: '--listen' | '--https' = '--listen', premade?: { fd: number }): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      reject(new ListenError(listenAdvice(address, err, service, flag), { cause: err }));
    };
    server.once('error', onError);
    const where = premade ?? { host: address.host, port: address.port, ipv6Only: address.host.includes(':') };
    if (premade !== undefined) debug('listening on fd %d for %s', premade.fd, formatAddress(address));
    server.listen(where, () => {
      server.off('error', onError);
      server.on('error', (err) => debug('listener error %s', err.message));
      resolve();
    });
  });
}

function listenAdvice(address: ListenAddress, err: NodeJS.ErrnoException, service: string | undefined, flag: '--listen' | '--https'): string {
  const key = flag.slice(2);
  const where = service === undefined ? `${formatAddress(address)}${flag === '--https' ? ' (https)' : ''}` : `${formatAddress(address)} (the \`listen\` of service ${service})`;
  const other = flag === '--https' ? (address.port === 8443 ? 8444 : 8443) : (address.port === 8080 ? 8081 : 8080);
  switch (err.code) {
    case 'EADDRINUSE':
      return `cannot listen on ${where}: the port is already in use (another norikae-splice or dev server?). Stop that process, or `
        + (service === undefined
          ? `choose another port with ${flag} (for example ${flag} ${other}) or \`${key}\` in the config file.`
          : `give [service.${service}] another \`listen\` port in the config file.`);
    case 'EACCES':
      return `cannot listen on ${where}: permission denied. Ports below 1024 need privileges on Linux. `
        + `Use a higher port (${flag} ${other}), or allow port ${flag === '--https' ? '443 (and 80)' : 80} for unprivileged users once with `
        + '`sudo sysctl -w net.ipv4.ip_unprivileged_port_start=80`, or give node the capability with '
        + '`sudo setcap cap_net_bind_service=+ep "$(readlink -f "$(command -v node)")"`.';
    case 'EADDRNOTAVAIL':
    case 'ENOTFOUND':
      return `cannot listen on ${where}: that address is not on this machine. Use 127.0.0.1 or [::1].`;
    default:
      return `cannot listen on ${where}: ${err.code ?? err.message}`;
  }
}
