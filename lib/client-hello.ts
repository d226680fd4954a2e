// A TLS ClientHello → its SNI server name, read without terminating TLS (RFC 8446 §4.1.2, RFC 6066
// §3). The caller passes every byte received so far; the handshake message may be fragmented over
// several records, and those over several reads. All reads go through a bounds-checked cursor, so
// no input can read out of range or throw: a lying length is an 'invalid' result.

export const CLIENT_HELLO_MAX = 16 * 1024;

export type ClientHelloResult =
  | { kind: 'incomplete' }
  /** `length`: bytes of input the records holding the ClientHello span; `serverName` is lower-cased. */
  | { kind: 'complete'; serverName: string | undefined; length: number }
  | { kind: 'invalid'; reason: string };

type Invalid = Extract<ClientHelloResult, { kind: 'invalid' }>;

const RECORD_HEADER = 5;
const HANDSHAKE_HEADER = 4;
const CONTENT_HANDSHAKE = 22;
const HANDSHAKE_CLIENT_HELLO = 1;
const EXTENSION_SERVER_NAME = 0;
const NAME_TYPE_HOST_NAME = 0;
/** TLSPlaintext.length may not exceed 2^14 (RFC 8446 §5.1); the larger limits are for encrypted records. */
const MAX_RECORD_BODY = 1 << 14;
const MAX_HOST_NAME = 253;
const INCOMPLETE: ClientHelloResult = Object.freeze({ kind: 'incomplete' });

/** Whether a connection's first byte opens a TLS handshake record (and not an HTTP method). */
export function isTlsHandshakeStart(firstByte: number): boolean {
  return firstByte === CONTENT_HANDSHAKE;
}

/** Reads the ClientHello at the start of `data`, refusing one whose records would span more than `max` bytes. */
export function parseClientHello(data: Uint8Array, max: number = CLIENT_HELLO_MAX): ClientHelloResult {
  const bodies: Uint8Array[] = []; // the handshake bytes of each record; only the last may be partial
  let received = 0;
  let needed: number | undefined; // handshake bytes of the whole message, once its header is in
  let offset = 0;
  for (let records = 1; ; records++) {
    // Each header byte is checked as soon as it arrives, so a stream that is not TLS is refused early.
    if (offset < data.length && data[offset] !== CONTENT_HANDSHAKE) return invalid(`a record of type ${data[offset]} before the end of the ClientHello`);
    if (offset + 1 < data.length && data[offset + 1] !== 3) return invalid('not a TLS record (legacy version major is not 3)');
    if (offset + RECORD_HEADER > data.length) return offset + RECORD_HEADER > max ? tooLarge(max) : INCOMPLETE;
    const length = (data[offset + 3]! << 8) | data[offset + 4]!;
    if (length === 0 || length > MAX_RECORD_BODY) return invalid(`a handshake record of ${length} bytes`);
    const end = offset + RECORD_HEADER + length;
    if (end > max) return tooLarge(max);
    const body = data.subarray(offset + RECORD_HEADER, Math.min(end, data.length));
    bodies.push(body);
    received += body.length;
    if (bodies[0]!.length > 0 && bodies[0]![0] !== HANDSHAKE_CLIENT_HELLO) return invalid(`the first handshake message is of type ${bodies[0]![0]}, not a ClientHello`);
    if (needed === undefined && received >= HANDSHAKE_HEADER) {
      const header = join(bodies, HANDSHAKE_HEADER);
      needed = HANDSHAKE_HEADER + ((header[1]! << 16) | (header[2]! << 8) | header[3]!);
      // Every record so far has a header and the message has to fit too: a lower bound on the span.
      if (records * RECORD_HEADER + needed > max) return tooLarge(max);
    }
    if (end > data.length) return INCOMPLETE;
    offset = end;
    if (needed !== undefined && received >= needed) break;
  }
  // Bytes after the ClientHello in its last record belong to the next message: not ours to read.
  const serverName = readServerName(new Reader(join(bodies, needed).subarray(HANDSHAKE_HEADER)));
  if (typeof serverName === 'object') return serverName;
  return { kind: 'complete', serverName, length: offset };
}

