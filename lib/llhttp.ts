// Our typed binding over llhttp's wasm ABI. Its main job: read a request head and stop exactly at
// its end (`RequestHeadParser`). A second mode, whole requests one after the other, lives in
// llhttp-stream.ts over the same instance (`wasmInstance`, `copyInput`). Only what the data path needs is decoded (method, target, version, Host, Accept); policy
// (HTTP version, Host count, size cap) is sniff.ts's. The wasm is the build undici publishes; only
// its C ABI is used here.

import { createRequire } from 'node:module';
// llhttp's enums (llhttp.h) as undici publishes them beside the wasm they belong to.
import { createDebug, ERROR, TYPE } from './packages.js';

const debug = createDebug('norikae:llhttp');

/** `execute()`: the head needs more bytes. */
export const HEAD_INCOMPLETE = -1;
/** `execute()`: the bytes are not a request head; see `errorName` and `errorReason`. */
export const HEAD_INVALID = -2;

// Which header a value belongs to: the only two we decode. Also bits: what a name can still be.
const OTHER = 0;
const HOST = 1;
const ACCEPT = 2;
/** The two names we look for, lower-case, as bytes: names are compared in wasm memory, not decoded. */
const HOST_NAME = Buffer.from('host', 'latin1');
const ACCEPT_NAME = Buffer.from('accept', 'latin1');

/**
 * One connection's request head, fed chunk by chunk, over a pooled wasm llhttp parser. The wasm
 * parser is taken from the pool by the first execute() and given back as soon as there is a result,
 * so a head that arrives in one read holds it only for that call.
 */
export class RequestHeadParser {
  /** The wasm parser while the head is incomplete, else 0. */
  private ptr = 0;
  /** Whether `abandoned` watches this parser: only once it holds a wasm parser between reads. */
  private watched = false;
  private destroyed = false;
  private readonly state: HeadState = {
    method: '', url: '', httpMajor: 0, httpMinor: 0, hosts: [], accepts: [], upgrade: false,
    errorName: '', errorReason: '', targetSeen: false, complete: false, done: false,
    nameLength: 0, nameMatch: HOST | ACCEPT, inValue: false, valueKind: OTHER, value: '',
  };

  get method(): string { return this.state.method; }
  get url(): string { return this.state.url; }
  get httpMajor(): number { return this.state.httpMajor; }
  get httpMinor(): number { return this.state.httpMinor; }
  get hosts(): string[] { return this.state.hosts; }
  /**
   * Every Accept value, including one still open: a head cut short by an error or the size cap
   * must give the same answer however the reads were split (llhttp files a value only when the
   * next header name starts, and reports a partial name only at the end of a read).
   */
  get accept(): string {
    const s = this.state;
    const open = s.inValue && s.valueKind === ACCEPT;
    if (!open) return s.accepts.length === 1 ? s.accepts[0]! : s.accepts.join(', ');
    return s.accepts.concat(trimValue(s.value)).join(', ');
  }
  get upgrade(): boolean { return this.state.upgrade; }
  get errorName(): string { return this.state.errorName; }
  get errorReason(): string { return this.state.errorReason; }

