// The dashboard and its JSON API, answered by norikae itself on the reserved host
// (norikae.localhost) of every HTTP listener. The listener hands over the socket and the bytes it
// has already read; an in-process node:http server (never bound to a port) takes it from there.
// The page is three files of our own (lib/dashboard/), and the CSP allows nothing else.
// State-changing requests must be same-origin, so a page on another site cannot start or stop
// services through the user's browser.

import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { createDebug } from './packages.js';
import { portSuffix } from './address.js';
import { randomBytes } from 'node:crypto';
import { headErrorPage, writeAnswer } from './answers.js';
import { ApiAccess } from './api-access.js';
import { DashboardConnection } from './dashboard-connection.js';
import { controlErrors, headErrors, NoServiceError, statusOf } from './errors.js';
import { EventStream, type DashboardEvents } from './event-stream.js';
import type { ServiceInfo } from './supervisor.js';

export type { DashboardEvents } from './event-stream.js';

const debug = createDebug('norikae:dashboard');

const MAX_LOG_LINES = 1000;

/**
 * The page's files (lib/dashboard/), which the build puts in dist/lib/dashboard/. Named from the
 * parent folder because this module also runs inside the command's bundle, dist/bin/norikae-splice.js.
 */
const PAGE_DIR = new URL('../lib/dashboard/', import.meta.url);
const PAGE_FILES = new Map([
  ['/', { file: 'index.html', type: 'text/html; charset=utf-8' }],
  ['/dashboard.css', { file: 'dashboard.css', type: 'text/css; charset=utf-8' }],
  ['/dashboard.js', { file: 'dashboard.js', type: 'text/javascript; charset=utf-8' }],
]);

/** What the dashboard uses of the supervisor: its services, their logs and actions, its events. */
export interface DashboardSource {
  list(): ServiceInfo[];
  info(name: string): ServiceInfo | undefined;
  logTail(name: string, lines: number): string[];
  start(name: string): Promise<ServiceInfo>;
  stopByUser(name: string): Promise<ServiceInfo>;
  restart(name: string): Promise<ServiceInfo>;
  on<E extends keyof DashboardEvents>(event: E, listener: (...args: DashboardEvents[E]) => void): unknown;
  off<E extends keyof DashboardEvents>(event: E, listener: (...args: DashboardEvents[E]) => void): unknown;
  /** Why the last reload of the config file was refused (the running config is kept), or null. */
  reloadError?(): string | null;
}

/** The config values the dashboard host's connections are held to; read at each use (a reload may change them). */
export interface DashboardLimits {
  /** Seconds for every request head and body (the config's `head_timeout`). */
  headTimeout: number;
  /** Bytes of a request head (`max_head_size`); read once, when the dashboard is made. */
  maxHeadSize: number;
}

export interface DashboardOptions {
  /** Who may use the API; default: only connections of this process's uid (see api-access.ts). */
  access?: ApiAccess;
  /** Default: the config defaults (10 s, 16 KiB). */
  limits?: () => DashboardLimits;
}

const DEFAULT_LIMITS: DashboardLimits = { headTimeout: 10, maxHeadSize: 16 * 1024 };

export class Dashboard {
  private readonly server: Server;
  /** The page's files by path, each read once. */
  private readonly pageFiles = new Map<string, Promise<string>>();
  private readonly access: ApiAccess;
  /** `/api/events`: the supervisor's events, fanned out to every open stream. */
  readonly events: EventStream;
  /** Each connection's limits, and the host it was routed by (what a same-origin request's Origin names). */
  private readonly connections = new WeakMap<Socket, DashboardConnection>();

