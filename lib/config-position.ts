// smol-toml gives positions only for syntax errors. A config that parses but is wrong (an unknown
// key, a port out of range) still deserves a file:line:column, so we find the key in the source
// text. This is a locator for error messages, not a TOML parser: it understands table headers,
// dotted keys, the first line of a key and multi-line strings (whose lines are never keys); when
// it cannot find a key it falls back to its table.

export interface SourcePosition {
  line: number;
  column: number;
  codeFrame: string;
}

/**
 * Where `path` (e.g. ['service', 'django', 'port']) is written in `source`, or undefined.
 * Handles `[service.django]` + `port = …`, `[service]` + `django.port = …`, and
 * `service.django.port = …` at the top level.
 */
export function locateKey(source: string, path: readonly string[]): SourcePosition | undefined {
  const lines = source.split(/\r?\n/);
  let table: string[] = [];
  let tableHeader: SourcePosition | undefined;
  /** The delimiter of the multi-line string the current line is inside, if any. */
  let inString: string | undefined;
  for (let i = 0; i < lines.length; i++) {
    const text = lines[i]!;
    if (inString !== undefined) {
      if (text.includes(inString)) inString = undefined;
      continue;
    }
    const header = /^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$/.exec(text);
    if (header) {
      table = splitDottedKey(header[1]!) ?? [];
      const nameColumn = text.indexOf(header[1]!) + 1;
      // `[services.web]` when `services` itself is wrong: point at that part of the header.
      if (isPrefix(path, table)) return at(lines, i, nameColumn + offsetOfPart(header[1]!, path.length - 1));
      if (isPrefix(table, path)) tableHeader = at(lines, i, nameColumn);
      continue;
    }
    const assignment = /^(\s*)([^=#]+?)\s*=(.*)$/.exec(text);
    if (!assignment) continue;
    const value = assignment[3]!;
    inString = openedMultiLineString(value);
    const keyParts = splitDottedKey(assignment[2]!);
    if (keyParts === undefined || !isPrefix(table, path)) continue;
    const key = [...table, ...keyParts];
    if (isPrefix(path, key) || isPrefix(key, path)) {
      // The key itself, or an inline table holding it: either way, this line is the place.
      const column = assignment[1]!.length + 1 + offsetOfPart(assignment[2]!, path.length - table.length - 1);
      return at(lines, i, column);
    }
  }
  // A whole table that is wrong (an unknown service key on a table header) points at the header.
  return tableHeader;
}

/** The position `line`:`column` (1-based) of `source`, with its code frame. */
export function positionAt(source: string, line: number, column: number): SourcePosition {
  const lines = source.split(/\r?\n/);
  return at(lines, Math.min(Math.max(line, 1), lines.length) - 1, column);
}

/** The most of a line a code frame shows: a longer one is cut around the column, with "…" where it was cut. */
export const FRAME_WIDTH = 120;

function at(lines: string[], index: number, column: number): SourcePosition {
  const gutter = String(index + 1).length;
  const { text, caret } = frameLine(lines[index] ?? '', column);
  const frame = [
    `${index + 1} | ${text}`,
    `${' '.repeat(gutter)} | ${' '.repeat(caret)}^`,
  ].join('\n');
  return { line: index + 1, column, codeFrame: frame };
}

/** The part of `line` a frame shows (all of it, or FRAME_WIDTH characters around `column`), and the caret's offset in it. */
function frameLine(line: string, column: number): { text: string; caret: number } {
  const offset = Math.max(0, column - 1);
  if (line.length <= FRAME_WIDTH) return { text: line, caret: offset };
  const start = Math.max(0, Math.min(offset - FRAME_WIDTH / 2, line.length - FRAME_WIDTH));
  const end = start + FRAME_WIDTH;
  const before = start > 0 ? '…' : '';
  return { text: `${before}${line.slice(start, end)}${end < line.length ? '…' : ''}`, caret: offset - start + before.length };
}

/** `a."b.c".d` → ['a', 'b.c', 'd'] (bare and quoted keys, as TOML writes them); undefined when `text` is not a key. */
function splitDottedKey(text: string): string[] | undefined {
  const parts: string[] = [];
  const re = /\s*(?:"((?:[^"\\]|\\.)*)"|'([^']*)'|([A-Za-z0-9_-]+))\s*(?:\.|$)/y;
  let match: RegExpExecArray | null;
  while (re.lastIndex < text.length && (match = re.exec(text))) {
    parts.push(match[1] ?? match[2] ?? match[3]!);
  }
  return parts.length > 0 && re.lastIndex === text.length ? parts : undefined;
}

/**
 * The delimiter of a multi-line string that `value` (a line's text after `=`) opens and does not
 * close, if any. Strings closed on the line and comments are skipped, so a `"""` inside
 * `'...'` or after `#` opens nothing.
 */
function openedMultiLineString(value: string): string | undefined {
  let i = 0;
  while (i < value.length) {
    const ch = value[i];
    if (ch === '#') return undefined;
    const triple = value.startsWith('"""', i) ? '"""' : value.startsWith("'''", i) ? "'''" : undefined;
    if (triple !== undefined) {
      const close = value.indexOf(triple, i + 3);
      if (close === -1) return triple;
      i = close + 3;
    } else if (ch === '"') {
      // A basic string: a backslash escapes the next character, a quote among them.
      for (i++; i < value.length && value[i] !== '"'; i += value[i] === '\\' ? 2 : 1);
      i++;
    } else if (ch === "'") {
      const close = value.indexOf("'", i + 1);
      i = close === -1 ? value.length : close + 1;
    } else {
      i++;
    }
  }
  return undefined;
}

/** 0-based character offset of the `n`th dotted part within a key as written. */
function offsetOfPart(keyText: string, n: number): number {
  if (n <= 0) return 0;
  let seen = 0;
  let quote = '';
  for (let i = 0; i < keyText.length; i++) {
    const ch = keyText[i]!;
    if (quote) {
      if (ch === quote) quote = '';
    } else if (ch === '"' || ch === "'") {
      quote = ch;
    } else if (ch === '.' && ++seen === n) {
      let j = i + 1;
      while (keyText[j] === ' ') j++;
      return j;
    }
  }
  return 0;
}

function isPrefix(prefix: readonly string[], whole: readonly string[]): boolean {
  if (prefix.length > whole.length) return false;
  for (let i = 0; i < prefix.length; i++) if (prefix[i] !== whole[i]) return false;
  return true;
}
