// A config file, found and read: which file (`--config`, ./norikae.toml, the XDG one), its TOML
// parsed with the usual mistakes explained, then validated by ConfigReader. Errors name the file,
// line and column.

import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { parse, TomlError } from 'smol-toml';
import { expandHome, type Config, type ConfigOptions } from './config.js';
import { positionAt } from './config-position.js';
import { ConfigReader } from './config-reader.js';
import { ConfigError } from './errors.js';

/**
 * Which file to read: `--config`, else ./norikae.toml, else $XDG_CONFIG_HOME/norikae/config.toml.
 * Throws a ConfigError listing what was tried when there is none.
 */
export function findConfigFile(explicit: string | undefined, cwd = process.cwd(), env = process.env): string {
  if (explicit !== undefined) return resolve(cwd, expandHome(explicit));
  const candidates = [join(cwd, 'norikae.toml'), userConfigFile(env)];
  const found = candidates.find((file) => existsSync(file));
  if (found) return found;
  throw new ConfigError(
    undefined,
    `no config file found (looked for ${candidates.join(' and ')}); pass one with --config FILE`,
  );
}

/** The user's own config file, $XDG_CONFIG_HOME/norikae/config.toml (~/.config/norikae/config.toml): where `init` writes. */
export function userConfigFile(env = process.env): string {
  const xdg = env.XDG_CONFIG_HOME ? expandHome(env.XDG_CONFIG_HOME) : join(homedir(), '.config');
  return join(xdg, 'norikae', 'config.toml');
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