  constructor(
    private readonly source: DashboardSource,
    private readonly options: DashboardOptions = {},
  ) {
    this.access = options.access ?? new ApiAccess(randomBytes(32).toString('base64url'), 'local');
    this.events = new EventStream(source, withUrls, () => ({ reloadError: this.reloadError() }));
    this.server = createServer({ maxHeaderSize: options.limits?.().maxHeadSize ?? DEFAULT_LIMITS.maxHeadSize }, (req, res) => {
      const connection = this.connections.get(req.socket);
      if (connection === undefined) {
        req.socket.destroy();
        return;
      }
      connection.request(req, res)
        .then((open) => (open ? this.handle(req, res, connection) : undefined))
        .catch((err: unknown) => sendError(res, err));
    });
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
      // A head after the first that Node's parser refuses: answered as the listener answers a first one.
      const error = err.code === 'HPE_HEADER_OVERFLOW' ? headErrors.tooLarge(this.limits().maxHeadSize) : headErrors.malformed(err.code ?? 'unreadable');
      if (socket.writable && (err as { bytesParsed?: number }).bytesParsed !== undefined) writeAnswer(socket, headErrorPage(error), '');
      else socket.destroy();
    });
  }

  /** Takes over a client connection whose first bytes (`head`) were already read and routed by `host`. */
  accept(socket: Socket, head: readonly Buffer[], host: string): void {
    socket.unshift(Buffer.concat(head));
    this.server.emit('connection', socket);
    // After the server's own listeners: its parser then reads through 'data' events (it stops
    // consuming the socket's handle directly when another 'data' listener comes), so the
    // connection sees the bytes of every later head.
    this.connections.set(socket, new DashboardConnection(socket, host, () => this.limits().headTimeout));
    socket.resume();
  }

  private limits(): DashboardLimits {
    return this.options.limits?.() ?? DEFAULT_LIMITS;
  }

  private async handle(req: IncomingMessage, res: ServerResponse, connection: DashboardConnection): Promise<void> {
    const url = requestUrl(req.url ?? '/');
    const path = url.pathname;
    debug('%s %s', req.method, path);
    const pageFile = PAGE_FILES.get(path);
    if (req.method === 'GET' && pageFile !== undefined) {
      send(res, 200, await this.readPageFile(path, pageFile.file), pageFile.type);
      return;
    }
    if (req.method === 'GET' && path === '/favicon.ico') {
      // There is none; an empty answer keeps the browser's automatic request out of the console.
      res.writeHead(204, { 'cache-control': 'no-store', ...SECURITY_HEADERS });
      res.end();
      return;
    }
    if (path === '/api/session') {
      this.openSession(req, res);
      return;
    }
    // The page's files are public; everything under /api/ is only for the user who runs norikae-splice.
    if (path.startsWith('/api/') && !(await this.access.allows(req))) throw controlErrors.forbidden();
    if (req.method === 'GET' && path === '/api/services') {
      const services = this.source.list().map((info) => withUrls(info, req.headers.host));
      sendJson(res, 200, { services, reloadError: this.reloadError() });
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
      const info = this.source.info(name);
      if (info === undefined) throw new NoServiceError(name);
      if (action === undefined) {
        sendJson(res, 200, withUrls(info, req.headers.host));
      } else {
        sendJson(res, 200, { name, lines: this.source.logTail(name, clampLines(url.searchParams.get('lines'))) });
      }
      return;
    }
    if (req.method !== 'POST') throw controlErrors.methodNotAllowed(`use POST to ${action} a service`);
    checkSameOrigin(req, connection.routedHost);
    const info = action === 'start'
      ? await this.source.start(name)
      : action === 'stop' ? await this.source.stopByUser(name) : await this.source.restart(name);
    sendJson(res, 202, { service: withUrls(info, req.headers.host) });
  }

  /**
   * POST /api/session with `Authorization: Bearer KEY`: the page that `norikae-splice dashboard`
   * opened trades the key (from its URL's fragment, which no request or Referer carries) for a
   * cookie, which its fetches and its EventSource then send.
   */
  private openSession(req: IncomingMessage, res: ServerResponse): void {
    if (req.method !== 'POST') throw controlErrors.methodNotAllowed('use POST to open a session');
    checkSameOrigin(req, this.connections.get(req.socket)?.routedHost);
    const key = /^Bearer (\S+)$/i.exec(req.headers.authorization ?? '')?.[1];
    if (key === undefined || !this.access.isKey(key)) throw controlErrors.forbidden();
    res.writeHead(204, { 'set-cookie': this.access.sessionCookie(key), 'cache-control': 'no-store', ...SECURITY_HEADERS });
    res.end();
  }

  /** A file of the page, read on first use and kept; a failed read is tried again next time. */
  private readPageFile(path: string, file: string): Promise<string> {
    let text = this.pageFiles.get(path);
    if (text === undefined) {
      text = readFile(new URL(file, PAGE_DIR), 'utf8');
      text.catch(() => this.pageFiles.delete(path));
      this.pageFiles.set(path, text);
    }
    return text;
  }

  /**
   * Server-Sent Events (see event-stream.ts): `service` on every change, `log` for every line a
   * service prints, `config` (`{ reloadError }`) when a reload changed the list or was refused (the
   * page then loads the list again), `dropped` (`{ name, lines }`) for the lines a client that fell
   * behind missed. With `?service=NAME&lines=N` the stream starts with NAME's last N lines.
   */
  private streamEvents(req: IncomingMessage, res: ServerResponse, query: URLSearchParams): void {
    const tailOf = query.get('service');
    const tail = tailOf === null ? [] : this.source.logTail(tailOf, clampLines(query.get('lines')));
    this.events.open(res, req.headers.host, SECURITY_HEADERS, tailOf, tail);
  }

  /** A refused reload's reason while it stands; null from a source that does not tell. */
  private reloadError(): string | null {
    return this.source.reloadError?.() ?? null;
  }
}

