// The dashboard's Server-Sent Events (`/api/events`): one subscription to the supervisor, fanned out
// to every open stream. A stream whose client does not read (a `logs -f` suspended with Ctrl-Z, a
// page in a frozen tab) costs bounded memory: once more than SLOW_CLIENT_BYTES wait in its buffers,
// nothing more is written to it. Its log lines are counted and dropped, and the services and
// config that changed are noted; when it drains, it gets one `dropped` event per service that lost
// lines (`{ "name", "lines" }`), then each noted service's current state and the config's.

import type { ServerResponse } from 'node:http';
import type { ServiceInfo } from './service-info.js';

/** SSE comment lines keep idle event streams from being closed by anything in between. */
const HEARTBEAT_MS = 15_000;
/** Bytes waiting for a client past which it is written nothing more until it drains. */
export const SLOW_CLIENT_BYTES = 256 * 1024;

/** The events the dashboard streams, with what each carries. */
export interface DashboardEvents {
  service: [info: ServiceInfo];
  log: [entry: { name: string; line: string }];
  config: [];
}

/** What the stream needs of the supervisor. */
export interface EventSource {
  info(name: string): ServiceInfo | undefined;
  on<E extends keyof DashboardEvents>(event: E, listener: (...args: DashboardEvents[E]) => void): unknown;
  off<E extends keyof DashboardEvents>(event: E, listener: (...args: DashboardEvents[E]) => void): unknown;
}

/** An open stream, and what it missed while it was not reading. */
interface Client {
  res: ServerResponse;
  /** The Host it was asked for with: its service links use that port. */
  host: string | undefined;
  /** Not written to until its buffers drain. */
  behind: boolean;
  /** Log lines dropped while behind, by service. */
  droppedLines: Map<string, number>;
  /** Services whose state changed while behind. */
  staleServices: Set<string>;
  staleConfig: boolean;
  /** Log lines dropped since it opened, in all. */
  droppedTotal: number;
}

/** One open stream as the tests and the soak see it. */
export interface EventClientStats {
  /** Bytes written to it that it has not read yet (in our buffers). */
  buffered: number;
  behind: boolean;
  droppedLines: number;
}

export class EventStream {
  private readonly clients = new Set<Client>();
  private heartbeat: NodeJS.Timeout | undefined;

  /**
   * `view`: a ServiceInfo as a client that came in with `host` sees it (links on its port).
   * `configData`: what a `config` event carries.
   */
  constructor(
    private readonly source: EventSource,
    private readonly view: (info: ServiceInfo, host: string | undefined) => unknown,
    private readonly configData: () => unknown,
  ) {}

  /**
   * Starts a stream on `res`: its head, the `tail` lines of service `tailOf` (written in the same
   * tick as it joins the fan-out, so a follower neither misses nor repeats a line), then events.
   */
  open(res: ServerResponse, host: string | undefined, headers: Record<string, string>, tailOf: string | null, tail: string[]): void {
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'keep-alive', ...headers });
    res.write(': norikae-splice events\n\n');
    for (const line of tail) res.write(logEvent({ name: tailOf!, line }));
    const client: Client = { res, host, behind: false, droppedLines: new Map(), staleServices: new Set(), staleConfig: false, droppedTotal: 0 };
    this.add(client);
    res.once('close', () => this.remove(client));
  }

  /** Every open stream's buffered bytes and dropped lines. */
  stats(): EventClientStats[] {
    return [...this.clients].map((client) => ({ buffered: client.res.writableLength, behind: client.behind, droppedLines: client.droppedTotal }));
  }

  /**
   * The first open stream subscribes to the supervisor, once for all of them: a listener per
   * stream would pass the emitter's limit at 11 open pages. With none open there is no `log`
   * listener, so the supervisor does not even make the events.
   */
  private add(client: Client): void {
    if (this.clients.size === 0) {
      this.source.on('service', this.onService);
      this.source.on('log', this.onLog);
      this.source.on('config', this.onConfig);
      this.heartbeat = setInterval(() => {
        for (const each of this.clients) if (!this.isBehind(each)) each.res.write(': \n\n');
      }, HEARTBEAT_MS);
      this.heartbeat.unref();
    }
    this.clients.add(client);
  }

  /** Drops a closed stream; the last one out unsubscribes. */
  private remove(client: Client): void {
    if (!this.clients.delete(client) || this.clients.size > 0) return;
    this.source.off('service', this.onService);
    this.source.off('log', this.onLog);
    this.source.off('config', this.onConfig);
    clearInterval(this.heartbeat);
    this.heartbeat = undefined;
  }

  /** Whether `client` is (now) too far behind to be written to; the first time, it waits for 'drain'. */
  private isBehind(client: Client): boolean {
    if (client.behind) return true;
    if (client.res.writableLength <= SLOW_CLIENT_BYTES) return false;
    client.behind = true;
    // A write past the buffer's high-water mark returned false before it got this far, so the
    // response emits 'drain' once its socket has written everything out.
    client.res.once('drain', () => this.catchUp(client));
    return true;
  }

  /** A client that drained: what it missed, in short. */
  private catchUp(client: Client): void {
    client.behind = false;
    const { res } = client;
    for (const [name, lines] of client.droppedLines) res.write(`event: dropped\ndata: ${JSON.stringify({ name, lines })}\n\n`);
    for (const name of client.staleServices) {
      const info = this.source.info(name);
      if (info !== undefined) res.write(`event: service\ndata: ${JSON.stringify(this.view(info, client.host))}\n\n`);
    }
    if (client.staleConfig) res.write(`event: config\ndata: ${JSON.stringify(this.configData())}\n\n`);
    client.droppedLines.clear();
    client.staleServices.clear();
    client.staleConfig = false;
  }

  private readonly onService = (info: ServiceInfo): void => {
    // Its links name the port a client came in on: one text per Host, shared by its clients.
    const texts = new Map<string | undefined, string>();
    for (const client of this.clients) {
      if (this.isBehind(client)) {
        client.staleServices.add(info.name);
        continue;
      }
      let text = texts.get(client.host);
      if (text === undefined) {
        text = `event: service\ndata: ${JSON.stringify(this.view(info, client.host))}\n\n`;
        texts.set(client.host, text);
      }
      client.res.write(text);
    }
  };

  private readonly onLog = (entry: { name: string; line: string }): void => {
    let text: string | undefined;
    for (const client of this.clients) {
      if (this.isBehind(client)) {
        client.droppedLines.set(entry.name, (client.droppedLines.get(entry.name) ?? 0) + 1);
        client.droppedTotal++;
        continue;
      }
      client.res.write(text ??= logEvent(entry));
    }
  };

  private readonly onConfig = (): void => {
    const text = `event: config\ndata: ${JSON.stringify(this.configData())}\n\n`;
    for (const client of this.clients) {
      if (this.isBehind(client)) client.staleConfig = true;
      else client.res.write(text);
    }
  };
}

function logEvent(entry: { name: string; line: string }): string {
  return `event: log\ndata: ${JSON.stringify(entry)}\n\n`;
}
