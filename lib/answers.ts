// Our own answers (400, 404, 405, 431, 502, …, and TLS alerts): the only place that writes raw HTTP
// or TLS. Each HTTP answer is a complete HTTP/1.1 response with `Connection: close`, an HTML page for
// browsers and plain text for everything else (by `Accept`), written in one piece; then the socket
// is closed gently so the client reads the answer before the connection goes.

import { STATUS_CODES } from 'node:http';
import { isIP, type Socket } from 'node:net';
import { portSuffix } from './address.js';
import type { ServiceConfig } from './config.js';
import { HeadError, LaunchCancelledError, LaunchError, LoopError, NorikaeError, ReadinessTimeoutError, ServiceStoppedError, statusOf, UpstreamConnectError } from './errors.js';

export interface AnswerPage {
  status: number;
  /** One line: what happened. */
  title: string;
  /** A few sentences: why, and what to do about it. */
  message: string;
  /** Things to list (configured services on the 404 page); `href` makes a link. */
  items?: { label: string; href?: string | undefined; note?: string | undefined }[];
  /** Recent output of a service, for launch failures. */
  log?: string[];
  /** A command to run, shown as code (the 503 of a stopped service). */
  command?: string;
  /** A redirect's target: sent as `Location` and linked from the page. */
  location?: string;
}

/** How long a refused client may keep sending before we close anyway. */
const LINGER_MS = 2000;

/** Writes `page` as a complete response and closes the socket once the client has it. */
export function writeAnswer(socket: Socket, page: AnswerPage, accept: string): void {
  if (socket.destroyed || socket.writableEnded) return;
  const html = accept.includes('text/html');
  const body = Buffer.from(html ? renderHtml(page) : renderText(page), 'utf8');
  const head = `HTTP/1.1 ${page.status} ${STATUS_CODES[page.status] ?? 'Error'}\r\n`
    + `Content-Type: ${html ? 'text/html' : 'text/plain'}; charset=utf-8\r\n`
    + `Content-Length: ${body.length}\r\n`
    + (page.location === undefined ? '' : `Location: ${page.location}\r\n`)
    + 'Cache-Control: no-store\r\n'
    + 'Connection: close\r\n'
    + 'Server: norikae-splice\r\n\r\n';
  socket.end(Buffer.concat([Buffer.from(head, 'latin1'), body]));
  lingerThenDestroy(socket);
}

/**
 * Closing a socket that still has unread input makes the kernel send a reset, which can destroy
 * the answer before the client reads it. So we read and drop what the client still sends until
 * it closes its side, or for LINGER_MS at most.
 */
function lingerThenDestroy(socket: Socket): void {
  const timer = setTimeout(() => socket.destroy(), LINGER_MS);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
  socket.once('end', () => socket.destroy());
  socket.removeAllListeners('data');
  socket.resume();
}

/** TLS alert descriptions we send (RFC 8446 §6.2). */
export const TlsAlert = {
  /** No service has the ClientHello's SNI name (or it has none). */
  UNRECOGNIZED_NAME: 112,
  /** The service could not be reached, or we failed on the way. */
  INTERNAL_ERROR: 80,
} as const;

export type TlsAlert = (typeof TlsAlert)[keyof typeof TlsAlert];

/** A fatal TLS alert record, then close: the only answer a TLS client can read from us. */
export function writeTlsAlert(socket: Socket, description: TlsAlert): void {
  if (socket.destroyed || socket.writableEnded) return;
  socket.end(Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, description]));
  socket.once('finish', () => socket.destroy());
}

/** 400, 405, 431, 505: a request head we refuse, with the sniffer's reason. */
export function headErrorPage(error: HeadError): AnswerPage {
  return { status: error.status, title: STATUS_CODES[error.status] ?? 'Bad request', message: error.message };
}

/**
 * 404: an unknown host, with every configured service as a link on the port the client used. The
 * list is only for names a developer mistypes (see mayListServices); a name of someone else's
 * domain gets the 404 without it.
 */