  /**
   * Feeds the next bytes of the connection. Returns HEAD_INCOMPLETE (all of `data` consumed),
   * HEAD_INVALID, or how many bytes of `data` end the head (its final CRLF included).
   */
  execute(data: Uint8Array): number {
    const s = this.state;
    if (this.destroyed) throw new Error('RequestHeadParser.execute() after destroy()');
    if (s.done) throw new Error('RequestHeadParser.execute() after the head was complete or invalid');
    if (data.length === 0) return HEAD_INCOMPLETE;
    const w = load();
    if (this.ptr === 0) this.ptr = acquire(w);
    const at = inputArea(w, data.length);
    // execute() never mallocs, so wasm memory cannot grow (and detach this view) while it runs.
    bytes = heap();
    bytes.set(data, at);
    // Cleared only when more bytes are wanted, so a wasm trap cannot leave a half-parsed parser usable.
    s.done = true;
    current = s;
    try {
      const errno = w.llhttp_execute(this.ptr, at, data.length);
      // llhttp reads the method before the target, and its method field is 0 (DELETE) until then.
      if (s.targetSeen && s.method === '') s.method = methodName(w, w.llhttp_get_method(this.ptr));
      if (errno === ERROR.OK) {
        s.done = false;
        return HEAD_INCOMPLETE;
      }
      if (errno === ERROR.PAUSED && s.complete) {
        s.httpMajor = w.llhttp_get_http_major(this.ptr);
        s.httpMinor = w.llhttp_get_http_minor(this.ptr);
        return w.llhttp_get_error_pos(this.ptr) - at;
      }
      s.errorName = cString(w.llhttp_errno_name(errno));
      s.errorReason = cString(w.llhttp_get_error_reason(this.ptr));
      return HEAD_INVALID;
    } finally {
      current = undefined;
      bytes = undefined;
      if (s.done) this.releaseParser();
      else if (!this.watched) {
        // The wasm parser now outlives this call: if this object is dropped without destroy(), get it back.
        abandoned.register(this, this.ptr, this);
        this.watched = true;
      }
    }
  }

  /** Returns the wasm parser to the pool. Idempotent; what was parsed stays readable. */
  destroy(): void {
    this.destroyed = true;
    this.releaseParser();
  }

  private releaseParser(): void {
    if (this.ptr === 0) return;
    if (this.watched) abandoned.unregister(this);
    this.watched = false;
    release(this.ptr);
    this.ptr = 0;
  }
}

/** What the callbacks record for one parser; written only while it is `current`. */
interface HeadState {
  method: string; url: string; httpMajor: number; httpMinor: number;
  hosts: string[]; accepts: string[]; upgrade: boolean; errorName: string; errorReason: string;
  /** The request target has started, so the method is known. */
  targetSeen: boolean;
  /** on_headers_complete ran: llhttp paused right after the head. */
  complete: boolean;
  /** No more execute(): the head was complete or invalid. */
  done: boolean;
  /** Bytes of the current header name so far. */
  nameLength: number;
  /** What the current name can still be (HOST and ACCEPT bits), from the bytes so far. */
  nameMatch: number;
  /** llhttp alternates name and value spans; a name span after a value span starts a new header. */
  inValue: boolean;
  valueKind: number;
  value: string;
}

/** The slice of llhttp's exports we call (pointers and enums are plain numbers). */
export interface LlhttpExports {
  memory: { readonly buffer: ArrayBuffer };
  _initialize(): void;
  malloc(size: number): number;
  free(ptr: number): void;
  llhttp_alloc(type: number): number;
  llhttp_free(parser: number): void;
  llhttp_reset(parser: number): void;
  llhttp_execute(parser: number, data: number, len: number): number;
  llhttp_get_error_pos(parser: number): number;
  llhttp_get_error_reason(parser: number): number;
  llhttp_get_method(parser: number): number;
  llhttp_get_http_major(parser: number): number;
  llhttp_get_http_minor(parser: number): number;
  llhttp_errno_name(errno: number): number;
  llhttp_method_name(method: number): number;
  llhttp_resume(parser: number): void;
  llhttp_get_upgrade(parser: number): number;
}

/** The few WebAssembly JS APIs we use: lib es2023 does not declare them (lib.dom does). */
declare const WebAssembly: {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: { env: Record<string, (...args: number[]) => number> }) => { exports: unknown };
};

let wasm: LlhttpExports | undefined;
/** The parser whose execute() is running: the only state the imported callbacks touch. */
let current: HeadState | undefined;
/** One grow-only input area shared by all parsers: execute() is synchronous, so never shared at once. */
let inputPtr = 0;
let inputSize = 0;
let heapView: Buffer | undefined;
/** `heap()` while execute() runs: the callbacks read names and values through it. */
let bytes: Buffer | undefined;
/** Method names by llhttp's method number, read from wasm once each. */
const methodNames: string[] = [];
/** Released parsers, reset and handed to the next first execute(); beyond this many, given back to malloc. */
const idleParsers: number[] = [];
const IDLE_MAX = 64;
/** A parser dropped without destroy() still returns its wasm parser, late. */
const abandoned = new FinalizationRegistry<number>(release);

