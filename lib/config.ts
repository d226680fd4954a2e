// The config file: TOML → validated, normalised services. Every mistake is a ConfigError that
// names the file, line and column, so a user can go straight to it. The original Norikae format
// (`[service.NAME]` with host, port, cwd, command, delay) is accepted unchanged.

import { existsSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parse, TomlError } from 'smol-toml';
import { findAddressClash, parseListenAddress, type ListenAddress } from './address.js';
import { locateKey, positionAt } from './config-position.js';
import { ConfigError } from './errors.js';

// For code that still imports these from here; new code imports them from address.ts.
export { findAddressClash, formatAddress, parseListenAddress, type ListenAddress, type ListenOrigin } from './address.js';

export interface ServiceConfig {
  name: string;
  /** Lower-case names without a trailing dot; `*.app.localhost` matches any subdomain of app.localhost. */
  hosts: string[];
  /** The upstream port; undefined means "choose a free one at launch". */
  port: number | undefined;
  /** The upstream address as written; undefined means the default, 127.0.0.1. */
  upstream: string | undefined;
  /** Absolute; `~` expanded, relative paths taken from the config file's folder. */
  cwd: string | undefined;
  command: string | undefined;
  /** Seconds to wait after a launch before the first readiness check (Norikae's `delay`). */
  delay: number;
  env: Record<string, string>;
  /** Seconds a launch may take to accept connections. */
  readyTimeout: number;
  /** Seconds without a connection before a launched service is stopped; undefined = never. */
  idleTimeout: number | undefined;
  /** Seconds between SIGTERM and SIGKILL when stopping it. */
  stopTimeout: number;
  /** Raw TCP listeners of the service's own: spliced with no parsing at all. */
  listen: ListenAddress[];
  /** What must hold before a launch counts as ready (all of it). */
  ready: ReadyChecks;
  /** Services launched, and ready, before this one. */
  requires: string[];
  /** A command that stops the service instead of signalling its process group. */
  stop: string | undefined;
  /** Seconds after an idle stop during which a relaunch is logged as a reconnect burst. */
  idleCooldown: number;
}

export interface ReadyChecks {
  /** The port accepts a connection (the default). */
  tcp: boolean;
  /** A GET of this path answers with a status below 500. */
  http: string | undefined;
  /** A line of the service's output matches. */
  log: RegExp | undefined;
}

export interface Config {
  /** Absolute path of the file this came from. */
  file: string;
  listen: ListenAddress[];
  /** The largest request head we read before answering 431. */
  maxHeadSize: number;
  /** Seconds a client has to send its first request head (408 after that). */
  headTimeout: number;
  /** Seconds an upstream has to accept a TCP connection (504 after that). */
  connectTimeout: number;
  /** Folder of the services' log files (NAME.log). */
  logDir: string;
  /** The host norikae answers itself with the dashboard; undefined when switched off. */
  dashboardHost: string | undefined;
  services: ServiceConfig[];
}

export const DEFAULT_LISTEN: ListenAddress = { host: '127.0.0.1', port: 80 };
export const DEFAULT_MAX_HEAD_SIZE = 16 * 1024;
export const DEFAULT_READY_TIMEOUT = 30;
export const DEFAULT_STOP_TIMEOUT = 5;
export const DEFAULT_HEAD_TIMEOUT = 10;
export const DEFAULT_DASHBOARD_HOST = 'norikae.localhost';
export const DEFAULT_IDLE_COOLDOWN = 30;
export const DEFAULT_CONNECT_TIMEOUT = 5;

const TOP_LEVEL_KEYS = [
  'listen', 'service', 'max_head_size', 'head_timeout', 'connect_timeout', 'log_dir', 'idle_timeout', 'stop_timeout', 'dashboard',
  'idle_cooldown',
];
const SERVICE_KEYS = [
  'host', 'port', 'upstream', 'cwd', 'command', 'delay', 'env', 'ready_timeout', 'idle_timeout', 'stop_timeout', 'listen',
  'ready', 'requires', 'stop', 'idle_cooldown',
];
const READY_KEYS = ['tcp', 'http', 'log'];

