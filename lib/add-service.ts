// `norikae-splice add`: a project folder → a `[service.NAME]` block appended to the config file as
// text. The user's comments and layout stay as they are (the TOML is never re-serialised); the
// new text is validated as a whole before it replaces the file atomically, so a running norikae's
// file watch picks up a complete, valid config or nothing.

import { readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { serviceUrl } from './address.js';
import { replaceFile } from './atomic-file.js';
import type { Config } from './config.js';
import { parseConfig } from './config-file.js';
import { locateKey } from './config-position.js';
import { ConfigError, setupErrors } from './errors.js';
import { detectProjects, LOOKED_FOR, type Detection } from './project-detect.js';

export interface AddOptions {
  /** The config file to append to. */
  configFile: string;
  /** The project folder. */
  dir: string;
  /** The service's name; default: the folder's (in a git worktree, the main checkout's), sanitised. */
  name?: string | undefined;
  /** The command, instead of the one detected. */
  command?: string | undefined;
  /** Only say what would be appended. */
  dryRun?: boolean;
}

export interface AddResult {
  file: string;
  /** The service's name as written in the config. */
  name: string;
  host: string;
  /** Where the service opens, on norikae's first listener. */
  url: string;
  /** The text appended (from its `[service…]` header, with the comment above it). */
  block: string;
  /** What the command came from; undefined when --command gave it. */
  detection: Detection | undefined;
  /** Other dev servers the folder may run, for the user to choose with --command. */
  others: Detection[];
  /** The git branch, when the folder is a worktree of one. */
  branch: string | undefined;
  written: boolean;
}

/** Works out the block for `options.dir` and appends it to the config (unless `dryRun`). */
export function addService(options: AddOptions): AddResult {
  const file = options.configFile;
  let source: string;
  try {
    source = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(file, `cannot read the config file (${(err as NodeJS.ErrnoException).code ?? String(err)}); create one with: norikae-splice init`);
  }
  // The config must be valid before we add to it: otherwise the error would be blamed on our block.
  const config = parseConfig(source, file);
  const dir = resolve(options.dir);
  if (!isFolder(dir)) throw setupErrors.noProject(dir, 'a folder: it is not one');

  const worktree = gitWorktree(dir);
  const baseName = options.name === undefined ? sanitiseName(basename(worktree?.mainCheckout ?? dir)) : checkName(options.name);
  if (baseName === '') throw setupErrors.badName(basename(dir));
  // A worktree's service is its branch's: `feature.shop`, at feature.shop.localhost, beside `shop`.
  const name = worktree?.branch === undefined ? baseName : `${worktree.branch}.${baseName}`;
  refuseTaken(config, source, name);

  const detections = detectProjects(dir, { listenPort: config.listen[0]?.port ?? 80 });
  const detection = options.command === undefined ? detections[0] : undefined;
  if (options.command === undefined && detection === undefined) throw setupErrors.noProject(dir, LOOKED_FOR);
  const command = options.command ?? detection!.command;
  const host = `${name.toLowerCase()}.localhost`;

  const block = serviceBlock({ name, host, cwd: displayPath(dir), command, why: detection === undefined ? 'the command given' : `${detection.kind}: ${detection.reason}` });
  const updated = `${source}${separator(source)}${block}`;
  // What we write must be a valid config: the same check a reload will make.
  try {
    parseConfig(updated, file);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    throw new ConfigError(file, `the config would not be valid with this block, so it was not added: ${err.message.slice(file.length + 2)}`);
  }
  if (options.dryRun !== true) replaceFile(file, updated);
  return {
    file, name, host, url: `${serviceUrl(host, config.listen[0]?.port ?? 80)}/`, block, detection, others: options.command === undefined ? detections.slice(1) : detections, branch: worktree?.branch, written: options.dryRun !== true,
  };
}

/** A folder name as a service name and host label: lower case, letters, digits and `-`. */
export function sanitiseName(text: string): string {
  return text.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/-{2,}/g, '-').replace(/^-+|-+$/g, '').slice(0, 63).replace(/-+$/, '');
}