/**
 * Compiles and instantiates llhttp now rather than on the first execute(), so the first client
 * does not wait for it: SpliceServer.listen() calls this before it binds. Idempotent.
 */
export function loadParser(): void {
  load();
}

/** Whether llhttp is compiled and instantiated in this process. */
export function parserLoaded(): boolean {
  return wasm !== undefined;
}

/** Compiles and instantiates llhttp once per process; SIMD build first, plain one if that fails. */
function load(): LlhttpExports {
  if (wasm !== undefined) return wasm;
  const require = createRequire(import.meta.url);
  let module: object;
  try {
    module = new WebAssembly.Module(require('undici/lib/llhttp/llhttp_simd-wasm.js') as Buffer);
  } catch (err) {
    debug('SIMD llhttp did not compile (%s); using the plain build', (err as Error).message);
    module = new WebAssembly.Module(require('undici/lib/llhttp/llhttp-wasm.js') as Buffer);
  }
  const env = {
    wasm_on_message_begin: ignore, wasm_on_status: ignore, wasm_on_body: ignore, wasm_on_message_complete: onMessageComplete,
    wasm_on_url: onUrl, wasm_on_header_field: onHeaderField, wasm_on_header_value: onHeaderValue,
    wasm_on_headers_complete: onHeadersComplete,
  };
  const exports = new WebAssembly.Instance(module, { env }).exports as LlhttpExports;
  exports._initialize();
  return (wasm = exports);
}

/** @internal For llhttp-stream.ts: the instance, compiled on first use. */
export function wasmInstance(): LlhttpExports {
  return load();
}

/** @internal For llhttp-stream.ts: `data` copied into the shared input area; its pointer there. */
export function copyInput(w: LlhttpExports, data: Uint8Array): number {
  const at = inputArea(w, data.length);
  heap().set(data, at);
  return at;
}

/** A view of wasm memory, renewed when the memory has grown (that detaches the old buffer and empties its views). */
function heap(): Buffer {
  if (heapView === undefined || heapView.length === 0) heapView = Buffer.from(wasm!.memory.buffer);
  return heapView;
}

/** Input bytes as latin1 (one char per byte): `TextDecoder('latin1')` is windows-1252 and turns 0x80 into €. */
function latin1(at: number, len: number): string {
  return len === 0 ? '' : bytes!.toString('latin1', at, at + len);
}

/** A NUL-terminated C string (llhttp's names and reasons are ASCII). */
function cString(ptr: number): string {
  if (ptr === 0) return '';
  const memory = heap();
  return memory.toString('latin1', ptr, memory.indexOf(0, ptr));
}

/** llhttp's name for a method number (ASCII, static in wasm memory), decoded once. */
function methodName(w: LlhttpExports, method: number): string {
  return (methodNames[method] ??= cString(w.llhttp_method_name(method)));
}

/** The input area, at least `size` bytes; re-malloc'd only when a larger input arrives. */
function inputArea(w: LlhttpExports, size: number): number {
  if (size <= inputSize) return inputPtr;
  if (inputPtr !== 0) w.free(inputPtr);
  inputSize = Math.max(4096, 2 ** Math.ceil(Math.log2(size)));
  inputPtr = w.malloc(inputSize);
  if (inputPtr === 0) {
    inputSize = 0;
    throw new RangeError('llhttp: out of wasm memory');
  }
  return inputPtr;
}

/** A reset wasm parser from the pool, or a new one. */
function acquire(w: LlhttpExports): number {
  const reused = idleParsers.pop();
  if (reused !== undefined) {
    w.llhttp_reset(reused);
    return reused;
  }
  const ptr = w.llhttp_alloc(TYPE.REQUEST);
  if (ptr === 0) throw new RangeError('llhttp: out of wasm memory');
  return ptr;
}

/** Pools a destroyed (or abandoned) wasm parser, or frees it when the pool is full. */
function release(ptr: number): void {
  if (idleParsers.length < IDLE_MAX) idleParsers.push(ptr);
  else wasm!.llhttp_free(ptr);
}