/**
 * The request target as a URL. An origin-form target is a path, even one that starts with `//`
 * (which `new URL(target, base)` would take for a host: `GET //` is a path to answer 404, not a
 * 500); an absolute-form one (`http://norikae.localhost:8080/api/…`) is read as the URL it is.
 */
function requestUrl(target: string): URL {
  try {
    return target.startsWith('/') ? new URL(`http://dashboard${target}`) : new URL(target);
  } catch {
    throw controlErrors.badTarget(target);
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
function withUrls(info: ServiceInfo, host: string | undefined): ServiceInfo & { urls: string[] } {
  const port = /:(\d+)$/.exec(host ?? '')?.[1];
  const suffix = portSuffix(port === undefined ? undefined : Number(port));
  return { ...info, urls: info.hosts.filter((host) => !host.startsWith('*.')).map((host) => `http://${host}${suffix}/`) };
}

/**
 * Refuses state changes a page on another site could make through the user's browser. Browsers
 * send `Sec-Fetch-Site` and `Origin` with such requests; the CLI sends neither. The Origin must
 * name the host routing used (`routedHost`: an absolute-form target's, not a Host header that
 * routing ignored) on the port the connection came in on.
 */
function checkSameOrigin(req: IncomingMessage, routedHost: string | undefined): void {
  const site = req.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin' && site !== 'none') {
    throw controlErrors.crossSite('site');
  }
  const origin = req.headers.origin;
  if (origin !== undefined && !isOwnOrigin(origin, routedHost, req.socket.localPort)) {
    throw controlErrors.crossSite('origin');
  }
}

/** `http://HOST[:PORT]` of the dashboard itself: the routed host, on the port the connection reached. */
function isOwnOrigin(origin: string, routedHost: string | undefined, localPort: number | undefined): boolean {
  if (routedHost === undefined || localPort === undefined) return false;
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return false;
  }
  const port = url.port === '' ? 80 : Number(url.port);
  return url.protocol === 'http:' && url.origin === origin && url.hostname === routedHost && port === localPort;
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
 * Only the page's own files and API, so nothing injected into it could run or load; and never
 * inside another site's frame: a click there on a Start button is the user's own, same-origin
 * click, which no Origin check can tell apart (clickjacking).
 */
const SECURITY_HEADERS = {
  'content-security-policy': "default-src 'self'; frame-ancestors 'none'",
  'x-frame-options': 'DENY',
  // A fragment is never in a Referer anyway; nothing else of the page's URLs needs to be either.
  'referrer-policy': 'no-referrer',
};

function send(res: ServerResponse, status: number, body: string, type: string): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store', ...SECURITY_HEADERS });
  res.end(body);
}
