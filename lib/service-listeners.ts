// The raw TCP listeners of services' own `listen` addresses, and how a reload changes them without
// dropping a connection: new addresses are bound first (so one that cannot be bound refuses the
// whole reload), then, in one synchronous step, kept listeners move to the services that now name
// them and the ones no service names any more close (their open connections stay).

import { createServer, type Server, type Socket } from 'node:net';
import { formatAddress, serviceListenAddresses, type ListenAddress } from './address.js';
import type { ServiceConfig } from './config.js';
import { bind, boundAddress, type PremadeListeners } from './listen.js';
import type { Log } from './log.js';
import { registerListener } from './loop-guard.js';

interface ServiceListener {
  server: Server;
  /** As configured (port 0 unresolved): what a reload compares. */
  address: ListenAddress;
  /** A reload may move the listener to another service that names its address. */
  service: ServiceConfig;
}

export class ServiceListeners {
  private listeners: ServiceListener[] = [];

  constructor(
    /** A connection accepted on one of them, for the service the listener belongs to now. */
    private readonly onConnection: (service: ServiceConfig, socket: Socket) => void,
    private readonly log: Log,
  ) {}

  /** Binds every service's `listen` addresses (or takes the sockets made for them); throws a ListenError. */
  async listen(services: readonly ServiceConfig[], premade: PremadeListeners | undefined): Promise<void> {
    for (const service of services) {
      for (const address of service.listen) this.listeners.push(await this.bind(service, address, premade));
    }
  }

  /**
   * Binds what `services` add, closing first a listener the edit drops on a port a new one needs
   * (a narrowed `0.0.0.0:P` → `127.0.0.1:P`). Resolves to the step that applies the edit (call it
   * in the same tick as the rest of the reload); rejects, having listened again where it had,
   * when an address cannot be bound.
   */
  async prepare(services: readonly ServiceConfig[]): Promise<() => void> {
    const current = new Map(this.listeners.map((entry) => [formatAddress(entry.address), entry]));
    const wanted = serviceListenAddresses(services);
    const wantedKeys = new Set(wanted.map(({ address }) => formatAddress(address)));
    const bound: ServiceListener[] = [];
    /** Listeners this edit drops that held a port a new one needs. */
    const released: ServiceListener[] = [];
    try {
      for (const { service, address } of wanted) {
        if (current.has(formatAddress(address))) continue;
        for (const [key, entry] of current) {
          if (entry.address.port !== address.port || wantedKeys.has(key)) continue;
          // Closing a listener frees its port at once; its open connections stay.
          entry.server.close();
          current.delete(key);
          released.push(entry);
        }
        bound.push(await this.bind(service, address, undefined));
      }
    } catch (err) {
      for (const entry of bound) entry.server.close();
      // A refused edit changes nothing: the released addresses are listened on again.
      for (const entry of released) {
        const index = this.listeners.indexOf(entry);
        try {
          this.listeners[index] = await this.bind(entry.service, entry.address, undefined);
        } catch (rebindError) {
          this.listeners.splice(index, 1);
          this.log.error(`${entry.service.name}: cannot listen on ${formatAddress(entry.address)} again: ${(rebindError as Error).message}`);
        }
      }
      throw err;
    }
    return () => {
      const kept: ServiceListener[] = [];
      for (const { service, address } of wanted) {
        const entry = current.get(formatAddress(address));
        if (entry === undefined) continue;
        entry.service = service;
        current.delete(formatAddress(address));
        kept.push(entry);
      }
      for (const entry of current.values()) entry.server.close();
      this.listeners = [...kept, ...bound];
    };
  }

  /** The addresses bound for `name`'s own `listen` (port 0 resolved). */
  addresses(name: string): ListenAddress[] {
    return this.listeners.flatMap(({ server, service }) => (service.name === name ? boundAddress(server) : []));
  }

  /** Stops accepting; open connections are the server's to end. */
  async close(): Promise<void> {
    await Promise.all(this.listeners.map(({ server }) => new Promise<void>((resolve) => {
      if (server.listening) server.close(() => resolve());
      else resolve();
    })));
    this.listeners = [];
  }

  /** Binds one listener of `service` (a server that fails to bind holds nothing to close). */
  private async bind(service: ServiceConfig, address: ListenAddress, premade: PremadeListeners | undefined): Promise<ServiceListener> {
    const server = createServer({ allowHalfOpen: true, noDelay: true }, (socket) => this.onConnection(entry.service, socket));
    const entry: ServiceListener = { server, address, service };
    await bind(server, address, service.name, '--listen', premade?.take(address, service.name));
    registerListener(server);
    return entry;
  }
}