// The imported callbacks only record state and never throw; 0 means "go on".

function ignore(): number {
  return 0;
}

function onUrl(_p: number, at: number, len: number): number {
  if (current === undefined) return 0;
  current.targetSeen = true;
  current.url += latin1(at, len);
  return 0;
}

function onHeaderField(_p: number, at: number, len: number): number {
  const s = current;
  if (s === undefined) return 0;
  if (s.inValue) {
    endValue(s);
    s.inValue = false;
    s.nameLength = 0;
    s.nameMatch = HOST | ACCEPT;
  }
  // Only Host and Accept matter: names are compared as bytes, never decoded, and not at all once
  // they are longer than "accept".
  const length = s.nameLength + len;
  if (length > ACCEPT_NAME.length) s.nameMatch = OTHER;
  else if (s.nameMatch !== OTHER) s.nameMatch = matchName(s.nameMatch, s.nameLength, at, len);
  s.nameLength = length;
  return 0;
}

function onHeaderValue(_p: number, at: number, len: number): number {
  const s = current;
  if (s === undefined) return 0;
  if (!s.inValue) {
    s.inValue = true;
    s.valueKind = s.nameMatch & HOST && s.nameLength === HOST_NAME.length ? HOST
      : s.nameMatch & ACCEPT && s.nameLength === ACCEPT_NAME.length ? ACCEPT : OTHER;
    s.value = '';
  }
  if (s.valueKind !== OTHER) s.value += latin1(at, len);
  return 0;
}

/**
 * Never reached by a head parser (it pauses before); a stream parser (no `current`) pauses at the
 * end of every request, so the next head's first byte is known.
 */
function onMessageComplete(): number {
  return current === undefined ? ERROR.PAUSED : 0;
}

/**
 * Pauses llhttp at the end of the head: nothing after it (a body, an upgraded stream) is parsed.
 * A stream parser (no `current`) pauses here too, at the end of each head.
 */
function onHeadersComplete(_p: number, _status: number, upgrade: number): number {
  const s = current;
  if (s === undefined) return ERROR.PAUSED;
  if (s.inValue) endValue(s);
  s.inValue = false;
  s.upgrade = upgrade !== 0;
  s.complete = true;
  return ERROR.PAUSED;
}

/** Files a finished Host or Accept value, without the trailing whitespace llhttp keeps. */
function endValue(s: HeadState): void {
  if (s.valueKind === OTHER) return;
  const value = trimValue(s.value);
  if (s.valueKind === HOST) s.hosts = appended(s.hosts, value);
  else s.accepts = appended(s.accepts, value);
}

/** `list` and `value` as a new array: a head has one Host and one Accept, and `[value]` is cheaper than push() on `[]`. */
function appended(list: string[], value: string): string[] {
  return list.length === 0 ? [value] : [...list, value];
}

/**
 * Narrows `match` (HOST and ACCEPT bits) by the name bytes at `at`, which continue a name `offset`
 * bytes in. Case-insensitive: `| 0x20` lower-cases ASCII letters, and only letters are compared to.
 */
function matchName(match: number, offset: number, at: number, len: number): number {
  for (let i = 0; i < len && match !== OTHER; i++) {
    const c = bytes![at + i]! | 0x20;
    const pos = offset + i;
    if (pos >= HOST_NAME.length || c !== HOST_NAME[pos]) match &= ~HOST;
    if (pos >= ACCEPT_NAME.length || c !== ACCEPT_NAME[pos]) match &= ~ACCEPT;
  }
  return match;
}

/** Spaces and tabs around a value (not `trim()`: 0xA0 is a character in latin1). */
function trimValue(value: string): string {
  let start = 0;
  let end = value.length;
  while (start < end && isBlank(value.charCodeAt(start))) start++;
  while (end > start && isBlank(value.charCodeAt(end - 1))) end--;
  return start === 0 && end === value.length ? value : value.slice(start, end);
}

/** A space or a tab, the whitespace HTTP allows around a value. */
function isBlank(code: number): boolean {
  return code === 0x20 || code === 0x09;
}
