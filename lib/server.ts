// The listeners: accept → sniff → route → upstream → splice. One net.Server per listen address.
// A connection is ours only until its first request head is read and its upstream connected;
// after that, spliceSockets owns both sockets and nothing here looks at a byte.

import { createServer, type Server, type Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { createDebug } from './packages.js';
import { headErrorPage, httpsRedirectPage, notFoundPage, writeAnswer } from './answers.js';
import type { ListenAddress } from './address.js';
import { Certificates } from './certificates.js';
import { type Config, type ServiceConfig } from './config.js';
import { headErrors, LoopError, NorikaeError, stackOf, type HeadError } from './errors.js';
import { bind, boundAddress, type PremadeListeners } from './listen.js';
import { ServiceListeners } from './service-listeners.js';
import { dataDir } from './local-ca.js';
import { loadParser } from './llhttp.js';
import { isOwnDial, loopSuspected, registerListener } from './loop-guard.js';
import { type Log, streamLog } from './log.js';
import { Router } from './router.js';
import { ForwardedHeaders } from './forwarded.js';
import { HeadDeadlines } from './head-deadlines.js';
import { HeadSniffer, type SniffResult } from './sniff.js';
import { type Refusal, type Refusals, refusals } from './refusals.js';
import { logSocketError, spliceSockets } from './splice.js';
import { TlsEdge } from './tls-edge.js';

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
  /**
   * Takes over `socket`, paused, with the bytes already read from it. `host`: what routing read
   * from its first head (an absolute-form target's authority wins over Host), normalised.
   */
  accept(socket: Socket, head: readonly Buffer[], host: string): void;
}

/** A bound HTTP listener (services' own raw TCP listeners are ServiceListeners'). */
interface Listener {
  server: Server;
  address: ListenAddress;
  /** One of the `https` listeners (it serves plain HTTP too, as the HTTP ones serve TLS). */
  https: boolean;
}

export interface SpliceServerOptions {
  /** How routed connections reach their service (the CLI's: a ServiceSupervisor, which launches). */
  connector: UpstreamConnector;
  /** Answers `config.dashboardHost`; none: that host is routed like any other. */
  dashboard?: HostHandler | undefined;
  log?: Log | undefined;
  /** The leaves for the names whose TLS is terminated here; default: the local CA in dataDir(). */
  certificates?: Certificates | undefined;
  /** Sockets already listening (socket activation), taken at listen() instead of binding those addresses. */
  premade?: PremadeListeners | undefined;
}

export class SpliceServer {
  /** The HTTP listeners (`listen` and `https`); they change only at a restart. */
  private listeners: Listener[] = [];
  /** Services' own raw TCP listeners, which a reload changes. */
  private readonly serviceListeners: ServiceListeners;
  /** Open client connections, so close() can end them. */
  private readonly clients = new Set<Socket>();
  /** Connections still sending their first head, and when to give up on them. */
  private readonly sniffing = new HeadDeadlines();
  private router: Router;
  /** Whether a service has `https_redirect` (else plain requests skip the check). */
  private redirects: boolean;
  private readonly log: Log;
  readonly connector: UpstreamConnector;
  private readonly dashboard: HostHandler | undefined;
  private readonly edge: TlsEdge;
  private readonly refusals: Refusals;
  private premade: PremadeListeners | undefined;

  constructor(
    private config: Config,
    options: SpliceServerOptions,
  ) {
    this.router = new Router(config.services);
    this.redirects = config.services.some((service) => service.httpsRedirect);
    this.log = options.log ?? streamLog();
    this.connector = options.connector;
    this.dashboard = options.dashboard;
    this.refusals = refusals({
      log: this.log,
      notFound: (client, host) => notFoundPage(host, this.config.services, client.localPort, this.dashboard && this.config.dashboardHost, isTerminated(client) ? 'https' : 'http'),
    });
    this.premade = options.premade;
    this.serviceListeners = new ServiceListeners((service, socket) => this.onTcpConnection(service, socket), this.log);
    this.edge = new TlsEdge(options.certificates ?? new Certificates({ dir: dataDir(), hosts: () => this.claimedNames() }), this.log);
  }

  /** Every name a service or the dashboard answers to: what the local CA is made to cover. */
  claimedNames(): string[] {
    const names = this.config.services.flatMap((service) => service.hosts);
    return this.config.dashboardHost === undefined ? names : [...names, this.config.dashboardHost];
  }

