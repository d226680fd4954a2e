// The error catalogue: every error norikae-splice raises on purpose has a stable code (a constant
// here, never a literal at a call site), a class or factory of its own, and the HTTP status it is
// answered with. `statusOf` is the one mapping from an error to a status, for the data path's
// answers and the dashboard's API alike; nothing throws bare strings.

import { formatAddress } from './address.js';

/** Every code, with the HTTP status it is answered with (500 for those that never reach a client). */
const CATALOGUE = {
  /** A config file that cannot be used. */
  CONFIG: ['NORIKAE_ERR_CONFIG', 500],
  /** A listener that could not be bound. */
  LISTEN: ['NORIKAE_ERR_LISTEN', 500],

  // A first request head we refuse.
  HEAD_TOO_LARGE: ['NORIKAE_ERR_HEAD_TOO_LARGE', 431],
  HEAD_MALFORMED: ['NORIKAE_ERR_MALFORMED_HEAD', 400],
  HEAD_INCOMPLETE: ['NORIKAE_ERR_HEAD_INCOMPLETE', 400],
  HEAD_TIMEOUT: ['NORIKAE_ERR_HEAD_TIMEOUT', 408],
  HEAD_UNREADABLE: ['NORIKAE_ERR_INTERNAL', 400],
  HTTP2_PRIOR_KNOWLEDGE: ['NORIKAE_ERR_HTTP2_PRIOR_KNOWLEDGE', 400],
  HTTP_VERSION: ['NORIKAE_ERR_HTTP_VERSION', 505],
  CONNECT_METHOD: ['NORIKAE_ERR_CONNECT', 405],
  HOST: ['NORIKAE_ERR_HOST', 400],
  TARGET: ['NORIKAE_ERR_TARGET', 400],

  // Reaching a service.
  NO_SERVICE: ['NORIKAE_ERR_NO_SERVICE', 404],
  UPSTREAM_CONNECT: ['NORIKAE_ERR_UPSTREAM_CONNECT', 502],
  UPSTREAM_TIMEOUT: ['NORIKAE_ERR_UPSTREAM_TIMEOUT', 504],
  LAUNCH: ['NORIKAE_ERR_LAUNCH', 502],
  LAUNCH_CANCELLED: ['NORIKAE_ERR_LAUNCH_CANCELLED', 503],
  READY_TIMEOUT: ['NORIKAE_ERR_READY_TIMEOUT', 504],
  STOPPED: ['NORIKAE_ERR_STOPPED', 503],
  LOOP: ['NORIKAE_ERR_LOOP', 508],

  // The control API (dashboard, CLI).
  NOT_CONTROLLABLE: ['NORIKAE_ERR_NOT_CONTROLLABLE', 409],
  NOT_LAUNCHED_HERE: ['NORIKAE_ERR_NOT_LAUNCHED_HERE', 409],
  BAD_REQUEST: ['NORIKAE_ERR_BAD_REQUEST', 400],
  NOT_FOUND: ['NORIKAE_ERR_NOT_FOUND', 404],
  METHOD_NOT_ALLOWED: ['NORIKAE_ERR_METHOD_NOT_ALLOWED', 405],
  CROSS_SITE: ['NORIKAE_ERR_CROSS_SITE', 403],
  /** A start or restart that a stop sent after it overtook: the stop stands. */
  OVERTAKEN: ['NORIKAE_ERR_OVERTAKEN', 409],
  /** A request body on the dashboard host: the API takes none, so only a small one is read (and dropped). */
  BODY_TOO_LARGE: ['NORIKAE_ERR_BODY_TOO_LARGE', 413],
  BODY_TIMEOUT: ['NORIKAE_ERR_BODY_TIMEOUT', 408],
  BODY_INCOMPLETE: ['NORIKAE_ERR_BODY_INCOMPLETE', 400],
  /** An API request from another user (or without the key, where the user cannot be told). */
  FORBIDDEN: ['NORIKAE_ERR_FORBIDDEN', 403],

  // The local CA and its certificates.
  CA: ['NORIKAE_ERR_CA', 500],
  CA_CONSTRAINTS: ['NORIKAE_ERR_CA_CONSTRAINTS', 500],

  // The CLI's commands to a running instance.
  NOT_RUNNING: ['NORIKAE_ERR_NOT_RUNNING', 500],
  ALREADY_RUNNING: ['NORIKAE_ERR_RUNNING', 500],
  NO_DASHBOARD: ['NORIKAE_ERR_NO_DASHBOARD', 500],
  API: ['NORIKAE_ERR_API', 500],

  // Setting up: init, add, hosts.
  CONFIG_EXISTS: ['NORIKAE_ERR_CONFIG_EXISTS', 500],
  SERVICE_EXISTS: ['NORIKAE_ERR_SERVICE_EXISTS', 500],
  SERVICE_NAME: ['NORIKAE_ERR_SERVICE_NAME', 500],
  NO_PROJECT: ['NORIKAE_ERR_NO_PROJECT', 500],
  HOSTS_FILE: ['NORIKAE_ERR_HOSTS_FILE', 500],
  // The startup service (`norikae-splice service`) and terminals (`attach`).
  SERVICE_INSTALL: ['NORIKAE_ERR_SERVICE_INSTALL', 500],
  TERMINAL: ['NORIKAE_ERR_TERMINAL', 409],
} as const;

