// Checking a parsed config document key by key: types, ranges, names, hosts claimed twice,
// clashing addresses and dependency cycles, each mistake a ConfigError at its key's position.
// `config.ts` reads the file and parses the TOML; this turns the document into a `Config`.

import { isIP } from 'node:net';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { findAddressClash, parseListenAddress, type ListenAddress } from './address.js';
import { DEFAULT_CONNECT_TIMEOUT, DEFAULT_DASHBOARD_HOST, DEFAULT_HEAD_TIMEOUT, DEFAULT_IDLE_COOLDOWN, DEFAULT_LISTEN, DEFAULT_MAX_HEAD_SIZE, DEFAULT_READY_TIMEOUT, DEFAULT_STOP_TIMEOUT, expandHome, stateDir, type Config, type ConfigOptions, type ReadyChecks, type ServiceConfig } from './config.js';
import { locateKey } from './config-position.js';
import type { ServiceContext, ServiceReuse } from './config-reuse.js';
import { ConfigError } from './errors.js';
import { findTmux, TMUX_INSTALL } from './tmux.js';

const TOP_LEVEL_KEYS = [
  'listen', 'service', 'max_head_size', 'head_timeout', 'connect_timeout', 'log_dir', 'idle_timeout', 'stop_timeout', 'dashboard',
  'idle_cooldown', 'https', 'exit_when_idle', 'terminal',
];
const SERVICE_KEYS = [
  'host', 'port', 'upstream', 'cwd', 'command', 'delay', 'env', 'ready_timeout', 'idle_timeout', 'stop_timeout', 'listen',
  'ready', 'requires', 'stop', 'idle_cooldown', 'tls', 'https_redirect', 'forwarded_headers', 'terminal',
];
const READY_KEYS = ['tcp', 'http', 'log'];
/** The longest duration: 100 years is "never" for a dev server; more is a mistake, not a duration. */
const MAX_DURATION_SECONDS = 100 * 365.25 * 24 * 3600;

/** The top-level settings a service takes when it does not set its own. */
type Defaults = { idleTimeout: number | undefined; stopTimeout: number; idleCooldown: number; terminal: boolean };

/** Walks a parsed document, checking each key and turning mistakes into positioned errors. */
export class ConfigReader {
  constructor(
    private readonly source: string,
    private readonly file: string,
    private readonly options: ConfigOptions,
    /** The services of the last read, taken again where their tables are unchanged (the app's reloads). */
    private readonly reuse?: ServiceReuse,
  ) {}