export function notFoundPage(
  host: string,
  services: readonly ServiceConfig[],
  listenPort: number | undefined,
  dashboardHost?: string | undefined,
  scheme: 'http' | 'https' = 'http',
): AnswerPage {
  if (!mayListServices(host, services)) {
    return {
      status: 404,
      title: `No service is configured for ${host}`,
      message: 'norikae-splice only forwards to the hosts in its config file. It lists them on this page only for local names '
        + '(*.localhost, or a sibling of a configured host), so that a web page whose domain was pointed at 127.0.0.1 cannot read them.',
      items: [],
    };
  }
  const port = scheme === 'https' ? (listenPort === 443 || listenPort === undefined ? '' : `:${listenPort}`) : portSuffix(listenPort);
  const items = services.flatMap((service) => service.hosts.map((name) => ({
    label: name,
    href: name.startsWith('*.') ? undefined : `${scheme}://${name}${port}/`,
    note: service.name === name ? undefined : `service ${service.name}`,
  })));
  if (dashboardHost !== undefined) items.push({ label: dashboardHost, href: `${scheme}://${dashboardHost}${port}/`, note: 'the norikae-splice dashboard' });
  return {
    status: 404,
    title: `No service is configured for ${host}`,
    message: services.length === 0
      ? 'No services are configured. Add a [service.NAME] table with a host and a port to the config file.'
      : 'norikae-splice only forwards to the hosts in its config file. These are configured:',
    items,
  };
}

/** Top-level names reserved for private use (RFC 6761, RFC 2606, RFC 6762, ICANN's .internal): nobody can register one. */
const PRIVATE_TLDS = ['localhost', 'test', 'example', 'invalid', 'local', 'internal', 'lan', 'home.arpa'];

/**
 * Whether a 404 for `host` may list the configured services. DNS rebinding points a domain
 * someone controls at 127.0.0.1, so a page on it can read our answers: it must not learn the
 * names of the user's projects. An address, `localhost`, a `.localhost` name, a name under a
 * configured one, or a sibling of a configured name under a private top-level name
 * (`typo.app.test` beside `api.app.test`) is the developer's own typo, and there the list is
 * what helps. A sibling under a public name is not: `co.uk` and `github.io` look like any
 * registrable parent, and anyone can register beside `myshop.co.uk`.
 */
export function mayListServices(host: string, services: readonly ServiceConfig[]): boolean {
  const within = (suffix: string): boolean => host === suffix || host.endsWith(`.${suffix}`);
  if (isIP(host) !== 0 || within('localhost')) return true;
  for (const service of services) {
    for (const name of service.hosts) {
      const bare = name.startsWith('*.') ? name.slice(2) : name;
      if (within(bare)) return true;
      const parent = bare.slice(bare.indexOf('.') + 1);
      if (bare.includes('.') && PRIVATE_TLDS.some((tld) => parent === tld || parent.endsWith(`.${tld}`)) && within(parent)) return true;
    }
  }
  return false;
}

/**
 * 308 to the same request over HTTPS (`https_redirect`): `host` as the client wrote it (without
 * its port), on `httpsPort`, with the path of `target` (origin- or absolute-form).
 */
