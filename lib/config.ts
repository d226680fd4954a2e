// The config file: TOML → validated, normalised services. Every mistake is a ConfigError that
// names the file, line and column, so a user can go straight to it. The original Norikae format
// (`[service.NAME]` with host, port, cwd, command, delay) is accepted unchanged. The checks, key
// by key, are in `config-reader.ts`; addresses in `address.ts`.

import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { parse, TomlError } from 'smol-toml';
import type { ListenAddress } from './address.js';
import { positionAt } from './config-position.js';
import { ConfigReader } from './config-reader.js';
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
 * A config, a service or any part of one as text to compare: JSON with `ready.log` patterns as
 * `/source/flags` (JSON makes every RegExp `{}`) and every table's keys sorted (an `env` written
 * in another order is the same env). Equal keys mean equal settings.
 */
export function configKey(value: unknown): string {
  return JSON.stringify(value, (_key, item: unknown) => {
    if (item instanceof RegExp) return String(item);
    if (item === null || typeof item !== 'object' || Array.isArray(item)) return item;
    return Object.fromEntries(Object.entries(item).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  });
}

/** Whether two configs (or services, or parts of them) hold the same settings: see configKey. */
export function sameConfig(a: unknown, b: unknown): boolean {
  return configKey(a) === configKey(b);
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