  read(doc: Record<string, unknown>): Config {
    this.checkKeys(doc, [], TOP_LEVEL_KEYS);
    const services = this.table(doc.service ?? {}, ['service']);
    // Top-level idle_timeout and stop_timeout are defaults that a service may override.
    const defaults = {
      idleTimeout: this.seconds(doc.idle_timeout, ['idle_timeout'], false),
      stopTimeout: this.seconds(doc.stop_timeout, ['stop_timeout'], true) ?? DEFAULT_STOP_TIMEOUT,
      idleCooldown: this.seconds(doc.idle_cooldown, ['idle_cooldown'], true) ?? DEFAULT_IDLE_COOLDOWN,
      terminal: this.boolean(doc.terminal, ['terminal']) ?? false,
    };
    const logDir = this.string(doc.log_dir, ['log_dir']);
    // Checked even when --listen replaces it: the file must stay valid without the flag.
    const fileListen = doc.listen === undefined ? [DEFAULT_LISTEN] : this.addresses(doc.listen, ['listen']);
    const fileHttps = doc.https === undefined ? [] : this.addresses(doc.https, ['https']);
    const config: Config = {
      file: this.file,
      // --listen replaces it before anything is checked against it.
      listen: this.options.listen ?? fileListen,
      https: this.options.https ?? fileHttps,
      maxHeadSize: this.integer(doc.max_head_size, ['max_head_size'], 1024, 1024 * 1024) ?? DEFAULT_MAX_HEAD_SIZE,
      headTimeout: this.seconds(doc.head_timeout, ['head_timeout'], false) ?? DEFAULT_HEAD_TIMEOUT,
      connectTimeout: this.seconds(doc.connect_timeout, ['connect_timeout'], false) ?? DEFAULT_CONNECT_TIMEOUT,
      logDir: logDir === undefined ? join(stateDir(), 'logs') : resolve(dirname(this.file), expandHome(logDir)),
      dashboardHost: this.dashboard(doc.dashboard),
      exitWhenIdle: this.seconds(doc.exit_when_idle, ['exit_when_idle'], false),
      services: this.services(services, defaults),
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

  /** Every `[service.NAME]`, each checked, or taken as the last read made it when its table is unchanged (see ServiceReuse). */
  private services(tables: Record<string, unknown>, defaults: Defaults): ServiceConfig[] {
    const { reuse } = this;
    if (reuse === undefined) return Object.keys(tables).map((name) => this.service(name, tables[name], ['service', name], defaults));
    const context: ServiceContext = { file: this.file, home: homedir(), ...defaults };
    reuse.begin(context);
    const services = Object.keys(tables).map((name) => {
      const table = tables[name];
      const reused = reuse.find(name, table);
      if (reused !== undefined) return reused;
      const service = this.service(name, table, ['service', name], defaults);
      reuse.keep(name, table, service);
      return service;
    });
    reuse.end();
    return services;
  }

  private service(name: string, value: unknown, path: string[], defaults: Defaults): ServiceConfig {
    const raw = this.table(value, path);
    this.checkKeys(raw, path, SERVICE_KEYS);
    if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(name)) {
      this.fail(path, `service name "${cut(name)}" must be letters, digits, "-", "_" or ".", and not start with "-" or "." (it names log files and URLs)`);
    }
    const listen = raw.listen === undefined ? [] : this.addresses(raw.listen, [...path, 'listen']);
    // A service with neither `host` nor `listen` would be unreachable: give it NAME.localhost.
    const hosts = raw.host === undefined
      ? (listen.length === 0 ? [`${name.toLowerCase()}.localhost`] : [])
      : this.hosts(raw.host, [...path, 'host']);
    const command = this.string(raw.command, [...path, 'command']);
    const port = this.integer(raw.port, [...path, 'port'], 1, 65535);
    if (port === undefined && command === undefined) {
      this.fail(path, `service "${cut(name)}" needs a \`port\` (where its dev server listens) or a \`command\` to launch it`);
    }
    const upstream = this.string(raw.upstream, [...path, 'upstream']);
    if (upstream !== undefined && !isIP(upstream) && !isHostName(upstream)) {
      this.fail([...path, 'upstream'], `"${cut(upstream)}" is not an IP address or host name`);
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
      tls: this.tls(raw.tls, [...path, 'tls']),
      httpsRedirect: this.boolean(raw.https_redirect, [...path, 'https_redirect']) ?? false,
      forwardedHeaders: this.boolean(raw.forwarded_headers, [...path, 'forwarded_headers']) ?? true,
      terminal: this.terminal(raw.terminal, [...path, 'terminal'], command, defaults.terminal),
    };
  }

  /** `tls = "terminate"` (the default) or `"passthrough"`. */
  private tls(value: unknown, path: string[]): 'terminate' | 'passthrough' {
    if (value === undefined || value === 'terminate' || value === 'passthrough') return value ?? 'terminate';
    this.fail(path, `expected "terminate" (norikae-splice terminates TLS) or "passthrough" (the dev server does), got ${describe(value)}`);
  }

  /** `terminal = true` runs the command in tmux: refused where tmux is missing, and pointless without a command. */
  private terminal(value: unknown, path: string[], command: string | undefined, fallback: boolean): boolean {
    const terminal = this.boolean(value, path) ?? fallback;
    if (!terminal || command === undefined) return false;
    if (findTmux() === undefined) {
      this.fail(value === undefined ? ['terminal'] : path, `terminal = true runs the command in tmux, which is not on PATH; install it with \`${TMUX_INSTALL}\` (or remove terminal = true)`);
    }
    return true;
  }

  private boolean(value: unknown, path: string[]): boolean | undefined {
    if (value === undefined || typeof value === 'boolean') return value;
    this.fail(path, `expected true or false, got ${describe(value)}`);
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
    if (http !== undefined && !http.startsWith('/')) this.fail([...path, 'http'], `the health check path must start with "/", got "${cut(http)}"`);
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
    // Most configs have no `requires` at all: then there is nothing to look up (a reload reads 1,000
    // services; an indexed loop, see checkHostsAreUnique).
    let requiring = false;
    for (let i = 0; i < services.length && !requiring; i++) requiring = services[i]!.requires.length > 0;
    if (!requiring) return;
    const byName = new Map(services.map((service) => [service.name, service]));
    for (const service of services) {
      for (const name of service.requires) {
        if (!byName.has(name)) {
          const nearest = nearestWord(name, [...byName.keys()]);
          this.fail(['service', service.name, 'requires'], `"${cut(name)}" is not a service${nearest ? `; did you mean "${nearest}"?` : ''}`);
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
    // A service that requires nothing starts no cycle.
    for (const service of services) if (service.requires.length > 0) visit(service.name, []);
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
        this.fail(path, `"${cut(item)}" is not a host name (letters, digits, "-" and dots; "*." only at the start; no port)`);
      }
      hosts.add(host);
    }
    return [...hosts];
  }

  private checkHostsAreUnique(services: ServiceConfig[], dashboardHost: string | undefined): void {
    const owner = new Map<string, string>();
    if (dashboardHost !== undefined) owner.set(dashboardHost, 'the dashboard (set `dashboard` to another host or false)');
    // Indexed loops: a reload runs this over every host a few times in a process, before it is
    // compiled, where for-of's iterator calls cost ~3 times as much (1,500 hosts at 1,000 services).
    for (let i = 0; i < services.length; i++) {
      const service = services[i]!;
      for (let j = 0; j < service.hosts.length; j++) {
        const host = service.hosts[j]!;
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

  /** A duration: any length a person means (timer.ts waits past setTimeout's 24.8 days), up to MAX_DURATION_SECONDS. */
  private seconds(value: unknown, path: string[], zeroAllowed: boolean): number | undefined {
    if (value === undefined) return undefined;
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || (!zeroAllowed && value === 0) || value > MAX_DURATION_SECONDS) {
      this.fail(path, `expected a number of seconds${zeroAllowed ? '' : ' above 0'}, up to ${MAX_DURATION_SECONDS} (100 years), got ${describe(value)}`);
    }
    return value;
  }

  private checkKeys(table: Record<string, unknown>, path: string[], known: string[]): void {
    for (const key of Object.keys(table)) {
      if (known.includes(key)) continue;
      const nearest = nearestWord(key, known);
      const where = path.length === 0 ? 'at the top level' : `in [${path.join('.')}]`;
      this.fail([...path, key], `unknown key "${cut(key)}" ${where}${nearest ? `; did you mean "${nearest}"?` : ''} (known: ${known.join(', ')})`);
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

/** A value as an error message quotes it: its start, when it is long (a value pasted by mistake may be megabytes). */
function cut(text: string): string {
  return text.length > 80 ? `${text.slice(0, 80)}…` : text;
}

function describe(value: unknown): string {
  if (Array.isArray(value)) return 'an array';
  if (value instanceof Date) return 'a date';
  if (value === null || value === undefined) return 'nothing';
  if (typeof value === 'object') return 'a table';
  // TOML's own spelling: JSON would print inf and nan as null.
  if (typeof value === 'number' && !Number.isFinite(value)) return `number ${Number.isNaN(value) ? 'nan' : value > 0 ? 'inf' : '-inf'}`;
  return `${typeof value} ${JSON.stringify(typeof value === 'string' ? cut(value) : value)}`;
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
