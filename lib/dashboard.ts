// The dashboard and its JSON API, answered by norikae itself on the reserved host
// (norikae.localhost) of every HTTP listener. The listener hands over the socket and the bytes it
// has already read; an in-process node:http server (never bound to a port) takes it from there.
// State-changing requests must be same-origin, so a page on another site cannot start or stop
// services through the user's browser.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import createDebug from 'debug';
import { portSuffix } from './address.js';
import { renderDashboardPage } from './dashboard-page.js';
import { controlErrors, NoServiceError, statusOf } from './errors.js';
import type { ServiceInfo, ServiceSupervisor } from './supervisor.js';

const debug = createDebug('norikae:dashboard');

/** SSE comment lines keep idle event streams from being closed by anything in between. */
const HEARTBEAT_MS = 15_000;
const MAX_LOG_LINES = 1000;

export class Dashboard {
  private readonly server: Server;
  private page: string | undefined;

  constructor(private readonly supervisor: ServiceSupervisor) {
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => sendError(res, err));
    });
    this.server.on('clientError', (_err, socket: Socket) => socket.destroy());
  }

  /** Takes over a client connection whose first bytes (`head`) were already read. */
  accept(socket: Socket, head: readonly Buffer[]): void {
    socket.unshift(Buffer.concat(head));
    this.server.emit('connection', socket);
    socket.resume();
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://dashboard');
    const path = url.pathname;
    debug('%s %s', req.method, path);
    if (req.method === 'GET' && path === '/') {
      this.page ??= renderDashboardPage({});
      send(res, 200, this.page, 'text/html; charset=utf-8');
      return;
    }
    if (req.method === 'GET' && path === '/api/services') {
      sendJson(res, 200, { services: this.supervisor.list().map((info) => withUrls(info, req)) });
      return;
    }
    if (req.method === 'GET' && path === '/api/events') {
      this.streamEvents(req, res, url.searchParams);
      return;
    }
    const match = /^\/api\/services\/([^/]+)(?:\/(logs|start|stop|restart))?$/.exec(path);
    if (match === null) throw controlErrors.notFound(path);
    const name = decodeName(match[1]!);
    const action = match[2];
    if (action === undefined || action === 'logs') {
      if (req.method !== 'GET') throw controlErrors.methodNotAllowed(`${req.method} is not allowed here`);
      const info = this.supervisor.info(name);
      if (info === undefined) throw new NoServiceError(name);
      if (action === undefined) {
        sendJson(res, 200, withUrls(info, req));
      } else {
        sendJson(res, 200, { name, lines: this.supervisor.logTail(name, clampLines(url.searchParams.get('lines'))) });
      }
      return;
    }
    if (req.method !== 'POST') throw controlErrors.methodNotAllowed(`use POST to ${action} a service`);
    checkSameOrigin(req);
    const info = action === 'start'
      ? await this.supervisor.start(name)
      : action === 'stop' ? await this.supervisor.stopByUser(name) : await this.supervisor.restart(name);
    sendJson(res, 202, { service: withUrls(info, req) });
  }

  /**
   * Server-Sent Events: `service` on every change, `log` for every line a service prints, `config`
   * when a reload changed the list (the page then loads it again). With
   * `?service=NAME&lines=N` the stream starts with NAME's last N lines, sent in the same tick as
   * the subscription, so a follower (`logs -f`) neither misses nor repeats a line.
   */
  private streamEvents(req: IncomingMessage, res: ServerResponse, query: URLSearchParams): void {
    const tailOf = query.get('service');
    const tail = tailOf === null ? [] : this.supervisor.logTail(tailOf, clampLines(query.get('lines')));
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'keep-alive' });
    res.write(': norikae-splice events\n\n');
    for (const line of tail) res.write(`event: log\ndata: ${JSON.stringify({ name: tailOf, line })}\n\n`);
    const onService = (info: ServiceInfo): void => {
      res.write(`event: service\ndata: ${JSON.stringify(withUrls(info, req))}\n\n`);
    };
    const onLog = (entry: { name: string; line: string }): void => {
      res.write(`event: log\ndata: ${JSON.stringify(entry)}\n\n`);
    };
    const onConfig = (): void => {
      res.write('event: config\ndata: {}\n\n');
    };
    this.supervisor.on('service', onService);
    this.supervisor.on('log', onLog);
    this.supervisor.on('config', onConfig);
    const heartbeat = setInterval(() => res.write(': \n\n'), HEARTBEAT_MS);
    heartbeat.unref();
    res.once('close', () => {
      clearInterval(heartbeat);
      this.supervisor.off('service', onService);
      this.supervisor.off('log', onLog);
      this.supervisor.off('config', onConfig);
    });
  }
}

/** A service name from a URL path; bad percent-encoding is the client's mistake, not ours. */
function decodeName(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw controlErrors.badName(text);
  }
}

/** `?lines=N` within 0…MAX_LOG_LINES, 100 when absent or not a number. */
function clampLines(value: string | null): number {
  const lines = value === null || value === '' ? 100 : Number(value);
  return Number.isFinite(lines) ? Math.min(MAX_LOG_LINES, Math.max(0, Math.floor(lines))) : 100;
}

/** Links to a service's hosts on the port the dashboard itself was reached on. */
function withUrls(info: ServiceInfo, req: IncomingMessage): ServiceInfo & { urls: string[] } {
  const port = /:(\d+)$/.exec(req.headers.host ?? '')?.[1];
  const suffix = portSuffix(port === undefined ? undefined : Number(port));
  return { ...info, urls: info.hosts.filter((host) => !host.startsWith('*.')).map((host) => `http://${host}${suffix}/`) };
}

/**
 * Refuses state changes a page on another site could make through the user's browser. Browsers
 * send `Sec-Fetch-Site` and `Origin` with such requests; the CLI sends neither.
 */
function checkSameOrigin(req: IncomingMessage): void {
  const site = req.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin' && site !== 'none') {
    throw controlErrors.crossSite('site');
  }
  const origin = req.headers.origin;
  if (origin !== undefined && origin !== `http://${req.headers.host}`) {
    throw controlErrors.crossSite('origin');
  }
}

function sendError(res: ServerResponse, err: unknown): void {
  const status = statusOf(err);
  if (status === 500) debug('error %O', err);
  if (res.headersSent) {
    res.destroy();
    return;
  }
  sendJson(res, status, { error: err instanceof Error ? err.message : String(err) });
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  send(res, status, JSON.stringify(body), 'application/json; charset=utf-8');
}

/**
 * Never inside another site's frame: a click there on a Start button is the user's own,
 * same-origin click, which no Origin check can tell apart (clickjacking).
 */
const NO_FRAMING = { 'x-frame-options': 'DENY', 'content-security-policy': "frame-ancestors 'none'" };

function send(res: ServerResponse, status: number, body: string, type: string): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store', ...NO_FRAMING });
  res.end(body);
}