/** A name given with --name: a host label, or labels joined by dots. */
function checkName(name: string): string {
  if (!/^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/.test(name)) throw setupErrors.badName(name);
  return name;
}

/** Throws, with a free name to use instead, when the config already has a service `name` (in any case). */
function refuseTaken(config: Config, source: string, name: string): void {
  const taken = new Set(config.services.map((service) => service.name.toLowerCase()));
  const existing = config.services.find((service) => service.name.toLowerCase() === name.toLowerCase());
  if (existing === undefined) return;
  let n = 2;
  while (taken.has(`${name}-${n}`.toLowerCase())) n++;
  const position = locateKey(source, ['service', existing.name]);
  throw setupErrors.serviceExists(name, `${config.file}${position === undefined ? '' : `:${position.line}`}`, `${name}-${n}`);
}

/** The text of a service table, with a comment saying where its command came from. */
function serviceBlock(service: { name: string; host: string; cwd: string; command: string; why: string }): string {
  const key = /^[A-Za-z0-9_-]+$/.test(service.name) ? service.name : tomlString(service.name);
  return [
    `# ${service.why.replace(/\s+/g, ' ')} (norikae-splice add)`,
    `[service.${key}]`,
    `host = ${tomlString(service.host)}`,
    `cwd = ${tomlString(service.cwd)}`,
    `command = ${tomlString(service.command)}`,
    '',
  ].join('\n');
}

/** What goes between the file's text and the block: the line ended, then one blank line. */
function separator(source: string): string {
  if (source === '') return '';
  const eol = source.includes('\r\n') ? '\r\n' : '\n';
  if (source.endsWith(`${eol}${eol}`)) return '';
  return source.endsWith('\n') ? eol : `${eol}${eol}`;
}

/** A TOML basic string: JSON's escapes are TOML's, except that TOML also escapes DEL. */
export function tomlString(text: string): string {
  return JSON.stringify(text).replaceAll('\x7f', '\\u007f');
}

/** `~/Projects/shop` for a folder in the home folder (the config reader expands it), else the absolute path. */
function displayPath(dir: string): string {
  const home = homedir();
  const inside = relative(home, dir);
  if (inside === '') return '~';
  if (!inside.startsWith('..') && !isAbsolute(inside)) return `~/${inside.split(sep).join('/')}`;
  return dir;
}

interface Worktree {
  /** The checked-out branch (on a detached HEAD, the worktree's folder), sanitised for a host label. */
  branch: string | undefined;
  /** The folder of the repository's main checkout. */
  mainCheckout: string;
}

/**
 * The git worktree `dir` is, when its `.git` is a file pointing to a worktree's git folder
 * (`gitdir: …/.git/worktrees/NAME`, which holds a `commondir`); a submodule's `.git` file points
 * to a git folder without one, and is not a worktree.
 */
export function gitWorktree(dir: string): Worktree | undefined {
  let pointer: string;
  try {
    if (!statSync(join(dir, '.git')).isFile()) return undefined;
    pointer = readFileSync(join(dir, '.git'), 'utf8');
  } catch {
    return undefined;
  }
  const gitDir = /^gitdir:\s*(.+?)\s*$/m.exec(pointer)?.[1];
  if (gitDir === undefined) return undefined;
  const worktreeGitDir = resolve(dir, gitDir);
  let common: string;
  let head: string;
  try {
    common = resolve(worktreeGitDir, readFileSync(join(worktreeGitDir, 'commondir'), 'utf8').trim());
    head = readFileSync(join(worktreeGitDir, 'HEAD'), 'utf8');
  } catch {
    return undefined;
  }
  const branch = /^ref:\s*refs\/heads\/(.+?)\s*$/m.exec(head)?.[1];
  // A detached HEAD has no branch: the worktree's folder names it instead.
  const label = sanitiseName(branch === undefined ? basename(dir) : branch.replaceAll('/', '-'));
  // The common git folder is the main checkout's `.git` (or a bare repository, named for itself).
  const mainCheckout = basename(common) === '.git' ? dirname(common) : common.replace(/\.git$/, '');
  return { branch: label === '' ? undefined : label, mainCheckout };
}

function isFolder(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}