/** The host_name of a ClientHello body, undefined when it has none. */
function readServerName(hello: Reader): string | undefined | Invalid {
  const legacyVersion = hello.uint16();
  if (legacyVersion === undefined || legacyVersion >> 8 !== 3) return invalid('bad ClientHello legacy_version');
  if (hello.bytes(32) === undefined) return invalid('truncated ClientHello random');
  const sessionId = hello.vector(1);
  if (sessionId === undefined || sessionId.length > 32) return invalid('bad ClientHello session id');
  const suites = hello.vector(2);
  if (suites === undefined || suites.length < 2 || suites.length % 2 !== 0) return invalid('bad ClientHello cipher suites');
  const compression = hello.vector(1);
  if (compression === undefined || compression.length < 1) return invalid('bad ClientHello compression methods');
  if (hello.remaining === 0) return undefined; // no extensions block at all: an old client, without SNI
  const extensions = hello.vector(2);
  if (extensions === undefined || hello.remaining !== 0) return invalid('the extensions length does not match the ClientHello');
  let serverName: string | undefined | Invalid;
  let seen = false;
  const list = new Reader(extensions);
  while (list.remaining > 0) {
    const type = list.uint16();
    const body = list.vector(2);
    if (type === undefined || body === undefined) return invalid('an extension runs past the extensions block');
    if (type !== EXTENSION_SERVER_NAME) continue; // GREASE and everything else we do not route on
    // Two would let us route on one name while the upstream answers for the other.
    if (seen) return invalid('two server_name extensions');
    seen = true;
    serverName = readHostName(new Reader(body));
    if (typeof serverName === 'object') return serverName;
  }
  return serverName;
}

/** The host_name entry of a server_name extension's body, undefined when the list has none. */
function readHostName(extension: Reader): string | undefined | Invalid {
  const entries = extension.vector(2);
  if (entries === undefined || entries.length === 0 || extension.remaining !== 0) return invalid('bad server_name list length');
  const list = new Reader(entries);
  let hostName: string | undefined;
  while (list.remaining > 0) {
    const type = list.uint8();
    const name = list.vector(2);
    if (type === undefined || name === undefined) return invalid('a server_name entry runs past its list');
    if (type !== NAME_TYPE_HOST_NAME) continue;
    if (hostName !== undefined) return invalid('two host_name entries in server_name'); // RFC 6066: one per type
    if (name.length === 0 || name.length > MAX_HOST_NAME || !name.every(isHostNameByte)) return invalid('the SNI host_name is not a plausible host name');
    hostName = String.fromCharCode(...name).toLowerCase();
  }
  return hostName;
}

/** Letters, digits, '-', '.', '_': what a dev host name is made of (no IDN, no spaces, no NUL tricks). */
function isHostNameByte(byte: number): boolean {
  return (byte >= 0x61 && byte <= 0x7a) || (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x30 && byte <= 0x39) || byte === 0x2d || byte === 0x2e || byte === 0x5f;
}

/** A cursor over bytes whose reads answer undefined instead of running past the end. */
class Reader {
  private offset = 0;

  constructor(private readonly data: Uint8Array) {}

  get remaining(): number {
    return this.data.length - this.offset;
  }

  bytes(count: number): Uint8Array | undefined {
    if (count > this.remaining) return undefined;
    this.offset += count;
    return this.data.subarray(this.offset - count, this.offset);
  }

  uint8(): number | undefined {
    return this.bytes(1)?.[0];
  }

  uint16(): number | undefined {
    const pair = this.bytes(2);
    return pair === undefined ? undefined : (pair[0]! << 8) | pair[1]!;
  }

  /** A TLS vector: a big-endian length of `lengthBytes` bytes, then that many bytes. */
  vector(lengthBytes: 1 | 2): Uint8Array | undefined {
    const length = lengthBytes === 1 ? this.uint8() : this.uint16();
    return length === undefined ? undefined : this.bytes(length);
  }
}

/** The first `length` bytes of `pieces` as one array; no copy in the usual case of one record. */
function join(pieces: Uint8Array[], length: number): Uint8Array {
  if (pieces[0]!.length >= length) return pieces[0]!.subarray(0, length);
  const out = new Uint8Array(length);
  let at = 0;
  for (const piece of pieces) {
    const take = Math.min(piece.length, length - at);
    out.set(piece.subarray(0, take), at);
    at += take;
  }
  return out;
}

function invalid(reason: string): Invalid {
  return { kind: 'invalid', reason };
}

function tooLarge(max: number): Invalid {
  return invalid(`the ClientHello is larger than ${max} bytes`);
}
