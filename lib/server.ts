// The listeners: accept → sniff → route → upstream → splice. One net.Server per listen address.
// A connection is ours only until its first request head is read and its upstream connected;
// after that, spliceSockets owns both sockets and nothing here looks at a byte.

import { createServer, type Server, type Socket } from 'node:net';
import createDebug from 'debug';
import { headErrorPage, internalErrorPage, notFoundPage, TlsAlert, upstreamErrorPage, writeAnswer, writeTlsAlert } from './answers.js';
import { formatAddress, type ListenAddress } from './address.js';
import { type Config, type ServiceConfig } from './config.js';
import { headErrors, messageOf, NorikaeError, stackOf, type HeadError } from './errors.js';
import { bind, boundAddress, type PremadeListeners } from './listen.js';
import { loadParser } from './llhttp.js';
import { type Log, streamLog } from './log.js';
import { Router } from './router.js';
import { HeadSniffer, type SniffResult } from './sniff.js';
import { logSocketError, spliceSockets } from './splice.js';

const debug = createDebug('norikae:server');

/** How a routed connection reaches its service; the launcher replaces the plain dial. */
export interface UpstreamConnector {
  /** A connected upstream socket, or a rejection that becomes the client's answer. */
  connect(service: ServiceConfig): Promise<Socket>;
  /** Takes a reloaded config; called in the same tick as the router's swap (see SpliceServer.reconfigure). */
  reconfigure?(config: Config): Promise<void>;
}

/** Answers the connections of one host in-process (the dashboard, for `config.dashboardHost`). */
export interface HostHandler {
  /** Takes over `socket`, paused, with the bytes already read from it. */
  accept(socket: Socket, head: readonly Buffer[]): void;
}

/** A bound listener: an HTTP one, or a service's raw TCP one (`service` set; a reload may move it to another service). */
interface Listener {
  server: Server;
  /** As configured (port 0 unresolved): what a reload compares. */
  address: ListenAddress;
  service?: ServiceConfig;
}

export interface SpliceServerOptions {
  /** How routed connections reach their service (the CLI's: a ServiceSupervisor, which launches). */
  connector: UpstreamConnector;
  /** Answers `config.dashboardHost`; none: that host is routed like any other. */
  dashboard?: HostHandler | undefined;
  log?: Log | undefined;
  /** Sockets already listening (socket activation), taken at listen() instead of binding those addresses. */
  premade?: PremadeListeners | undefined;
}

export class SpliceServer {
  /** HTTP listeners, then the raw TCP listeners of services (`service` set). */
  private listeners: Listener[] = [];
  /** Open client connections, so close() can end them. */
  private readonly clients = new Set<Socket>();
  /**
   * Connections still sending their first head: when they connected, and how to give up on them.
   * All share one timeout, so insertion order is deadline order (also after a reload changes
   * `head_timeout`) and one sweep a second finds the expired ones at the front: no timer per connection.
   */
  private readonly sniffing = new Map<Socket, { since: number; giveUp: (error: HeadError) => void }>();
  private sweeper: NodeJS.Timeout | undefined;
  private router: Router;
  private readonly log: Log;
  readonly connector: UpstreamConnector;
  private readonly dashboard: HostHandler | undefined;
  private premade: PremadeListeners | undefined;

  constructor(
    private config: Config,
    options: SpliceServerOptions,
  ) {
    this.router = new Router(config.services);
    this.log = options.log ?? streamLog();
    this.connector = options.connector;
    this.dashboard = options.dashboard;
    this.premade = options.premade;
  }

  /**
   * Compiles the head parser (now, not while the first client waits), then binds every HTTP and
   * raw TCP listener and returns the HTTP addresses (port 0 resolved); on any failure, closes
   * what was bound and throws a ListenError.
   */
  async listen(): Promise<ListenAddress[]> {
    loadParser();
    const serverOptions = { allowHalfOpen: true, noDelay: true };
    try {
      for (const address of this.config.listen) {
        const server = createServer(serverOptions, (socket) => this.onHttpConnection(socket));
        this.listeners.push({ server, address });
        await bind(server, address, undefined, this.premade?.take(address));
      }
      for (const service of this.config.services) {
        for (const address of service.listen) this.listeners.push(await this.bindService(service, address));
      }
    } catch (err) {
      await this.close();
      throw err;
    }
    // Made sockets are for the start: a reload binds the listeners it adds.
    this.premade = undefined;
    this.startSweeper();
    return this.addresses();
  }