type Catalogue = typeof CATALOGUE;

export const ErrorCode = Object.fromEntries(Object.entries(CATALOGUE).map(([name, [code]]) => [name, code])) as
  { readonly [Name in keyof Catalogue]: Catalogue[Name][0] };

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

const STATUS = Object.fromEntries(Object.values(CATALOGUE)) as Record<ErrorCode, number>;

export class NorikaeError extends Error {
  readonly code: ErrorCode;
  /** The HTTP status this error is answered with. */
  readonly status: number;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; status?: number }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.status = options?.status ?? STATUS[code];
  }
}

/** The HTTP status for any error: its own for ours, 500 for a bug. */
export function statusOf(err: unknown): number {
  return err instanceof NorikaeError ? err.status : 500;
}

/** What a thrown value says, Error or not. */
export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** A bug's stack, for the log. */
export function stackOf(err: unknown): string {
  return err instanceof Error ? err.stack ?? err.message : String(err);
}

/** A config file that cannot be used; `line` and `column` are 1-based when known. */
export class ConfigError extends NorikaeError {
  /** Undefined when no file was found at all. */
  readonly file: string | undefined;
  readonly line: number | undefined;
  readonly column: number | undefined;
  /** The offending lines with a caret, when the position is known. */
  readonly codeFrame: string | undefined;

  /** The message starts with `file:line:column:`, or `file:` without a position; with no file, it stands alone. */
  constructor(
    file: string | undefined,
    message: string,
    position: { line?: number | undefined; column?: number | undefined; codeFrame?: string | undefined } = {},
  ) {
    const where = file === undefined ? undefined : position.line === undefined ? file : `${file}:${position.line}:${position.column ?? 1}`;
    super(ErrorCode.CONFIG, where === undefined ? message : `${where}: ${message}`);
    this.file = file;
    this.line = position.line;
    this.column = position.column;
    this.codeFrame = position.codeFrame;
  }
}

/** A listener that could not be bound; the message says what to do about it. */
export class ListenError extends NorikaeError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(ErrorCode.LISTEN, message, options);
  }
}

type HeadErrorCode =
  | typeof ErrorCode.HEAD_TOO_LARGE | typeof ErrorCode.HEAD_MALFORMED | typeof ErrorCode.HEAD_INCOMPLETE
  | typeof ErrorCode.HEAD_TIMEOUT | typeof ErrorCode.HEAD_UNREADABLE | typeof ErrorCode.HTTP2_PRIOR_KNOWLEDGE
  | typeof ErrorCode.HTTP_VERSION | typeof ErrorCode.CONNECT_METHOD | typeof ErrorCode.HOST | typeof ErrorCode.TARGET;

/** A first request head we refuse; its `status` is what the client is answered with. */
export class HeadError extends NorikaeError {
  constructor(code: HeadErrorCode, message: string) {
    super(code, message);
  }
}

