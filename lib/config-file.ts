// A config file, found and read: which file (`--config`, ./norikae.toml, the XDG one), its TOML
// parsed with the usual mistakes explained, then validated by ConfigReader. Errors name the file,
// line and column.

import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { parse, TomlError } from 'smol-toml';
import { findAddressClash, resolveAddressPlan, type ListenOrigin } from './address.js';
import { expandHome, type Config, type ConfigOptions } from './config.js';
import { locateKey, positionAt } from './config-position.js';
import { ConfigReader } from './config-reader.js';
import type { ConfigReuse } from './config-reuse.js';
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

/** Reads and validates a config file; `reuse`: what the last read of it parsed and checked, taken again where unchanged (the app's reloads). */
export function loadConfig(file: string, options: ConfigOptions = {}, reuse?: ConfigReuse): Config {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (err) {
    throw new ConfigError(file, `cannot read the config file: ${describeReadError(err as NodeJS.ErrnoException)}`);
  }
  return parseConfig(decodeUtf8(bytes, file), file, options, reuse);
}

/** Kept as read (a BOM too, as readFileSync's 'utf8' keeps it), but never a silent U+FFFD. */
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * The text of a config file, which TOML says is UTF-8. A file saved in another encoding (Latin-1,
 * say) would otherwise be read with its accents replaced, and a command or path quietly changed:
 * it is refused at the first byte that is not UTF-8, with its position.
 */
export function decodeUtf8(bytes: Buffer, file: string): string {
  try {
    return UTF8.decode(bytes);
  } catch {
    // Found below.
  }
  const offset = firstInvalidUtf8(bytes);
  const lineStart = bytes.lastIndexOf(0x0a, offset - 1) + 1;
  let line = 1;
  for (let i = bytes.indexOf(0x0a); i !== -1 && i < offset; i = bytes.indexOf(0x0a, i + 1)) line++;
  const column = bytes.subarray(lineStart, offset).toString('utf8').length + 1;
  const position = positionAt(bytes.toString('utf8'), line, column);
  throw new ConfigError(file, `byte 0x${bytes[offset]!.toString(16).padStart(2, '0')} is not UTF-8: a config file is UTF-8 text (was it saved as Latin-1?)`, position);
}

/** The offset of the first byte that does not begin a valid UTF-8 sequence (RFC 3629: no overlongs, no surrogates). */
function firstInvalidUtf8(bytes: Uint8Array): number {
  let i = 0;
  while (i < bytes.length) {
    const lead = bytes[i]!;
    if (lead < 0x80) {
      i++;
      continue;
    }
    const extra = lead >= 0xc2 && lead <= 0xdf ? 1 : lead >= 0xe0 && lead <= 0xef ? 2 : lead >= 0xf0 && lead <= 0xf4 ? 3 : 0;
    if (extra === 0 || i + extra >= bytes.length) return i;
    let code = lead & (0x3f >> extra);
    for (let k = 1; k <= extra; k++) {
      const next = bytes[i + k]!;
      if ((next & 0xc0) !== 0x80) return i;
      code = (code << 6) | (next & 0x3f);
    }
    if (code < [0, 0x80, 0x800, 0x10000][extra]! || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) return i;
    i += extra + 1;
  }
  return bytes.length;
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
export function parseConfig(source: string, file: string, options: ConfigOptions = {}, reuse?: ConfigReuse): Config {
  let doc: Record<string, unknown>;
  try {
    doc = reuse === undefined ? parse(source) as Record<string, unknown> : reuse.document.parse(source);
  } catch (err) {
    if (err instanceof TomlError) {
      const reason = err.message.split('\n')[0]!.replace(/^Invalid TOML document: /, '');
      const position = positionAt(source, err.line, err.column);
      throw new ConfigError(file, explainTomlError(reason, source.split(/\r?\n/)[err.line - 1] ?? '', err.column), position);
    }
    throw err;
  }
  return new ConfigReader(source, file, options, reuse?.services).read(doc);
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

/**
 * The address check again, with every upstream name resolved (`dns.lookup`) and this machine's
 * addresses known: an upstream spelt as the machine's own host name, pointed at norikae's own
 * port, is a loop the text alone does not show. Throws the ConfigError, positioned, that
 * ConfigReader would have thrown.
 */
export async function checkResolvedAddresses(config: Config, origin: ListenOrigin): Promise<void> {
  const clash = findAddressClash(config, origin, await resolveAddressPlan(config));
  if (clash === undefined) return;
  let source = '';
  try {
    source = readFileSync(config.file, 'utf8');
  } catch {
    // Gone since: the message still says what is wrong.
  }
  throw new ConfigError(config.file, clash.message, clash.path === undefined ? undefined : locateKey(source, clash.path));
}