  /** The 408 sweep, four times per `head_timeout` (at most once a second). */
  private startSweeper(): void {
    clearInterval(this.sweeper);
    this.sweeper = setInterval(() => this.expireSlowHeads(), Math.min(1000, this.config.headTimeout * 250));
    this.sweeper.unref();
  }

  /**
   * Takes a new config without dropping a connection: routing changes at once, raw TCP listeners
   * no service asks for any more close (their open connections stay), new ones bind, and one
   * whose address stays moves to the service that now names it. New listeners are bound before
   * anything changes, so an address that cannot be bound rejects the whole reload and leaves the
   * running config as it was. The HTTP listen addresses stay as they are until a restart.
   */
  async reconfigure(config: Config): Promise<void> {
    const current = new Map(this.listeners.filter((entry) => entry.service !== undefined).map((entry) => [formatAddress(entry.address), entry]));
    const wanted = config.services.flatMap((service) => service.listen.map((address) => ({ service, address })));
    const wantedKeys = new Set(wanted.map(({ address }) => formatAddress(address)));
    const bound: Listener[] = [];
    /** Listeners this edit drops that held a port a new one needs (0.0.0.0:P → 127.0.0.1:P). */
    const released: Listener[] = [];
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
        bound.push(await this.bindService(service, address));
      }
    } catch (err) {
      for (const entry of bound) entry.server.close();
      // A refused edit changes nothing: the released addresses are listened on again.
      for (const entry of released) {
        const index = this.listeners.indexOf(entry);
        try {
          this.listeners[index] = await this.bindService(entry.service!, entry.address);
        } catch (rebindError) {
          this.listeners.splice(index, 1);
          this.log.error(`${entry.service!.name}: cannot listen on ${formatAddress(entry.address)} again: ${(rebindError as Error).message}`);
        }
      }
      throw err;
    }
    // From here to the connector's swap nothing is awaited: no connection sees half a reload.
    const old = this.config;
    this.config = config;
    this.router = new Router(config.services);
    const kept: Listener[] = [];
    for (const { service, address } of wanted) {
      const entry = current.get(formatAddress(address));
      if (entry === undefined) continue;
      entry.service = service;
      current.delete(formatAddress(address));
      kept.push(entry);
    }
    for (const entry of current.values()) entry.server.close();
    this.listeners = [...this.listeners.filter((entry) => entry.service === undefined), ...kept, ...bound];
    if (old.headTimeout !== config.headTimeout && this.sweeper !== undefined) this.startSweeper();
    await this.connector.reconfigure?.(config);
  }

  /** Binds one raw TCP listener of `service` (a server that fails to bind holds nothing to close). */
  private async bindService(service: ServiceConfig, address: ListenAddress): Promise<Listener> {
    const server = createServer({ allowHalfOpen: true, noDelay: true }, (socket) => this.onTcpConnection(entry.service!, socket));
    const entry: Listener = { server, address, service };
    await bind(server, address, service.name, this.premade?.take(address, service.name));
    return entry;
  }

  /** The HTTP addresses actually bound (port 0 resolved). */
  addresses(): ListenAddress[] {
    return this.listeners.flatMap(({ server, service }) => (service === undefined ? boundAddress(server) : []));
  }

  /** The raw TCP addresses bound for `name`'s own `listen`. */
  serviceAddresses(name: string): ListenAddress[] {
    return this.listeners.flatMap(({ server, service }) => (service?.name === name ? boundAddress(server) : []));
  }

  /** Client connections open now (sniffing, answered or spliced). */
  get openConnections(): number {
    return this.clients.size;
  }

  /** Stops accepting and ends every open connection. */
  async close(): Promise<void> {
    clearInterval(this.sweeper);
    const closing = this.listeners.map(({ server }) => new Promise<void>((resolve) => {
      if (server.listening) server.close(() => resolve());
      else resolve();
    }));
    for (const client of this.clients) client.destroy();
    await Promise.all(closing);
    this.listeners.length = 0;
  }

  private accept(client: Socket): void {
    client.on('error', logSocketError);
    this.clients.add(client);
    // `on`, not `once`: 'close' comes once anyway, and once() costs a wrapper per connection.
    client.on('close', () => this.clients.delete(client));
  }

  /**
   * A service's own listener: no parsing at all. The upstream is connected before the client
   * sends anything, because many protocols have the server speak first.
   */
  private onTcpConnection(service: ServiceConfig, client: Socket): void {
    this.accept(client);
    void this.connectAndSplice(client, service, NO_BYTES, this.tcpRefusal, '');
  }

  private onHttpConnection(client: Socket): void {
    this.accept(client);

    const sniffer = new HeadSniffer(this.config.maxHeadSize);
    const chunks: Buffer[] = [];
    const stopSniffing = (): void => {
      client.off('data', onData);
      client.off('end', onEnd);
      client.off('close', stopSniffing);
      this.sniffing.delete(client);
      sniffer.destroy();
    };
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      let result: SniffResult | undefined;
      try {
        result = sniffer.push(chunk);
      } catch (err) {
        // A bug of ours, not the client's fault; it must not take the process down.
        this.log.error(`internal error while reading a request head: ${stackOf(err)}`);
        result = { kind: 'http-error', error: headErrors.unreadable(), accept: '' };
      }
      if (result === undefined) return;
      stopSniffing();
      client.pause();
      switch (result.kind) {
        case 'http':
          this.routeHttp(client, result.host, result.accept, chunks);
          break;
        case 'tls':
          this.route(client, result.host, chunks, this.tlsRefusal, '');
          break;
        case 'http-error':
          writeAnswer(client, headErrorPage(result.error), result.accept);
          break;
        case 'tls-error':
          debug('unreadable ClientHello: %s', result.reason);
          client.destroy();
          break;
      }
    };
    /** The client closed its side, or ran out of time, before its head was complete. */
    const giveUp = (error: HeadError): void => {
      const tls = sniffer.isTls;
      stopSniffing();
      // A connection that never sent a byte (a browser's preconnect) is just closed, and so is a
      // cut-short ClientHello: a TLS client cannot read an HTTP answer.
      if (chunks.length === 0 || tls) client.destroy();
      else writeAnswer(client, headErrorPage(error), '');
    };
    const onEnd = (): void => giveUp(headErrors.incomplete());
    // `on`, not `once`: stopSniffing removes them, and once() costs a wrapper per connection.
    client.on('data', onData);
    client.on('end', onEnd);
    client.on('close', stopSniffing);
    this.sniffing.set(client, { since: Date.now(), giveUp });
  }

  /** Answers 408 to every connection whose first head is overdue (see `sniffing`). */
  private expireSlowHeads(): void {
    const { headTimeout } = this.config;
    const cutoff = Date.now() - headTimeout * 1000;
    for (const { since, giveUp } of this.sniffing.values()) {
      if (since > cutoff) break;
      giveUp(headErrors.timeout(headTimeout));
    }
  }

  /** The dashboard's host is answered in-process; every other host is routed to its service. */
  private routeHttp(client: Socket, host: string, accept: string, head: readonly Buffer[]): void {
    if (this.dashboard === undefined || host !== this.config.dashboardHost) {
      this.route(client, host, head, this.httpRefusal, accept);
      return;
    }
    try {
      this.dashboard.accept(client, head);
    } catch (err) {
      this.refuse(client, undefined, err, this.httpRefusal, accept);
    }
  }

  /** Host → service, then connectAndSplice; no service, or a throw on the way, is answered by `refusal`. */
  private route(client: Socket, host: string | undefined, head: readonly Buffer[], refusal: Refusal, accept: string): void {
    let service: ServiceConfig | undefined;
    try {
      service = host === undefined ? undefined : this.router.route(host);
      if (service === undefined) refusal.noService(client, host, accept);
    } catch (err) {
      this.refuse(client, undefined, err, refusal, accept);
      return;
    }
    if (service !== undefined) void this.connectAndSplice(client, service, head, refusal, accept);
  }

  /**
   * Connect → splice. A failed connect, or any throw on the way (a bug, a connector that throws
   * instead of rejecting), is answered by `refusal`: this promise never rejects.
   */
  private async connectAndSplice(client: Socket, service: ServiceConfig, head: readonly Buffer[], refusal: Refusal, accept: string): Promise<void> {
    let upstream: Socket | undefined;
    try {
      upstream = await this.connector.connect(service);
      this.splice(client, upstream, service, head);
    } catch (err) {
      upstream?.destroy();
      this.refuse(client, service, err, refusal, accept);
    }
  }

  /** Answers a connection we do not splice; a bug is logged, and one while answering destroys the socket. */
  private refuse(client: Socket, service: ServiceConfig | undefined, err: unknown, refusal: Refusal, accept: string): void {
    try {
      if (!(err instanceof NorikaeError)) this.log.error(`internal error while routing a connection${service === undefined ? '' : ` to ${service.name}`}: ${stackOf(err)}`);
      refusal.unreachable(client, service, err, accept);
    } catch (answerError) {
      client.destroy();
      this.log.error(`internal error while answering a connection: ${stackOf(answerError)}`);
    }
  }

  /** HTTP is answered with a page: 404 for an unknown host, the connector's error (502, 503, 504) or 500. */
  private readonly httpRefusal: Refusal = {
    noService: (client, host, accept) => {
      debug('no service for %s', host);
      // An HTTP head always names a host (sniff.ts refuses one without).
      writeAnswer(client, notFoundPage(host!, this.config.services, client.localPort, this.dashboard && this.config.dashboardHost), accept);
    },
    unreachable: (client, service, err, accept) => {
      debug('upstream of %s: %s', service?.name, messageOf(err));
      writeAnswer(client, service === undefined ? internalErrorPage() : upstreamErrorPage(service, err), accept);
    },
  };

  /** TLS is passed through untouched (the upstream terminates it), so all we can answer is an alert. */
  private readonly tlsRefusal: Refusal = {
    noService: (client, host) => {
      debug('TLS for %s: no service', host ?? '(no SNI)');
      writeTlsAlert(client, TlsAlert.UNRECOGNIZED_NAME);
    },
    unreachable: (client, service, err) => {
      // An alert says little: the log says why.
      this.log.warn(`${service === undefined ? '' : `${service.name}: `}a TLS connection was dropped: ${messageOf(err)}`);
      writeTlsAlert(client, TlsAlert.INTERNAL_ERROR);
    },
  };

  /** A raw TCP connection cannot read an answer: the log says why, and it is reset (noService: never, it has its service). */
  private readonly tcpRefusal: Refusal = {
    noService: (client) => client.resetAndDestroy(),
    unreachable: (client, service, err) => {
      this.log.warn(`${service?.name ?? 'norikae-splice'}: a TCP connection was dropped: ${messageOf(err)}`);
      client.resetAndDestroy();
    },
  };

  private splice(client: Socket, upstream: Socket, service: ServiceConfig, head: readonly Buffer[]): void {
    if (client.destroyed) {
      upstream.destroy();
      return;
    }
    // The address getters are system calls: only when someone reads the debug output.
    if (debug.enabled) debug('splice %s:%d → %s', client.remoteAddress, client.remotePort, service.name);
    spliceSockets(client, upstream, head);
  }
}

/** How a connection we do not splice is answered: HTTP with a page, TLS with an alert, raw TCP with a reset. */
interface Refusal {
  /** No service has `host` (undefined: a ClientHello without SNI). */
  noService(client: Socket, host: string | undefined, accept: string): void;
  /** `err` kept the connection from `service`; undefined when we failed before we had one. */
  unreachable(client: Socket, service: ServiceConfig | undefined, err: unknown, accept: string): void;
}

/** The head of a connection that sends nothing before it is spliced (a raw TCP one). */
const NO_BYTES: readonly Buffer[] = [];
