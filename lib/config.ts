// What a config is: its types and defaults, where norikae keeps its state, the one comparison
// of configs, and what `{port}` in a command means. Reading a file is config-file.ts (TOML,
// positions), checking it key by key config-reader.ts, addresses address.ts. The original Norikae
// format (`[service.NAME]` with host, port, cwd, command, delay) is accepted unchanged.

import { homedir } from 'node:os';
import { join } from 'node:path';
import type { ListenAddress } from './address.js';

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
  /** TLS for the service's names: norikae terminates it (`terminate`), or its dev server does (`passthrough`, spliced by SNI). */
  tls: 'terminate' | 'passthrough';
  /** Plain-HTTP requests for it are answered `308` to the same URL over HTTPS. */
  httpsRedirect: boolean;
  /** On connections norikae terminates, every request gets X-Forwarded-Proto/Host/For and Forwarded. */
  forwardedHeaders: boolean;
  /** Run the command on a pseudo-terminal (a tmux session), which `norikae-splice attach` connects to. */
  terminal: boolean;
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
  /** TLS listeners: the same as `listen` (both take TLS and plain HTTP), for the https:// port. */
  https: ListenAddress[];
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
  /** Seconds with no service running and no connection open after which a socket-activated norikae exits; undefined = never. */
  exitWhenIdle: number | undefined;
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

/** How a config is read: see ConfigReader. */
export interface ConfigOptions {
  /** The command line's --listen: replaces the file's `listen`. */
  listen?: ListenAddress[];
  /** The command line's --https: replaces the file's `https`. */
  https?: ListenAddress[];
  /** Check listen addresses for clashes (default). The CLI's commands to a running instance do not: it runs already. */
  checkAddresses?: boolean;
}

/**
 * A config, a service or any part of one as text to compare: JSON with `ready.log` patterns as
 * `/source/flags` (JSON makes every RegExp `{}`) and every table's keys sorted (an `env` written
 * in another order is the same env). Equal keys mean equal settings.
 */
export function configKey(value: unknown): string {
  return serialize(value, false) ?? 'undefined';
}

/** JSON.stringify with RegExps as `/source/flags` and object keys sorted; undefined where it leaves a value out. */
function serialize(value: unknown, inArray: boolean): string | undefined {
  const leaf = canonical(value, inArray);
  if (leaf === ABSENT) return undefined;
  if (leaf === null || typeof leaf !== 'object') return JSON.stringify(leaf);
  if (Array.isArray(leaf)) return `[${leaf.map((item: unknown) => serialize(item, true)).join(',')}]`;
  const object = leaf as Record<string, unknown>;
  let text = '';
  for (const name of Object.keys(object).sort()) {
    const item = serialize(object[name], false);
    if (item !== undefined) text += `${text === '' ? '' : ','}${JSON.stringify(name)}:${item}`;
  }
  return `{${text}}`;
}

/**
 * Whether two configs (or services, or parts of them) hold the same settings: whether their
 * configKeys are equal, found by walking both instead of writing them out (a reload compares
 * configs of 1,000 services, and writing them cost ~100 ms).
 */
export function sameConfig(a: unknown, b: unknown): boolean {
  return same(a, b, false);
}

/** What JSON leaves out of an object (undefined, a function, a symbol). */
const ABSENT: unique symbol = Symbol('absent');

/** A value as JSON sees it: non-finite numbers are null, a RegExp its text, undefined and functions absent (null in an array). */
function canonical(value: unknown, inArray: boolean): unknown {
  switch (typeof value) {
    case 'number':
      return Number.isFinite(value) ? value : null;
    case 'undefined':
    case 'function':
    case 'symbol':
      return inArray ? null : ABSENT;
    case 'bigint':
      throw new TypeError('a bigint has no JSON');
    case 'object':
      return value instanceof RegExp ? String(value) : value;
    default:
      return value;
  }
}

function same(a: unknown, b: unknown, inArray: boolean): boolean {
  a = canonical(a, inArray);
  b = canonical(b, inArray);
  // -0 and 0 are one in JSON, and === says so too.
  if (a === b) return true;
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object' || Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const list = b as unknown[];
    if (a.length !== list.length) return false;
    for (let i = 0; i < a.length; i++) if (!same(a[i], list[i], true)) return false;
    return true;
  }
  const x = a as Record<string, unknown>;
  const y = b as Record<string, unknown>;
  let present = 0;
  for (const name of Object.keys(x)) {
    if (canonical(x[name], false) === ABSENT) continue;
    present++;
    if (!Object.hasOwn(y, name) || !same(x[name], y[name], false)) return false;
  }
  for (const name of Object.keys(y)) if (canonical(y[name], false) !== ABSENT) present--;
  return present === 0;
}

/** `~` and `~/x` → the home folder. */
export function expandHome(path: string): string {
  if (path === '~') return homedir();
  if (path.startsWith('~/')) return join(homedir(), path.slice(2));
  return path;
}

/** A command as configured, with `{port}` replaced by the port it is launched on. */
export function commandWithPort(command: string, port: number): string {
  return command.replaceAll('{port}', String(port));
}