/** One factory per head error: the messages a client reads, in one place. */
export const headErrors = {
  tooLarge: (max: number) => new HeadError(ErrorCode.HEAD_TOO_LARGE, `The request head is larger than ${max} bytes.`),
  malformed: (reason: string) => new HeadError(ErrorCode.HEAD_MALFORMED, `The request head is malformed (${reason}).`),
  incomplete: () => new HeadError(ErrorCode.HEAD_INCOMPLETE, 'The connection was closed before the request head was complete.'),
  timeout: (seconds: number) => new HeadError(ErrorCode.HEAD_TIMEOUT, `The request head was not complete within ${seconds} s.`),
  unreadable: () => new HeadError(ErrorCode.HEAD_UNREADABLE, 'The request head could not be read.'),
  http2PriorKnowledge: () => new HeadError(ErrorCode.HTTP2_PRIOR_KNOWLEDGE,
    'HTTP/2 with prior knowledge is not supported; use HTTP/1.1 (or TLS, which is passed through).'),
  httpVersion: (major: number, minor: number) => new HeadError(ErrorCode.HTTP_VERSION, `HTTP/${major}.${minor} is not supported; use HTTP/1.1.`),
  connectMethod: () => new HeadError(ErrorCode.CONNECT_METHOD,
    'CONNECT is not supported: norikae-splice routes requests to configured services, it is not a forward proxy.'),
  noHost: () => new HeadError(ErrorCode.HOST, 'The request has no Host header.'),
  manyHosts: () => new HeadError(ErrorCode.HOST, 'The request has more than one Host header.'),
  badHost: (authority: string) => new HeadError(ErrorCode.HOST, `"${authority.slice(0, 200)}" is not a valid host.`),
  badTarget: (url: string) => new HeadError(ErrorCode.TARGET, `The request target "${url.slice(0, 200)}" is not a path or an http URL.`),
  userInfo: () => new HeadError(ErrorCode.TARGET, 'The request target carries user info, which HTTP does not allow.'),
};

/** No service of that name is configured (any more: a reload may have removed it). */
export class NoServiceError extends NorikaeError {
  constructor(readonly service: string) {
    super(ErrorCode.NO_SERVICE, `no service named ${service}`);
  }
}

/** The upstream port of a service did not accept a connection: 502, or 504 when it never answered. */
export class UpstreamConnectError extends NorikaeError {
  readonly host: string;
  readonly port: number;
  /** The socket error code: ECONNREFUSED, ETIMEDOUT, … */
  readonly reason: string;

  constructor(host: string, port: number, reason: string, options?: { cause?: unknown }) {
    super(reason === 'ETIMEDOUT' ? ErrorCode.UPSTREAM_TIMEOUT : ErrorCode.UPSTREAM_CONNECT, `connecting to ${formatAddress({ host, port })} failed: ${reason}`, options);
    this.host = host;
    this.port = port;
    this.reason = reason;
  }

  /** Where it dialled, as an address is written: `127.0.0.1:3000`, `[::1]:3000`. */
  get address(): string {
    return formatAddress({ host: this.host, port: this.port });
  }
}

/** A connection came back from norikae's own dial: the service's upstream is norikae-splice itself (508 Loop Detected). */
export class LoopError extends NorikaeError {
  constructor(readonly service: string, readonly port: number) {
    super(ErrorCode.LOOP, `the upstream of ${service} (port ${port}) is norikae-splice itself: the connection came back in, and was refused `
      + `before it could loop until every descriptor is gone. Give the dev server of ${service} a port of its own, or point its \`upstream\` at it.`);
  }
}

/** A launched service exited (or could not start) before it accepted connections. */
export class LaunchError extends NorikaeError {
  readonly service: string;
  readonly exitCode: number | null;
  readonly signal: string | null;
  /** The last lines the service printed. */
  readonly logTail: string[];

  constructor(service: string, message: string, details: { exitCode?: number | null; signal?: string | null; logTail?: string[] } = {}) {
    super(ErrorCode.LAUNCH, message);
    this.service = service;
    this.exitCode = details.exitCode ?? null;
    this.signal = details.signal ?? null;
    this.logTail = details.logTail ?? [];
  }
}

type LaunchDetails = { exitCode?: number | null; signal?: string | null; logTail?: string[] };

/** One factory per way a launch fails: the messages a client and the log read, in one place. */
export const launchErrors = {
  crashLoop: (service: string, crashes: number, windowSeconds: number, retrySeconds: number, details: LaunchDetails) => new LaunchError(service,
    `${service} keeps crashing (it exited ${crashes} times within ${windowSeconds} s), so it is not relaunched on every request; `
    + `norikae-splice tries again in ${retrySeconds} s.`, details),
  portHeld: (service: string, port: number, holder: { pid: number; command: string }) => new LaunchError(service,
    `port ${port} of ${service} is held by pid ${holder.pid} (${holder.command}), which norikae-splice did not start. `
    + `Stop that process, or give [service.${service}] another port.`),
  exitedEarly: (service: string, how: string, port: number, details: LaunchDetails) => new LaunchError(service,
    `${service} exited ${how} before it accepted connections on port ${port}.`, details),
  notReady: (service: string, seconds: number, failing: string, logTail: string[]) => new ReadinessTimeoutError(service,
    `${service} was not ready within ${seconds} s (ready_timeout): ${failing}. It was stopped. Check that its command listens on {port} or $PORT.`, logTail),
};