/** $XDG_STATE_HOME/norikae (~/.local/state/norikae): logs and the record of launched processes. */
export function stateDir(env = process.env): string {
  const base = env.XDG_STATE_HOME ? expandHome(env.XDG_STATE_HOME) : join(homedir(), '.local', 'state');
  return join(base, 'norikae');
}

/**
 * Which file to read: `--config`, else ./norikae.toml, else $XDG_CONFIG_HOME/norikae/config.toml.
 * Throws a ConfigError listing what was tried when there is none.
 */
export function findConfigFile(explicit: string | undefined, cwd = process.cwd(), env = process.env): string {
  if (explicit !== undefined) return resolve(cwd, expandHome(explicit));
  const xdg = env.XDG_CONFIG_HOME ? expandHome(env.XDG_CONFIG_HOME) : join(homedir(), '.config');
  const candidates = [join(cwd, 'norikae.toml'), join(xdg, 'norikae', 'config.toml')];
  const found = candidates.find((file) => existsSync(file));
  if (found) return found;
  throw new ConfigError(
    undefined,
    `no config file found (looked for ${candidates.join(' and ')}); pass one with --config FILE`,
  );
}

/** How a config is read: see ConfigReader. */
export interface ConfigOptions {
  /** The command line's --listen: replaces the file's `listen`. */
  listen?: ListenAddress[];
  /** Check listen addresses for clashes (default). The CLI's commands to a running instance do not: it runs already. */
  checkAddresses?: boolean;
}

/** Reads and validates a config file. */
export function loadConfig(file: string, options: ConfigOptions = {}): Config {
  let source: string;
  try {
    source = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(file, `cannot read the config file: ${describeReadError(err as NodeJS.ErrnoException)}`);
  }
  return parseConfig(source, file, options);
}

function describeReadError(err: NodeJS.ErrnoException): string {
  switch (err.code) {
    case 'ENOENT': return 'there is no such file';
    case 'EACCES': return 'permission denied';
    case 'EISDIR': return 'it is a folder, not a file';
    default: return err.code ?? err.message;
  }
}

/** Validates TOML text; `file` is used for error messages and to resolve relative paths. */
export function parseConfig(source: string, file: string, options: ConfigOptions = {}): Config {
  let doc: Record<string, unknown>;
  try {
    doc = parse(source) as Record<string, unknown>;
  } catch (err) {
    if (err instanceof TomlError) {
      const reason = err.message.split('\n')[0]!.replace(/^Invalid TOML document: /, '');
      const position = positionAt(source, err.line, err.column);
      throw new ConfigError(file, explainTomlError(reason, source.split(/\r?\n/)[err.line - 1] ?? '', err.column), position);
    }
    throw err;
  }
  return new ConfigReader(source, file, options).read(doc);
}

/**
 * smol-toml says what it met ("illegal character in key"); the usual mistakes behind those words,
 * said the way a person would look for them.
 */
function explainTomlError(reason: string, line: string, column: number): string {
  const text = line.trim();
  if (text.startsWith('[') && !text.includes(']')) return `${reason}: the table header has no closing "]"`;
  if (/control characters are not allowed in strings|unfinished string/.test(reason) && column > line.trimEnd().length) {
    return `${reason}: the string is not closed (a missing quote at the end of the line?)`;
  }
  if (reason === 'invalid value' && /=\s*$/.test(line)) return `${reason}: there is no value after "="`;
  if (/expected comma or end of structure/.test(reason)) return `${reason}: an array or inline table opened before this line is not closed`;
  if (/trying to redefine/.test(reason)) return `${reason}: this table or key is already defined above`;
  return reason;
}

/** `~` and `~/x` → the home folder. */
export function expandHome(path: string): string {
  if (path === '~') return homedir();
  if (path.startsWith('~/')) return join(homedir(), path.slice(2));
  return path;
}

/** Walks a parsed document, checking each key and turning mistakes into positioned errors. */
class ConfigReader {
  constructor(
    private readonly source: string,
    private readonly file: string,
    private readonly options: ConfigOptions,
  ) {}

