// Parsing a config again after an edit of a few lines. A reload of 1,000 services parsed the whole
// file (2 ms once compiled, tens of ms in a process that has parsed it only once or twice, as a
// running norikae has). When the last text was made only of lines that are whole in themselves
// (no string or array goes on to the next line), every line starting with `[` is a table header,
// and an edit inside one table's lines can be parsed alone: the new document is the last one
// with that table replaced, and every other table is the very object it was. Anything else
// (an edited header, top-level keys, a table that another part of the file adds to, a line this
// does not know to be whole, a syntax error) is parsed whole, as before, errors and all.

import { parse } from 'smol-toml';

type Table = Record<string, unknown>;

const BARE_KEY = String.raw`[A-Za-z0-9_-]+`;
/** One-line strings: a `"""` or `'''` (a multi-line string) matches neither. */
const BASIC = String.raw`"(?:[^"\\\n\r\u2028\u2029]|\\[^\n\r\u2028\u2029])*"`;
const LITERAL = String.raw`'[^'\n\r\u2028\u2029]*'`;
const KEY = String.raw`(?:${BARE_KEY}|${BASIC}|${LITERAL})(?:[ \t]*\.[ \t]*(?:${BARE_KEY}|${BASIC}|${LITERAL}))*`;
/** A number, boolean, date or time without a space: letters, digits and + - . : */
const SCALAR = String.raw`(?:${BASIC}|${LITERAL}|[A-Za-z0-9_+.:-]+)`;
// Each run of blanks can be matched one way only (no two `[ \t]*` side by side): a line that is not whole fails in linear time.
const LIST = String.raw`\[[ \t]*(?:${SCALAR}[ \t]*(?:,[ \t]*${SCALAR}[ \t]*)*(?:,[ \t]*)?)?\]`;
const INLINE = String.raw`\{[ \t]*(?:${KEY}[ \t]*=[ \t]*${SCALAR}[ \t]*(?:,[ \t]*${KEY}[ \t]*=[ \t]*${SCALAR}[ \t]*)*)?\}`;
const COMMENT = String.raw`(?:#[^\n\r\u2028\u2029]*)?`;
/** A line that opens nothing the next line continues: blank, a comment, a `[table]` header, or `key = value` with a one-line value. */
const WHOLE_LINE = String.raw`[ \t]*(?:(?:\[[ \t]*${KEY}[ \t]*\]|${KEY}[ \t]*=[ \t]*(?:${SCALAR}|${LIST}|${INLINE}))[ \t]*)?${COMMENT}\r?`;
/** The first line that is not whole in itself. A lone CR or U+2028/9 would end a line here but not in TOML. */
const NOT_WHOLE = new RegExp(String.raw`^(?!${WHOLE_LINE}$)|\r(?!\n)|[\u2028\u2029]`, 'm');
/** A header line (in a text of whole lines, where no `[` starts a line of a value). */
const HEADER = /^[ \t]*\[/m;
const HEADER_AT = /[ \t]*\[/y;
const NEXT_HEADER = /^[ \t]*\[/gm;

/** The last text parsed and its document; one instance per app, whose reloads read the same file. */
export class TomlReuse {
  /** `whole`: the text is made of whole lines; found at the first edit, not at the start (a start need not pay it). */
  private last: { text: string; doc: Table; whole: boolean | undefined } | undefined;

  /** `text` parsed: from the last document when only one table's lines changed, else whole (throwing smol-toml's TomlError). */
  parse(text: string): Table {
    const { last } = this;
    if (last !== undefined && text === last.text) return last.doc;
    if (last !== undefined) last.whole ??= !NOT_WHOLE.test(last.text);
    let doc = last?.whole === true ? edited(last.text, last.doc, text) : undefined;
    // An edit parsed alone leaves a text of whole lines (its own lines were checked).
    const whole = doc === undefined ? undefined : true;
    if (doc === undefined) {
      this.last = undefined;
      doc = parse(text) as Table;
    }
    this.last = { text, doc, whole };
    return doc;
  }
}

/** The document of `text`, an edit of `old` (of whole lines, parsed as `doc`), when the edit is inside one table's lines. */
function edited(old: string, doc: Table, text: string): Table | undefined {
  // The lines the edit touched: [start, oldEnd) of `old` became [start, newEnd) of `text`.
  const prefix = commonPrefix(old, text);
  const suffix = commonSuffix(old, text, Math.min(old.length, text.length) - prefix);
  const start = prefix === 0 ? 0 : old.lastIndexOf('\n', prefix - 1) + 1;
  const oldEnd = lineEnd(old, old.length - suffix);
  const newEnd = lineEnd(text, text.length - suffix);
  const before = old.slice(start, oldEnd);
  const after = text.slice(start, newEnd);
  if (HEADER.test(before) || HEADER.test(after) || NOT_WHOLE.test(after)) return undefined;
  // The table those lines belong to: from its header to the next one.
  const header = headerBefore(old, start);
  if (header === undefined) return undefined;
  NEXT_HEADER.lastIndex = oldEnd;
  const oldChunkEnd = NEXT_HEADER.exec(old)?.index ?? old.length;
  const newChunkEnd = oldChunkEnd - oldEnd + newEnd;
  let oldTable: Table | undefined;
  let newTable: Table | undefined;
  let path: string[] | undefined;
  try {
    path = tablePath(parse(old.slice(header, lineEnd(old, header) + 1)) as Table);
    if (path === undefined) return undefined;
    oldTable = at(parse(old.slice(header, oldChunkEnd)) as Table, path);
    newTable = at(parse(text.slice(header, newChunkEnd)) as Table, path);
  } catch {
    // Parsed whole, for the error and its position.
    return undefined;
  }
  // Nothing else in the file adds to that table (a `[name.sub]`, a dotted key above it): its lines made all of it.
  if (oldTable === undefined || newTable === undefined || !sameTomlValue(at(doc, path), oldTable)) return undefined;
  return replaced(doc, path, 0, newTable);
}

/** The length of the longest common start of `a` and `b`, found by comparing halves (native compares, not a loop per character). */
function commonPrefix(a: string, b: string): number {
  let low = 0;
  let high = Math.min(a.length, b.length);
  while (low < high) {
    const middle = Math.ceil((low + high) / 2);
    if (a.slice(low, middle) === b.slice(low, middle)) low = middle;
    else high = middle - 1;
  }
  return low;
}

/** The length of the longest common end of `a` and `b`, at most `limit`. */
function commonSuffix(a: string, b: string, limit: number): number {
  let low = 0;
  let high = limit;
  while (low < high) {
    const middle = Math.ceil((low + high) / 2);
    if (a.slice(a.length - middle, a.length - low) === b.slice(b.length - middle, b.length - low)) low = middle;
    else high = middle - 1;
  }
  return low;
}

/** Where the line holding `index` ends (its `\n`, or the end of the text). */
function lineEnd(text: string, index: number): number {
  const end = text.indexOf('\n', index);
  return end === -1 ? text.length : end;
}

/** The start of the last header line before the line starting at `start`, if any. */
function headerBefore(text: string, start: number): number | undefined {
  let line = start;
  while (line > 0) {
    line = line >= 2 ? text.lastIndexOf('\n', line - 2) + 1 : 0;
    HEADER_AT.lastIndex = line;
    if (HEADER_AT.test(text)) return line;
  }
  return undefined;
}

/** The keys of a header as a parse of its line alone shows them: one key per level down to an empty table. */
function tablePath(doc: Table): string[] | undefined {
  const path: string[] = [];
  for (let node: unknown = doc; ;) {
    if (!isTable(node)) return undefined;
    const keys = Object.keys(node);
    if (keys.length === 0) return path.length === 0 ? undefined : path;
    if (keys.length !== 1) return undefined;
    path.push(keys[0]!);
    node = node[keys[0]!];
  }
}

/** The table at `path`, if every step is a table. */
function at(doc: Table, path: string[]): Table | undefined {
  let node: unknown = doc;
  for (const key of path) {
    if (!isTable(node) || !Object.hasOwn(node, key)) return undefined;
    node = node[key];
  }
  return isTable(node) ? node : undefined;
}

/** `doc` with the table at `path` replaced: new objects along the path (keys in their order), the rest shared. */
function replaced(node: Table, path: string[], depth: number, table: Table): Table {
  if (depth === path.length) return table;
  const copy = Object.assign(Object.create(null) as Table, node);
  copy[path[depth]!] = replaced(node[path[depth]!] as Table, path, depth + 1, table);
  return copy;
}

/**
 * Whether two parsed TOML values are the same: equal leaves (Object.is), arrays item by item,
 * tables key by key in the same order; anything else (a date) is never the same.
 */
export function sameTomlValue(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!sameTomlValue(a[i], b[i])) return false;
    return true;
  }
  if (Array.isArray(b) || !isTable(a) || !isTable(b)) return false;
  const keys = Object.keys(a);
  const others = Object.keys(b);
  if (keys.length !== others.length) return false;
  for (let i = 0; i < keys.length; i++) {
    if (keys[i] !== others[i] || !sameTomlValue(a[keys[i]!], b[keys[i]!])) return false;
  }
  return true;
}

/** A TOML table as smol-toml makes it (no prototype), or a plain object. */
function isTable(value: unknown): value is Table {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const prototype = Object.getPrototypeOf(value) as unknown;
  return prototype === null || prototype === Object.prototype;
}