/** Why a launch was cancelled: the reason of its AbortController. */
export type CancelCause = 'stopped' | 'held' | 'restarted' | 'removed' | 'exiting';

const CANCEL_WORDS: Record<CancelCause, string> = {
  stopped: 'it was stopped',
  held: 'it was stopped by you',
  restarted: 'it was restarted',
  removed: 'it was removed from the config',
  exiting: 'norikae-splice is exiting',
};

/** A launch that a stop, restart, reload or exit ended while it was still waiting. */
export class LaunchCancelledError extends NorikaeError {
  readonly service: string;
  readonly kind: CancelCause;

  constructor(service: string, cause: CancelCause) {
    super(ErrorCode.LAUNCH_CANCELLED, `${service} was not launched: ${CANCEL_WORDS[cause]}.`);
    this.service = service;
    this.kind = cause;
  }

  /** A restart: the launch that replaces this one is the one to wait for. */
  get replaced(): boolean {
    return this.kind === 'restarted';
  }
}

/** A launched service did not accept connections within its `ready_timeout`. */
export class ReadinessTimeoutError extends NorikaeError {
  readonly service: string;
  readonly logTail: string[];

  constructor(service: string, message: string, logTail: string[]) {
    super(ErrorCode.READY_TIMEOUT, message);
    this.service = service;
    this.logTail = logTail;
  }
}

/** The user stopped this service; requests do not bring it back until they start it. */
export class ServiceStoppedError extends NorikaeError {
  readonly service: string;
  /** The command that starts it again, for the page and the log. */
  readonly startCommand: string;

  /** `configFile`: the running config, so the command given works from any folder. */
  constructor(service: string, configFile: string) {
    const startCommand = `norikae-splice start ${service} --config ${shellWord(configFile)}`;
    super(ErrorCode.STOPPED, `${service} was stopped by you, so requests do not launch it. Start it from the dashboard or with: ${startCommand}`);
    this.service = service;
    this.startCommand = startCommand;
  }
}

type ControlErrorCode =
  | typeof ErrorCode.NOT_CONTROLLABLE | typeof ErrorCode.NOT_LAUNCHED_HERE | typeof ErrorCode.BAD_REQUEST
  | typeof ErrorCode.NOT_FOUND | typeof ErrorCode.METHOD_NOT_ALLOWED | typeof ErrorCode.CROSS_SITE
  | typeof ErrorCode.OVERTAKEN | typeof ErrorCode.BODY_TOO_LARGE | typeof ErrorCode.BODY_TIMEOUT
  | typeof ErrorCode.BODY_INCOMPLETE | typeof ErrorCode.FORBIDDEN;

/** A control request (start, stop, …) or API call that cannot be done; `status` is the HTTP answer. */
export class ControlError extends NorikaeError {
  constructor(code: ControlErrorCode, message: string) {
    super(code, message);
  }
}

/** One factory per control error. */
export const controlErrors = {
  notControllable: (name: string) => new ControlError(ErrorCode.NOT_CONTROLLABLE,
    `${name} has no \`command\`: norikae-splice only forwards to it and cannot start or stop it`),
  notLaunchedHere: (name: string, port: number, holder: string) => new ControlError(ErrorCode.NOT_LAUNCHED_HERE,
    `${name} was not started by norikae-splice: ${holder} listens on port ${port}. Stop it where it was started.`),
  badName: (text: string) => new ControlError(ErrorCode.BAD_REQUEST, `"${text}" is not a service name (bad percent-encoding)`),
  bodyTooLarge: (max: number) => new ControlError(ErrorCode.BODY_TOO_LARGE, `the request body is larger than ${max} bytes (the API takes none)`),
  bodyTimeout: (seconds: number) => new ControlError(ErrorCode.BODY_TIMEOUT, `the request body was not complete within ${seconds} s`),
  bodyIncomplete: () => new ControlError(ErrorCode.BODY_INCOMPLETE, 'the connection was closed before the request body was complete'),
  forbidden: () => new ControlError(ErrorCode.FORBIDDEN, 'only the user who runs norikae-splice may read its services\' output '
    + 'or control them; open the dashboard with `norikae-splice dashboard`'),
  badTarget: (target: string) => new ControlError(ErrorCode.BAD_REQUEST, `"${target.slice(0, 200)}" is not a request target`),
  notFound: (path: string) => new ControlError(ErrorCode.NOT_FOUND, `no such page: ${path}`),
  methodNotAllowed: (message: string) => new ControlError(ErrorCode.METHOD_NOT_ALLOWED, message),
  crossSite: (what: 'site' | 'origin') => new ControlError(ErrorCode.CROSS_SITE, `cross-${what} requests may not change services`),
  overtaken: (name: string, action: 'start' | 'restart') => new ControlError(ErrorCode.OVERTAKEN,
    `the ${action} of ${name} was overtaken by a stop sent after it: ${name} stays stopped`),
};

