// Every error norikae-splice raises on purpose: a stable `code` to match on, and the data a caller
// needs to answer it (a config position, an HTTP status). The data path turns these into answers
// in one place (server.ts); nothing throws bare strings.

export class NorikaeError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** A config file that cannot be used; `line` and `column` are 1-based when known. */
export class ConfigError extends NorikaeError {
  readonly file: string;
  readonly line: number | undefined;
  readonly column: number | undefined;
  /** The offending lines with a caret, when the position is known. */
  readonly codeFrame: string | undefined;

  constructor(
    file: string,
    message: string,
    position: { line?: number | undefined; column?: number | undefined; codeFrame?: string | undefined } = {},
  ) {
    const where = position.line === undefined ? file : `${file}:${position.line}:${position.column ?? 1}`;
    super('NORIKAE_ERR_CONFIG', `${where}: ${message}`);
    this.file = file;
    this.line = position.line;
    this.column = position.column;
    this.codeFrame = position.codeFrame;
  }
}

/** A request head we refuse; `status` is what the client is answered with. */
export class HeadError extends NorikaeError {
  readonly status: number;

  constructor(code: string, status: number, message: string) {
    super(code, message);
    this.status = status;
  }
}

/** A listener that could not be bound; the message says what to do about it. */
export class ListenError extends NorikaeError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('NORIKAE_ERR_LISTEN', message, options);
  }
}

/** The upstream port of a service did not accept a connection. */
export class UpstreamConnectError extends NorikaeError {
  readonly host: string;
  readonly port: number;
  /** The socket error code: ECONNREFUSED, ETIMEDOUT, … */
  readonly reason: string;

  constructor(host: string, port: number, reason: string, options?: { cause?: unknown }) {
    super('NORIKAE_ERR_UPSTREAM_CONNECT', `connecting to ${host}:${port} failed: ${reason}`, options);
    this.host = host;
    this.port = port;
    this.reason = reason;
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
    super('NORIKAE_ERR_LAUNCH', message);
    this.service = service;
    this.exitCode = details.exitCode ?? null;
    this.signal = details.signal ?? null;
    this.logTail = details.logTail ?? [];
  }
}

/** A launch that a stop, restart or reload ended before it started the process. */
export class LaunchCancelledError extends LaunchError {
  /** A restart: the launch that replaces it is the one to wait for. */
  readonly replaced: boolean;

  constructor(service: string, reason: string, replaced: boolean) {
    super(service, `${service} was not launched: ${reason}.`);
    this.replaced = replaced;
  }
}

/** A launched service did not accept connections within its `ready_timeout`. */
export class ReadinessTimeoutError extends NorikaeError {
  readonly service: string;
  readonly logTail: string[];

  constructor(service: string, message: string, logTail: string[]) {
    super('NORIKAE_ERR_READY_TIMEOUT', message);
    this.service = service;
    this.logTail = logTail;
  }
}

/** The user stopped this service; requests do not bring it back until they start it. */
export class ServiceStoppedError extends NorikaeError {
  readonly service: string;

  /** `configFile`: the running config, so the command given works from any folder. */
  constructor(service: string, configFile: string) {
    super('NORIKAE_ERR_STOPPED', `${service} was stopped by you, so requests do not launch it. `
      + `Start it from the dashboard or with \`norikae-splice start ${service} --config ${shellWord(configFile)}\`.`);
    this.service = service;
  }
}

/** A control request (start, stop, …) that cannot be done; `status` is the HTTP answer. */
export class ControlError extends NorikaeError {
  readonly status: number;

  constructor(status: number, message: string) {
    super('NORIKAE_ERR_CONTROL', message);
    this.status = status;
  }
}

/** The CLI found no running norikae-splice to talk to (or something else on its port). */
export class NotRunningError extends NorikaeError {
  constructor(message: string) {
    super('NORIKAE_ERR_NOT_RUNNING', message);
  }
}

/** `text` as one shell word: as it is when that is safe, else in single quotes. */
function shellWord(text: string): string {
  return /^[\w./~+:@%-]+$/.test(text) ? text : `'${text.replaceAll("'", "'\\''")}'`;
}