  get certificates(): Certificates {
    return this.edge.certificates;
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
      // The `https` listeners are HTTP listeners too (each kind takes both); only their advice differs.
      for (const [address, https] of [...this.config.listen.map((a) => [a, false] as const), ...this.config.https.map((a) => [a, true] as const)]) {
        const server = createServer(serverOptions, (socket) => this.onHttpConnection(socket));
        this.listeners.push({ server, address, https });
        await bind(server, address, undefined, https ? '--https' : '--listen', this.premade?.take(address));
        registerListener(server);
      }
      await this.serviceListeners.listen(this.config.services, this.premade);
    } catch (err) {
      await this.close();
      throw err;
    }
    // Made sockets are for the start: a reload binds the listeners it adds.
    this.premade = undefined;
    this.sniffing.start(this.config.headTimeout);
    return this.addresses();
  }

  /**
   * Takes a new config without dropping a connection: routing changes at once, raw TCP listeners
   * no service asks for any more close (their open connections stay), new ones bind, and one
   * whose address stays moves to the service that now names it. New listeners are bound before
   * anything changes, so an address that cannot be bound rejects the whole reload and leaves the
   * running config as it was. The HTTP listen addresses stay as they are until a restart.
   */
  async reconfigure(config: Config): Promise<void> {
    const applyListeners = await this.serviceListeners.prepare(config.services);
    // From here to the connector's swap nothing is awaited: no connection sees half a reload.
    const old = this.config;
    this.config = config;
    this.router = new Router(config.services);
    this.redirects = config.services.some((service) => service.httpsRedirect);
    applyListeners();
    if (old.headTimeout !== config.headTimeout && this.sniffing.started) this.sniffing.start(config.headTimeout);
    await this.connector.reconfigure?.(config);
  }

  /** The HTTP addresses actually bound (port 0 resolved). */
  addresses(): ListenAddress[] {
    return this.listeners.flatMap(({ server, https }) => (https ? [] : boundAddress(server)));
  }

  /** The `https` addresses actually bound (port 0 resolved). */
  httpsAddresses(): ListenAddress[] {
    return this.listeners.flatMap(({ server, https }) => (https ? boundAddress(server) : []));
  }

  /** The raw TCP addresses bound for `name`'s own `listen`. */
  serviceAddresses(name: string): ListenAddress[] {
    return this.serviceListeners.addresses(name);
  }

  /** Client connections open now (sniffing, answered or spliced). */
  get openConnections(): number {
    return this.clients.size;
  }

  /** Stops accepting and ends every open connection. */
  async close(): Promise<void> {
    this.sniffing.stop();
    const closing = this.listeners.map(({ server }) => new Promise<void>((resolve) => {
      if (server.listening) server.close(() => resolve());
      else resolve();
    }));
    for (const client of this.clients) client.destroy();
    await Promise.all([...closing, this.serviceListeners.close()]);
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
    if (!loopSuspected()) {
      void this.connectAndSplice(client, service, NO_BYTES, this.refusals.tcp, '');
      return;
    }
    // A dial of ours to one of our ports is open or under way: this may be it. Its 'connect',
    // which records it, comes in the same turn of the event loop as this accept: look after it.
    setImmediate(() => {
      if (client.destroyed) return;
      if (isOwnDial(client)) this.refuse(client, service, new LoopError(service.name, client.localPort ?? 0), this.refusals.tcp, '');
      else void this.connectAndSplice(client, service, NO_BYTES, this.refusals.tcp, '');
    });
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
          if (this.redirects && !isTerminated(client) && this.redirectToHttps(client, result.host, sniffer.target, result.accept)) break;
          this.routeHttp(client, result.host, result.accept, chunks);
          break;
        case 'tls':
          // A ClientHello inside TLS is nothing we serve.
          if (isTerminated(client)) client.destroy();
          else this.routeTls(client, result.host, chunks);
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
    this.sniffing.add(client, giveUp);
  }

  /** Answers 308 when `host`'s service has `https_redirect`; whether it did. */
  private redirectToHttps(client: Socket, host: string, target: string, accept: string): boolean {
    if (this.router.route(host)?.httpsRedirect !== true) return false;
    // To the first `https` listener, else to this one: every listener takes TLS.
    const port = this.httpsAddresses()[0]?.port ?? client.localPort ?? 443;
    writeAnswer(client, httpsRedirectPage(host, port, target), accept);
    return true;
  }

  /**
   * A ClientHello: spliced as it is to a `tls = "passthrough"` service, else terminated here (for
   * a name a service or the dashboard claims, and only then) and read as plain HTTP.
   */
  private routeTls(client: Socket, host: string | undefined, hello: readonly Buffer[]): void {
    let service: ServiceConfig | undefined;
    try {
      service = host === undefined ? undefined : this.router.route(host);
    } catch (err) {
      this.refuse(client, undefined, err, this.refusals.tls, '');
      return;
    }
    if (service?.tls === 'passthrough') {
      void this.connectAndSplice(client, service, hello, this.refusals.tls, '');
      return;
    }
    const dashboard = this.dashboard !== undefined && host === this.config.dashboardHost;
    if (service === undefined && !dashboard) {
      this.refusals.tls.noService(client, host, '');
      return;
    }
    void this.edge.terminate(client, host!, hello).then((secure) => {
      if (secure !== undefined) this.onHttpConnection(secure);
    });
  }

  /** The dashboard's host is answered in-process; every other host is routed to its service. */
  private routeHttp(client: Socket, host: string, accept: string, head: readonly Buffer[]): void {
    if (this.dashboard === undefined || host !== this.config.dashboardHost) {
      this.route(client, host, head, this.refusals.http, accept);
      return;
    }
    try {
      this.dashboard.accept(client, head, host);
    } catch (err) {
      this.refuse(client, undefined, err, this.refusals.http, accept);
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
    if (service === undefined) return;
    // Its head came through a dial of ours (recorded at its connect, before the head was written).
    if (loopSuspected() && isOwnDial(client)) this.refuse(client, service, new LoopError(service.name, client.localPort ?? 0), refusal, accept);
    else void this.connectAndSplice(client, service, head, refusal, accept);
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

  private splice(client: Socket, upstream: Socket, service: ServiceConfig, head: readonly Buffer[]): void {
    if (client.destroyed) {
      upstream.destroy();
      return;
    }
    // The address getters are system calls: only when someone reads the debug output.
    if (debug.enabled) debug('splice %s:%d → %s', client.remoteAddress, client.remotePort, service.name);
    const through = isTerminated(client) && service.forwardedHeaders
      ? new ForwardedHeaders({ clientAddress: client.remoteAddress ?? '', maxHeadSize: this.config.maxHeadSize })
      : undefined;
    spliceSockets(client, upstream, head, through);
  }
}

/** Whether `client` is the decrypted side of a connection whose TLS we terminated. */
function isTerminated(client: Socket): client is TLSSocket {
  return (client as Partial<TLSSocket>).encrypted === true;
}

/** The head of a connection that sends nothing before it is spliced (a raw TCP one). */
const NO_BYTES: readonly Buffer[] = [];