  read(doc: Record<string, unknown>): Config {
    this.checkKeys(doc, [], TOP_LEVEL_KEYS);
    const services = this.table(doc.service ?? {}, ['service']);
    // Top-level idle_timeout and stop_timeout are defaults that a service may override.
    const defaults = {
      idleTimeout: this.seconds(doc.idle_timeout, ['idle_timeout'], false),
      stopTimeout: this.seconds(doc.stop_timeout, ['stop_timeout'], true) ?? DEFAULT_STOP_TIMEOUT,
      idleCooldown: this.seconds(doc.idle_cooldown, ['idle_cooldown'], true) ?? DEFAULT_IDLE_COOLDOWN,
    };
    const logDir = this.string(doc.log_dir, ['log_dir']);
    // Checked even when --listen replaces it: the file must stay valid without the flag.
    const fileListen = doc.listen === undefined ? [DEFAULT_LISTEN] : this.addresses(doc.listen, ['listen']);
    const config: Config = {
      file: this.file,
      // --listen replaces it before anything is checked against it.
      listen: this.options.listen ?? fileListen,
      maxHeadSize: this.integer(doc.max_head_size, ['max_head_size'], 1024, 1024 * 1024) ?? DEFAULT_MAX_HEAD_SIZE,
      headTimeout: this.seconds(doc.head_timeout, ['head_timeout'], false) ?? DEFAULT_HEAD_TIMEOUT,
      connectTimeout: this.seconds(doc.connect_timeout, ['connect_timeout'], false) ?? DEFAULT_CONNECT_TIMEOUT,
      logDir: logDir === undefined ? join(stateDir(), 'logs') : resolve(dirname(this.file), expandHome(logDir)),
      dashboardHost: this.dashboard(doc.dashboard),
      services: Object.keys(services).map((name) => this.service(name, services[name], ['service', name], defaults)),
    };
    this.checkHostsAreUnique(config.services, config.dashboardHost);
    const clash = this.options.checkAddresses === false ? undefined : findAddressClash(config, this.options.listen === undefined ? 'file' : 'cli');
    if (clash !== undefined) {
      if (clash.path === undefined) throw new ConfigError(this.file, clash.message);
      this.fail(clash.path, clash.message);
    }
    this.checkDependencies(config.services);
    return config;
  }

