// `norikae-splice hosts sync | clean`: a block of our own in /etc/hosts, between
// `# norikae-splice begin` and `# norikae-splice end`, naming every exact host of the config on
// 127.0.0.1 and ::1, for Safari and the programs whose resolver does not map `*.localhost` to
// loopback by itself. Everything outside the block stays byte for byte as it was; the file is
// replaced atomically (atomic-file.ts), keeping its mode.

import { readFileSync } from 'node:fs';
import { replaceFile } from './atomic-file.js';
import type { Config } from './config.js';
import { setupErrors, shellWord } from './errors.js';

export const HOSTS_FILE = '/etc/hosts';
export const BLOCK_BEGIN = '# norikae-splice begin';
export const BLOCK_END = '# norikae-splice end';

export type HostsAction = 'sync' | 'clean';

export interface HostsResult {
  file: string;
  /** Whether the file's text changes (or would, with dryRun). */
  changed: boolean;
  /** A unified diff of the change; empty when nothing changes. */
  diff: string;
  written: boolean;
  /** The names the block holds after a sync. */
  names: string[];
}

/** Every exact host name of the config, the dashboard's too, in config order; wildcards cannot be in a hosts file. */
export function exactHostNames(config: Config): string[] {
  const names = config.services.flatMap((service) => service.hosts).filter((host) => !host.startsWith('*.'));
  if (config.dashboardHost !== undefined) names.push(config.dashboardHost);
  return [...new Set(names)];
}

/** Syncs (or removes) the block of `config`'s names in `file`; with `dryRun`, only says what would change. */
export function updateHostsFile(action: HostsAction, config: Config, options: { file?: string; dryRun?: boolean } = {}): HostsResult {
  const file = options.file ?? HOSTS_FILE;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw setupErrors.hostsFile(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, err);
  }
  const names = action === 'sync' ? exactHostNames(config) : [];
  const updated = withBlock(text, action === 'sync' ? names : undefined, file);
  const changed = updated !== text;
  const result = { file, changed, diff: changed ? unifiedDiff(file, text, updated) : '', written: false, names };
  if (!changed || options.dryRun === true) return result;
  try {
    replaceFile(file, updated);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM') {
      const fileOption = file === HOSTS_FILE ? '' : ` --hosts-file ${shellWord(file)}`;
      throw setupErrors.hostsFile(`cannot write ${file}: permission denied. It belongs to root; run it with sudo (keeping your PATH, so node and norikae-splice are found): `
        + `sudo env "PATH=$PATH" norikae-splice hosts ${action} --config ${shellWord(config.file)}${fileOption}`, err);
    }
    throw setupErrors.hostsFile(`cannot write ${file}: ${code ?? String(err)}`, err);
  }
  return { ...result, written: true };
}

/**
 * `text` with our block holding `names` (replacing the block where it is, else appended at the
 * end), or without the block when `names` is undefined. Throws on a block we cannot tell the end
 * of: a begin line without its end line, or two blocks.
 */
export function withBlock(text: string, names: string[] | undefined, file = HOSTS_FILE): string {
  const eol = text.includes('\r\n') ? '\r\n' : '\n';
  const lines = lineSpans(text);
  const begins = lines.filter((line) => line.text.trim() === BLOCK_BEGIN);
  const ends = lines.filter((line) => line.text.trim() === BLOCK_END);
  if (begins.length > 1 || ends.length > 1) {
    throw setupErrors.hostsFile(`${file} has more than one "${BLOCK_BEGIN}" block; remove all but one by hand, then run this again`);
  }
  const begin = begins[0];
  const end = ends[0];
  if ((begin === undefined) !== (end === undefined) || (begin !== undefined && end!.start < begin.start)) {
    const line = (begin ?? end)!.number;
    throw setupErrors.hostsFile(`${file}:${line}: the "${BLOCK_BEGIN}" and "${BLOCK_END}" lines do not make a block; fix them by hand, then run this again`);
  }
  const block = names === undefined ? '' : blockText(names, eol);
  if (begin !== undefined) return text.slice(0, begin.start) + block + text.slice(end!.next);
  if (block === '') return text;
  // The file's last line gets its end of line, or the block would continue it.
  const joint = text === '' || text.endsWith('\n') ? '' : eol;
  return text + joint + block;
}

function blockText(names: string[], eol: string): string {
  const lines = [
    BLOCK_BEGIN,
    '# Written by `norikae-splice hosts sync` from its config; edit the config and sync again, not these lines.',
    ...names.flatMap((name) => [`127.0.0.1\t${name}`, `::1\t${name}`]),
    BLOCK_END,
  ];
  return lines.map((line) => line + eol).join('');
}

interface LineSpan {
  /** 1-based. */
  number: number;
  text: string;
  /** Offset of its first character, and of the line after it (past its end of line). */
  start: number;
  next: number;
}

function lineSpans(text: string): LineSpan[] {
  const spans: LineSpan[] = [];
  let start = 0;
  while (start < text.length) {
    const newline = text.indexOf('\n', start);
    const next = newline === -1 ? text.length : newline + 1;
    spans.push({ number: spans.length + 1, text: text.slice(start, newline === -1 ? next : newline).replace(/\r$/, ''), start, next });
    start = next;
  }
  return spans;
}

/**
 * A unified diff of a change in one place (all `withBlock` makes): the lines both texts share at
 * the start and at the end are context, three of each shown.
 */
export function unifiedDiff(file: string, before: string, after: string): string {
  const a = splitLines(before);
  const b = splitLines(after);
  let head = 0;
  while (head < a.length && head < b.length && a[head] === b[head]) head++;
  let tail = 0;
  while (tail < a.length - head && tail < b.length - head && a[a.length - 1 - tail] === b[b.length - 1 - tail]) tail++;
  const from = Math.max(0, head - 3);
  const contextAfter = Math.min(3, tail);
  const oldLines = a.slice(from, a.length - tail + contextAfter);
  const newLines = b.slice(from, b.length - tail + contextAfter);
  const range = (start: number, count: number): string => `${count === 0 ? start : start + 1},${count}`;
  const out = [`--- ${file}`, `+++ ${file}`, `@@ -${range(from, oldLines.length)} +${range(from, newLines.length)} @@`];
  for (let i = from; i < head; i++) out.push(` ${a[i]}`);
  for (let i = head; i < a.length - tail; i++) out.push(`-${a[i]}`);
  for (let i = head; i < b.length - tail; i++) out.push(`+${b[i]}`);
  for (let i = a.length - tail; i < a.length - tail + contextAfter; i++) out.push(` ${a[i]}`);
  return `${out.join('\n')}\n`;
}

/** Lines as a diff shows them: without their end of line; a last line without one is marked as diff marks it. */
function splitLines(text: string): string[] {
  if (text === '') return [];
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  else lines[lines.length - 1] += '\n\\ No newline at end of file';
  return lines.map((line) => line.replace(/\r$/, ''));
}