export function httpsRedirectPage(host: string, httpsPort: number, target: string): AnswerPage {
  const path = target.startsWith('/') ? target : (/^[a-z]+:\/\/[^/?#]*(.*)$/i.exec(target)?.[1] || '/');
  const authority = isIP(host) === 6 ? `[${host}]` : host;
  const location = `https://${authority}${httpsPort === 443 ? '' : `:${httpsPort}`}${path.startsWith('/') ? path : `/${path}`}`;
  return {
    status: 308,
    title: 'This service is served over HTTPS',
    message: `Its address is ${location}`,
    items: [{ label: location, href: location }],
    location,
  };
}

/** 500: we failed before the request had a service (a bug of ours; the log says what it was). */
export function internalErrorPage(): AnswerPage {
  return {
    status: 500,
    title: 'norikae-splice could not route this request',
    message: 'An internal error of norikae-splice kept this request from its service; norikae-splice\'s log says what went wrong.',
  };
}

/** The answer for an error reaching a service's upstream, with the status statusOf gives it. */
export function upstreamErrorPage(service: ServiceConfig, error: unknown): AnswerPage {
  const status = statusOf(error);
  if (error instanceof UpstreamConnectError) {
    const refused = error.reason === 'ECONNREFUSED';
    if (error.reason === 'ETIMEDOUT') {
      return {
        status,
        title: `${service.name} did not answer`,
        message: `${error.address} did not accept the connection in time (connect_timeout). Is something there stuck, or dropping connections?`,
      };
    }
    return {
      status,
      title: `${service.name} is not running`,
      message: refused
        ? `Nothing accepted a connection on ${error.address} (connection refused). Start the dev server of ${service.name}, `
          + `or give [service.${service.name}] a \`command\` (for example command = "npm run dev -- --port {port}") so norikae-splice launches it on demand.`
        : `Connecting to ${error.address} failed (${error.reason}).`,
    };
  }
  if (error instanceof ServiceStoppedError) {
    return {
      status,
      title: `${service.name} is stopped`,
      message: `${service.name} was stopped by you, so requests do not launch it. Start it from the dashboard, or run:`,
      command: error.startCommand,
    };
  }
  if (error instanceof LoopError) {
    return { status, title: `${service.name} loops back into norikae-splice`, message: error.message };
  }
  if (error instanceof LaunchCancelledError) {
    return { status, title: `${service.name} was not launched`, message: `${error.message} Reload the page to try again.` };
  }
  if (error instanceof LaunchError) {
    return { status, title: `${service.name} failed to start`, message: error.message, log: error.logTail };
  }
  if (error instanceof ReadinessTimeoutError) {
    return { status, title: `${service.name} did not become ready`, message: error.message, log: error.logTail };
  }
  // A bug of ours is still answered, as a 502: the client asked for the service, not for us.
  const message = error instanceof NorikaeError ? error.message : `Internal error: ${String(error)}`;
  return { status: error instanceof NorikaeError ? status : 502, title: `${service.name} could not be reached`, message };
}

function renderText(page: AnswerPage): string {
  const lines = [`${page.status} ${STATUS_CODES[page.status] ?? 'Error'}: ${page.title}`, '', page.message];
  if (page.items?.length) {
    lines.push('');
    for (const item of page.items) {
      lines.push(`  ${item.href ?? item.label}${item.note ? `  (${item.note})` : ''}`);
    }
  }
  if (page.command !== undefined) lines.push('', `  ${page.command}`);
  if (page.log?.length) lines.push('', 'Last output:', ...page.log.map((line) => `  | ${line}`));
  return `${lines.join('\n')}\n`;
}

function renderHtml(page: AnswerPage): string {
  const items = page.items?.length
    ? `<ul>${page.items.map((item) => `<li>${item.href ? `<a href="${escapeHtml(item.href)}">${escapeHtml(item.label)}</a>` : `<code>${escapeHtml(item.label)}</code>`}${item.note ? ` <small>${escapeHtml(item.note)}</small>` : ''}</li>`).join('')}</ul>`
    : '';
  const log = page.log?.length ? `<h2>Last output</h2><pre>${escapeHtml(page.log.join('\n'))}</pre>` : '';
  const command = page.command === undefined ? '' : `<pre>${escapeHtml(page.command)}</pre>`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>${page.status} · ${escapeHtml(page.title)}</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:46rem;margin:3rem auto;padding:0 1rem;color:#222}
h1{font-size:1.4rem}small,.status{color:#777}pre{background:#f4f4f4;padding:1rem;overflow:auto;font-size:13px}
a{color:#0645ad}</style></head>
<body><p class="status">${page.status} ${escapeHtml(STATUS_CODES[page.status] ?? 'Error')} · norikae-splice</p>
<h1>${escapeHtml(page.title)}</h1><p>${escapeHtml(page.message)}</p>${command}${items}${log}</body></html>
`;
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
}