  private service(
    name: string,
    value: unknown,
    path: string[],
    defaults: { idleTimeout: number | undefined; stopTimeout: number; idleCooldown: number },
  ): ServiceConfig {
    const raw = this.table(value, path);
    this.checkKeys(raw, path, SERVICE_KEYS);
    if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(name)) {
      this.fail(path, `service name "${name}" must be letters, digits, "-", "_" or ".", and not start with "-" or "." (it names log files and URLs)`);
    }
    const listen = raw.listen === undefined ? [] : this.addresses(raw.listen, [...path, 'listen']);
    // A service with neither `host` nor `listen` would be unreachable: give it NAME.localhost.
    const hosts = raw.host === undefined
      ? (listen.length === 0 ? [`${name.toLowerCase()}.localhost`] : [])
      : this.hosts(raw.host, [...path, 'host']);
    const command = this.string(raw.command, [...path, 'command']);
    const port = this.integer(raw.port, [...path, 'port'], 1, 65535);
    if (port === undefined && command === undefined) {
      this.fail(path, `service "${name}" needs a \`port\` (where its dev server listens) or a \`command\` to launch it`);
    }
    const upstream = this.string(raw.upstream, [...path, 'upstream']);
    if (upstream !== undefined && !isIP(upstream) && !isHostName(upstream)) {
      this.fail([...path, 'upstream'], `"${upstream}" is not an IP address or host name`);
    }
    const cwd = this.string(raw.cwd, [...path, 'cwd']);
    for (const address of listen) {
      if (address.port === 0) this.fail([...path, 'listen'], 'a service listener needs a fixed port, not 0');
    }
    return {
      name,
      hosts,
      port,
      upstream,
      cwd: cwd === undefined ? undefined : resolve(dirname(this.file), expandHome(cwd)),
      command,
      delay: this.seconds(raw.delay, [...path, 'delay'], true) ?? 0,
      env: this.env(raw.env, [...path, 'env']),
      readyTimeout: this.seconds(raw.ready_timeout, [...path, 'ready_timeout'], false) ?? DEFAULT_READY_TIMEOUT,
      idleTimeout: this.seconds(raw.idle_timeout, [...path, 'idle_timeout'], false) ?? defaults.idleTimeout,
      stopTimeout: this.seconds(raw.stop_timeout, [...path, 'stop_timeout'], true) ?? defaults.stopTimeout,
      listen,
      ready: this.ready(raw.ready, [...path, 'ready']),
      requires: this.requires(raw.requires, [...path, 'requires']),
      stop: this.string(raw.stop, [...path, 'stop']),
      idleCooldown: this.seconds(raw.idle_cooldown, [...path, 'idle_cooldown'], true) ?? defaults.idleCooldown,
    };
  }

  /** `ready = "tcp"`, or a table of checks that must all hold: `{ http = "/healthz", log = "…" }`. */
  private ready(value: unknown, path: string[]): ReadyChecks {
    if (value === undefined || value === 'tcp') return { tcp: true, http: undefined, log: undefined };
    if (typeof value === 'string') this.fail(path, `expected "tcp" or a table like { http = "/healthz" } or { log = "ready" }, got ${describe(value)}`);
    const table = this.table(value, path);
    this.checkKeys(table, path, READY_KEYS);
    if (Object.keys(table).length === 0) this.fail(path, 'expected at least one check: tcp, http or log');
    if (table.tcp !== undefined && typeof table.tcp !== 'boolean') this.fail([...path, 'tcp'], `expected true or false, got ${describe(table.tcp)}`);
    const http = this.string(table.http, [...path, 'http']);
    if (http !== undefined && !http.startsWith('/')) this.fail([...path, 'http'], `the health check path must start with "/", got "${http}"`);
    const pattern = this.string(table.log, [...path, 'log']);
    let log: RegExp | undefined;
    if (pattern !== undefined) {
      try {
        log = new RegExp(pattern);
      } catch (err) {
        this.fail([...path, 'log'], `not a regular expression: ${(err as Error).message}`);
      }
    }
    return { tcp: table.tcp === true, http, log };
  }

  private requires(value: unknown, path: string[]): string[] {
    if (value === undefined) return [];
    const list = Array.isArray(value) ? value : [value];
    for (const item of list) {
      if (typeof item !== 'string') this.fail(path, `expected service names, got ${describe(item)}`);
    }
    return [...new Set(list as string[])];
  }

  /** Every `requires` names a service, and no service requires itself through others. */
  private checkDependencies(services: ServiceConfig[]): void {
    const byName = new Map(services.map((service) => [service.name, service]));
    for (const service of services) {
      for (const name of service.requires) {
        if (!byName.has(name)) {
          const nearest = nearestWord(name, [...byName.keys()]);
          this.fail(['service', service.name, 'requires'], `"${name}" is not a service${nearest ? `; did you mean "${nearest}"?` : ''}`);
        }
      }
    }
    const done = new Set<string>();
    const visit = (name: string, trail: string[]): void => {
      if (trail.includes(name)) {
        const cycle = [...trail.slice(trail.indexOf(name)), name];
        this.fail(['service', cycle[0]!, 'requires'], `services require each other in a cycle: ${cycle.join(' → ')}`);
      }
      if (done.has(name)) return;
      for (const next of byName.get(name)!.requires) visit(next, [...trail, name]);
      done.add(name);
    };
    for (const service of services) visit(service.name, []);
  }

  /** `dashboard = "name.localhost"`, `true` (the default host) or `false` (off). */
  private dashboard(value: unknown): string | undefined {
    if (value === undefined || value === true) return DEFAULT_DASHBOARD_HOST;
    if (value === false) return undefined;
    if (typeof value !== 'string') this.fail(['dashboard'], `expected a host name, true or false, got ${describe(value)}`);
    const [host] = this.hosts(value, ['dashboard']);
    if (host!.startsWith('*.')) this.fail(['dashboard'], 'the dashboard needs one host name, not a wildcard');
    return host;
  }

  private hosts(value: unknown, path: string[]): string[] {
    const list = Array.isArray(value) ? value : [value];
    if (list.length === 0) this.fail(path, 'expected at least one host name');
    const hosts = new Set<string>();
    for (const item of list) {
      if (typeof item !== 'string') this.fail(path, `expected a host name or a list of them, got ${describe(item)}`);
      const host = item.trim().toLowerCase().replace(/\.$/, '');
      const bare = host.startsWith('*.') ? host.slice(2) : host;
      if (!isHostName(bare)) {
        this.fail(path, `"${item}" is not a host name (letters, digits, "-" and dots; "*." only at the start; no port)`);
      }
      hosts.add(host);
    }
    return [...hosts];
  }

  private checkHostsAreUnique(services: ServiceConfig[], dashboardHost: string | undefined): void {
    const owner = new Map<string, string>();
    if (dashboardHost !== undefined) owner.set(dashboardHost, 'the dashboard (set `dashboard` to another host or false)');
    for (const service of services) {
      for (const host of service.hosts) {
        const other = owner.get(host);
        if (other !== undefined) {
          this.fail(['service', service.name, 'host'], `host "${host}" is claimed by both "${other}" and "${service.name}"`);
        }
        owner.set(host, service.name);
      }
    }
  }

  private addresses(value: unknown, path: string[]): ListenAddress[] {
    const list = Array.isArray(value) ? value : [value];
    if (list.length === 0) this.fail(path, 'expected at least one address');
    return list.map((item) => {
      const address = parseListenAddress(item);
      if (typeof address === 'string') this.fail(path, address);
      return address;
    });
  }

  private env(value: unknown, path: string[]): Record<string, string> {
    if (value === undefined) return {};
    const table = this.table(value, path);
    const env: Record<string, string> = {};
    for (const [key, item] of Object.entries(table)) {
      if (typeof item === 'string' || typeof item === 'number' || typeof item === 'boolean') env[key] = String(item);
      else this.fail([...path, key], `environment values are strings, got ${describe(item)}`);
    }
    return env;
  }

  private table(value: unknown, path: string[]): Record<string, unknown> {
    if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Date) {
      this.fail(path, `expected a table, got ${describe(value)}`);
    }
    return value as Record<string, unknown>;
  }

  private string(value: unknown, path: string[]): string | undefined {
    if (value === undefined) return undefined;
    if (typeof value !== 'string' || value.trim() === '') this.fail(path, `expected a non-empty string, got ${describe(value)}`);
    return value;
  }

  private integer(value: unknown, path: string[], min: number, max: number): number | undefined {
    if (value === undefined) return undefined;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
      this.fail(path, `expected a whole number from ${min} to ${max}, got ${describe(value)}`);
    }
    return value;
  }

  private seconds(value: unknown, path: string[], zeroAllowed: boolean): number | undefined {
    if (value === undefined) return undefined;
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || (!zeroAllowed && value === 0)) {
      this.fail(path, `expected a number of seconds${zeroAllowed ? '' : ' above 0'}, got ${describe(value)}`);
    }
    return value;
  }

  private checkKeys(table: Record<string, unknown>, path: string[], known: string[]): void {
    for (const key of Object.keys(table)) {
      if (known.includes(key)) continue;
      const nearest = nearestWord(key, known);
      const where = path.length === 0 ? 'at the top level' : `in [${path.join('.')}]`;
      this.fail([...path, key], `unknown key "${key}" ${where}${nearest ? `; did you mean "${nearest}"?` : ''} (known: ${known.join(', ')})`);
    }
  }

  private fail(path: string[], message: string): never {
    throw new ConfigError(this.file, message, locateKey(this.source, path));
  }
}

/** A DNS name as dev proxies see them: labels of letters, digits, "-" and "_". */
function isHostName(name: string): boolean {
  return name.length > 0 && name.length <= 253 && /^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*$/i.test(name);
}

function describe(value: unknown): string {
  if (Array.isArray(value)) return 'an array';
  if (value instanceof Date) return 'a date';
  if (value === null || value === undefined) return 'nothing';
  if (typeof value === 'object') return 'a table';
  // TOML's own spelling: JSON would print inf and nan as null.
  if (typeof value === 'number' && !Number.isFinite(value)) return `number ${Number.isNaN(value) ? 'nan' : value > 0 ? 'inf' : '-inf'}`;
  return `${typeof value} ${JSON.stringify(value)}`;
}

/** The known word closest to `word` by edit distance, if it is close enough to be a typo. */
function nearestWord(word: string, known: string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(word.length / 3)) + 1;
  for (const candidate of known) {
    const distance = editDistance(word.toLowerCase(), candidate);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length]!;
}