/** The local CA cannot be used, or may not sign for a name (`trust --renew` makes one that may). */
export class CaError extends NorikaeError {
  constructor(code: typeof ErrorCode.CA | typeof ErrorCode.CA_CONSTRAINTS, message: string) {
    super(code, message);
  }
}

/** One factory per CA error. */
export const caErrors = {
  unreadable: (dir: string, reason: string) => new CaError(ErrorCode.CA,
    `the local CA in ${dir} cannot be used (${reason}); make a new one with \`norikae-splice trust --renew\``),
  outsideConstraints: (name: string, permitted: readonly string[]) => new CaError(ErrorCode.CA_CONSTRAINTS,
    `${name} is outside the names the local CA may sign for (${permitted.join(', ')}), so it is served no certificate; `
    + 'run `norikae-splice trust --renew` to make a CA that covers it and trust it again'),
};

/** The CLI found no running norikae-splice to talk to (or something else on its port). */
export class NotRunningError extends NorikaeError {
  constructor(message: string) {
    super(ErrorCode.NOT_RUNNING, message);
  }
}

/** A second norikae-splice on a config that one already runs. */
export class AlreadyRunningError extends NorikaeError {
  constructor(readonly pid: number) {
    super(ErrorCode.ALREADY_RUNNING, `norikae-splice is already running with this config (pid ${pid}); `
      + 'stop it first, or use `norikae-splice status` to see its services');
  }
}

/** The dashboard is switched off, and with it the CLI's way in. */
export class NoDashboardError extends NorikaeError {
  constructor(file: string) {
    super(ErrorCode.NO_DASHBOARD, `the dashboard is switched off in ${file} (dashboard = false), and the CLI reaches norikae-splice through it`);
  }
}

/** The running norikae-splice refused an API call; `status` is its answer's. */
export class ApiError extends NorikaeError {
  constructor(status: number, message: string) {
    super(ErrorCode.API, message, { status });
  }
}

type SetupErrorCode =
  | typeof ErrorCode.CONFIG_EXISTS | typeof ErrorCode.SERVICE_EXISTS | typeof ErrorCode.SERVICE_NAME
  | typeof ErrorCode.NO_PROJECT | typeof ErrorCode.HOSTS_FILE;

/** `init`, `add` or `hosts` refused to change a file; the message says what to do instead. */
export class SetupError extends NorikaeError {
  constructor(code: SetupErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

export const setupErrors = {
  configExists: (file: string) => new SetupError(ErrorCode.CONFIG_EXISTS,
    `a config already exists at ${file}; it was left as it is. Edit it, or add a project to it with: norikae-splice add DIR`),
  serviceExists: (name: string, where: string, suggestion: string) => new SetupError(ErrorCode.SERVICE_EXISTS,
    `there is already a service named ${name} (${where}); choose another name, for example: --name ${suggestion}`),
  badName: (name: string) => new SetupError(ErrorCode.SERVICE_NAME,
    `"${name}" cannot be a service name: use letters, digits and "-" (it becomes ${name}.localhost), for example --name my-app`),
  noProject: (dir: string, lookedFor: string) => new SetupError(ErrorCode.NO_PROJECT,
    `found no dev server to run in ${dir} (looked for ${lookedFor}); give its command with --command "…{port}…"`),
  hostsFile: (message: string, cause?: unknown) => new SetupError(ErrorCode.HOSTS_FILE, message, { cause }),
};
/** The startup service cannot be written or set up here; the message says what to do instead. */
export class ServiceInstallError extends NorikaeError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(ErrorCode.SERVICE_INSTALL, message, options);
  }
}

/** A service's terminal cannot be had: not a `terminal = true` service, not running, or no tmux. */
export class TerminalError extends NorikaeError {
  constructor(message: string) {
    super(ErrorCode.TERMINAL, message);
  }
}

/** `text` as one shell word: as it is when that is safe, else in single quotes. */
export function shellWord(text: string): string {
  return /^[\w./~+:@%,=-]+$/.test(text) ? text : `'${text.replaceAll("'", "'\\''")}'`;
}
