// What a valid config will still fail at when a service is launched: a `cwd` that is not a folder,
// a command whose program is not on PATH. Warnings, not errors: the folder may be made and the
// program installed before the first request. `check` prints them, and so does norikae at start.
// When in doubt (a program that is not a plain word, a shell builtin, PATH set by the command
// itself), nothing is said: a warning that is wrong teaches people to ignore warnings.

import { accessSync, constants, readFileSync, statSync } from 'node:fs';
import { delimiter, resolve } from 'node:path';
import { commandWithPort, type Config, type ServiceConfig } from './config.js';
import { locateKey } from './config-position.js';

export interface ConfigWarning {
  /** The service the warning is about. */
  service: string;
  /** The key at fault: `cwd` (not a folder) or `command` (its program not found). */
  key: 'cwd' | 'command';
  /** One sentence: what will fail, and why. */
  message: string;
  /** Where the key is in the config file (1-based), when it could be found. */
  line?: number | undefined;
  column?: number | undefined;
}

/**
 * The warnings for every service of `config`, in config order. `env` is the environment the
 * commands are launched with (norikae's own; each service's `env` goes on top); `source` is the
 * config file's text, read from `config.file` when not given, for the positions.
 */
export function configWarnings(config: Config, options: { env?: NodeJS.ProcessEnv; source?: string } = {}): ConfigWarning[] {
  const env = options.env ?? process.env;
  const found: { service: string; key: ConfigWarning['key']; message: string }[] = [];
  // Most services run the same few programs (npm, pnpm, node) from the same PATH: each lookup is
  // made once, not once per service (a config of 1,000 services stat()ed ~3,000 paths).
  const lookups = new Map<string, boolean>();
  const onPath = (program: string, searchPath: string, cwd: string): boolean => {
    const folders = searchPath.split(delimiter);
    // An empty or relative entry is taken from the working folder: then the folder is part of the key.
    const key = folders.every((folder) => folder.startsWith('/')) ? `${searchPath}\0${program}` : `${searchPath}\0${program}\0${cwd}`;
    let found = lookups.get(key);
    if (found === undefined) lookups.set(key, found = folders.some((folder) => isProgram(resolve(cwd, folder, program))));
    return found;
  };
  for (const service of config.services) {
    if (service.command === undefined) continue;
    const cwd = service.cwd ?? process.cwd();
    const folder = folderProblem(cwd);
    if (folder !== undefined) {
      found.push({ service: service.name, key: 'cwd', message: `cwd ${cwd} ${folder}, so its command cannot start` });
      continue;
    }
    const problem = programProblem(service, cwd, env, onPath);
    if (problem !== undefined) found.push({ service: service.name, key: 'command', message: problem });
  }
  if (found.length === 0) return [];
  const source = options.source ?? readSource(config.file);
  return found.map(({ service, key, message }) => {
    const position = source === undefined ? undefined : locateKey(source, ['service', service, key]);
    return { service, key, message, line: position?.line, column: position?.column };
  });
}

/** `FILE:LINE:COLUMN: NAME: MESSAGE`, a warning as one line of a log. */
export function formatWarning(file: string, warning: ConfigWarning): string {
  const where = warning.line === undefined ? file : `${file}:${warning.line}:${warning.column ?? 1}`;
  return `${where}: ${warning.service}: ${warning.message}`;
}

/** Words `sh` runs itself, never from PATH: a command starting with one is not looked up. */
const SHELL_WORDS = new Set([
  // keywords
  '!', '{', '}', 'case', 'do', 'done', 'elif', 'else', 'esac', 'fi', 'for', 'function', 'if', 'in', 'select', 'then', 'time', 'until', 'while',
  // builtins of dash and bash
  '.', ':', 'alias', 'bg', 'break', 'builtin', 'cd', 'command', 'continue', 'echo', 'eval', 'exec', 'exit', 'export', 'false', 'fg',
  'getopts', 'hash', 'jobs', 'kill', 'local', 'printf', 'pwd', 'read', 'readonly', 'return', 'set', 'shift', 'source', 'test', 'times',
  'trap', 'true', 'type', 'ulimit', 'umask', 'unalias', 'unset', 'wait',
]);

/** Why `path` cannot be a command's working folder, or undefined when it can. */
function folderProblem(path: string): string | undefined {
  try {
    return statSync(path).isDirectory() ? undefined : 'is not a folder';
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'does not exist' : undefined;
  }
}

/** Why the program of a service's command will not be found, or undefined when it will be (or we cannot tell). */
function programProblem(service: ServiceConfig, cwd: string, env: NodeJS.ProcessEnv, onPath: (program: string, searchPath: string, cwd: string) => boolean): string | undefined {
  const command = commandWithPort(service.command!, service.port ?? 0);
  const parsed = programOf(command);
  if (parsed === undefined || parsed.setsPath) return undefined;
  const { program } = parsed;
  if (program.includes('/')) {
    const path = resolve(cwd, program);
    return isProgram(path) ? undefined : `"${program}" (the program of its command) ${folderProblem(path) === 'does not exist' ? `does not exist in ${cwd}` : 'is not an executable file'}`;
  }
  const searchPath = service.env.PATH ?? env.PATH;
  // Without PATH, sh searches a default of its own: we cannot tell.
  if (searchPath === undefined) return undefined;
  // An empty entry is the working folder.
  if (onPath(program, searchPath, cwd)) return undefined;
  return `"${program}" (the program of its command) is not on PATH, so the launch will fail with "not found"`;
}

/**
 * The program a `sh -c` command line runs first, past `VAR=value` assignments and `exec`, when it
 * is a plain word; undefined when it is not (quotes, `$`, `~`, a subshell, an option) or when it
 * is run by the shell itself. `setsPath`: an assignment changes PATH for the lookup.
 */
function programOf(command: string): { program: string; setsPath: boolean } | undefined {
  const words = command.trim().split(/\s+/);
  let setsPath = false;
  let i = 0;
  for (; i < words.length; i++) {
    const assignment = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(words[i]!);
    if (assignment === null) break;
    if (!isPlain(assignment[2]!)) return undefined;
    if (assignment[1] === 'PATH') setsPath = true;
  }
  if (words[i] === 'exec') i++;
  // The first word ends at an operator: `npm run dev&&x`, `true;x`.
  const program = /^[^;&|<>()]*/.exec(words[i] ?? '')![0];
  if (!isPlain(program) || program === '' || program.startsWith('-') || SHELL_WORDS.has(program)) return undefined;
  return { program, setsPath };
}

/** A word `sh` takes as it is written: no quotes, expansions, globs or escapes. */
function isPlain(word: string): boolean {
  return /^[A-Za-z0-9_.\/+@%:,=-]*$/.test(word);
}

/** An executable regular file: what `sh` would run. */
function isProgram(path: string): boolean {
  try {
    if (!statSync(path).isFile()) return false;
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The config file's text, for positions; none when it cannot be read (a config parsed from a string). */
function readSource(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}
