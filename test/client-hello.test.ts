// ClientHello parsing against real hellos from node:tls (captured by a plain TCP server that never
// answers), re-framed, mutated and built by hand from their parts.

import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { CLIENT_HELLO_MAX, isTlsHandshakeStart, parseClientHello, type ClientHelloResult } from '../lib/client-hello.js';
import { captureClientHello } from './helpers.js';

const ALPN = ['h2', 'http/1.1'];
/** 253 characters, the longest a DNS name can be; mixed case so lower-casing shows. */
const LONG_NAME = ['A'.repeat(63), 'b'.repeat(63), 'C'.repeat(63), 'd'.repeat(51), 'localhost'].join('.');

const hellos: Record<'tls13' | 'tls12' | 'both' | 'noSni' | 'longName' | 'tooLongName', Buffer> = {} as never;

before(async () => {
  hellos.tls13 = await captureClientHello({ servername: 'app.localhost', ALPNProtocols: ALPN, minVersion: 'TLSv1.3' });
  hellos.tls12 = await captureClientHello({ servername: 'app.localhost', ALPNProtocols: ALPN, maxVersion: 'TLSv1.2' });
  hellos.both = await captureClientHello({ servername: 'app.localhost', ALPNProtocols: ALPN });
  hellos.noSni = await captureClientHello({ servername: '', ALPNProtocols: ALPN });
  hellos.longName = await captureClientHello({ servername: LONG_NAME, ALPNProtocols: ALPN });
  hellos.tooLongName = await captureClientHello({ servername: `x${LONG_NAME}` });
}, { timeout: 20_000 });

describe('isTlsHandshakeStart', () => {
  test('is true for a handshake record and false for the first byte of an HTTP request', () => {
    assert.equal(isTlsHandshakeStart(0x16), true);
    assert.equal(isTlsHandshakeStart(Buffer.from('GET / HTTP/1.1\r\n')[0]!), false);
    assert.equal(isTlsHandshakeStart(0x80), false); // an SSLv2-style hello
    assert.equal(parseClientHello(Buffer.from('GET / HTTP/1.1\r\nHost: app.localhost\r\n\r\n')).kind, 'invalid');
  });
});

describe('parseClientHello on real ClientHellos', () => {
  test('gives the SNI name and the length of the record, for TLS 1.2, 1.3 and both', () => {
    for (const hello of [hellos.tls13, hellos.tls12, hellos.both]) {
      assert.deepEqual(parseClientHello(hello), { kind: 'complete', serverName: 'app.localhost', length: hello.length });
    }
    assert.equal(hellos.tls12[9], 3); // legacy_version 3.3 …
    assert.ok(decodeHello(hellos.tls13).extensions!.some((e) => e.type === 43)); // … and supported_versions for 1.3
  });

  test('a hello without SNI completes with no server name', () => {
    assert.deepEqual(parseClientHello(hellos.noSni), { kind: 'complete', serverName: undefined, length: hellos.noSni.length });
    assert.ok(!decodeHello(hellos.noSni).extensions!.some((e) => e.type === 0));
  });

  test('a 253-character name is read whole and lower-cased; one more character is refused', () => {
    assert.equal(LONG_NAME.length, 253);
    assert.deepEqual(parseClientHello(hellos.longName), { kind: 'complete', serverName: LONG_NAME.toLowerCase(), length: hellos.longName.length });
    const result = parseClientHello(hellos.tooLongName);
    assert.equal(result.kind, 'invalid');
    assert.match((result as { reason: string }).reason, /host name/);
  });

  test('every prefix is incomplete until the whole record is there', () => {
    for (const hello of Object.values(hellos)) {
      for (let end = 0; end < hello.length; end++) assert.deepEqual(parseClientHello(hello.subarray(0, end)), { kind: 'incomplete' }, `prefix of ${end}`);
      assert.equal(parseClientHello(hello).kind, hello === hellos.tooLongName ? 'invalid' : 'complete');
    }
  });

  test('bytes after the ClientHello do not change its length', () => {
    const hello = hellos.tls13;
    const expected = { kind: 'complete', serverName: 'app.localhost', length: hello.length };
    const after = [
      record(Buffer.from('early data'), 23), // application_data
      record(Buffer.from([2, 40]), 21), // an alert
      hellos.tls12, // a second hello is not read
      Buffer.from('GET / HTTP/1.1\r\n\r\n'),
      Buffer.from([0x16]),
    ];
    for (const extra of after) assert.deepEqual(parseClientHello(Buffer.concat([hello, extra])), expected);
  });

  test('a view into a larger buffer is read at its own offset', () => {
    const padded = Buffer.concat([Buffer.from('junk before'), hellos.tls13, Buffer.from('junk after')]);
    const view = new Uint8Array(padded.buffer, padded.byteOffset + 11, hellos.tls13.length);
    assert.deepEqual(parseClientHello(view), { kind: 'complete', serverName: 'app.localhost', length: hellos.tls13.length });
  });

  test('the test helpers decode and re-encode a real hello byte for byte', () => {
    for (const hello of Object.values(hellos)) assert.deepEqual(frame(encodeHello(decodeHello(hello))), hello);
  });
});

describe('a ClientHello fragmented over several records', () => {
  test('parses the same when split into 2 or 3 records, including inside the handshake header', () => {
    const message = encodeHello(decodeHello(hellos.tls13));
    for (const sizes of [[1], [3], [4], [100], [1, 2], [2, 150], [50, 50], [message.length - 1]]) {
      const framed = frame(message, sizes);
      assert.equal(framed.length, message.length + 5 * (sizes.length + 1));
      assert.deepEqual(parseClientHello(framed), { kind: 'complete', serverName: 'app.localhost', length: framed.length }, `fragments ${sizes}`);
      for (let end = 0; end < framed.length; end++) assert.equal(parseClientHello(framed.subarray(0, end)).kind, 'incomplete', `fragments ${sizes}, prefix ${end}`);
    }
  });

  test('parses the same with one byte per record', () => {
    const message = encodeHello(decodeHello(hellos.longName));
    const framed = frame(message, new Array<number>(message.length - 1).fill(1));
    assert.deepEqual(parseClientHello(framed), { kind: 'complete', serverName: LONG_NAME.toLowerCase(), length: framed.length });
    assert.equal(parseClientHello(framed.subarray(0, framed.length - 1)).kind, 'incomplete');
  });

  test('parses the same under random framings', () => {
    const random = mulberry32(7);
    const message = encodeHello(decodeHello(hellos.both));
    for (let i = 0; i < 300; i++) {
      const sizes: number[] = [];
      let left = message.length;
      while (left > 1 && random() < 0.7) {
        const size = 1 + Math.floor(random() * Math.min(left - 1, 200));
        sizes.push(size);
        left -= size;
      }
      const framed = frame(message, sizes);
      assert.deepEqual(parseClientHello(framed), { kind: 'complete', serverName: 'app.localhost', length: framed.length });
    }
  });

  test('bytes after the ClientHello in its last record belong to that record', () => {
    const message = Buffer.concat([encodeHello(decodeHello(hellos.tls13)), Buffer.from([20, 0, 0, 0])]);
    const framed = frame(message, [10]);
    assert.deepEqual(parseClientHello(framed), { kind: 'complete', serverName: 'app.localhost', length: framed.length });
  });

  test('a record of another type between the fragments is refused', () => {
    const message = encodeHello(decodeHello(hellos.tls13));
    const interleaved = Buffer.concat([record(message.subarray(0, 10)), record(Buffer.from([1]), 20), record(message.subarray(10))]);
    assert.equal(parseClientHello(interleaved).kind, 'invalid');
  });
});

describe('extensions and server_name', () => {
  test('GREASE and other extensions before server_name are skipped', () => {
    const hello = decodeHello(hellos.tls13);
    const extensions = hello.extensions!;
    const sni = extensions.findIndex((e) => e.type === 0);
    const alpn = extensions.findIndex((e) => e.type === 16);
    assert.ok(sni >= 0 && alpn >= 0);
    const reordered = [
      { type: 0x0a0a, data: Buffer.alloc(0) },
      { type: 0x1a1a, data: Buffer.from([0]) },
      extensions[alpn]!,
      // An unknown extension whose body looks like a server_name body is not read as one.
      { type: 0xfafa, data: serverNameData([0, 'evil.localhost']) },
      ...extensions.filter((_, i) => i !== alpn),
      { type: 0x2a2a, data: Buffer.alloc(0) },
    ];
    const framed = frame(encodeHello({ ...hello, extensions: reordered }));
    assert.deepEqual(parseClientHello(framed), { kind: 'complete', serverName: 'app.localhost', length: framed.length });
  });

  test('an old client without an extensions block, or with an empty one, has no server name', () => {
    const hello = decodeHello(hellos.tls12);
    for (const extensions of [undefined, []]) {
      const framed = frame(encodeHello({ ...hello, extensions }));
      assert.deepEqual(parseClientHello(framed), { kind: 'complete', serverName: undefined, length: framed.length });
    }
  });

  test('the name is lower-cased; other name types are skipped', () => {
    assert.equal(serverNameOf(serverNameData([0, 'App.LocalHost'])), 'app.localhost');
    assert.equal(serverNameOf(serverNameData([0, 'my_app-2.localhost'])), 'my_app-2.localhost');
    assert.equal(serverNameOf(serverNameData([1, 'ignored'], [0, 'app.localhost'])), 'app.localhost');
    assert.equal(serverNameOf(serverNameData([7, 'only another type'])), undefined);
  });

  test('names that are not plausible host names are refused', () => {
    const bad = ['', 'a b.localhost', 'app.localhost\0.evil', 'app:80', 'app/x', 'caf\u00e9.localhost', 'x'.repeat(254)];
    for (const name of bad) assert.equal(resultFor(serverNameData([0, name])).kind, 'invalid', JSON.stringify(name));
    assert.equal(serverNameOf(serverNameData([0, 'x'.repeat(253)])), 'x'.repeat(253));
  });

  test('two names, or two server_name extensions, are refused: the upstream might pick the other one', () => {
    assert.equal(resultFor(serverNameData([0, 'a.localhost'], [0, 'b.localhost'])).kind, 'invalid');
    const hello = decodeHello(hellos.tls13);
    const twice = [...hello.extensions!, { type: 0, data: serverNameData([0, 'evil.localhost']) }];
    assert.equal(parseClientHello(frame(encodeHello({ ...hello, extensions: twice }))).kind, 'invalid');
  });

  test('lying lengths inside server_name are refused', () => {
    const name = Buffer.from('app.localhost');
    const cases = {
      'empty extension': Buffer.alloc(0),
      'empty list': Buffer.from([0, 0]),
      'list longer than the extension': Buffer.concat([u16(name.length + 4), Buffer.from([0]), u16(name.length), name]),
      'bytes after the list': Buffer.concat([u16(name.length + 3), Buffer.from([0]), u16(name.length), name, Buffer.from([0])]),
      'name longer than the list': Buffer.concat([u16(name.length + 3), Buffer.from([0]), u16(name.length + 1), name]),
      'entry cut after its type': Buffer.concat([u16(1), Buffer.from([0])]),
    };
    for (const [what, data] of Object.entries(cases)) assert.equal(resultFor(data).kind, 'invalid', what);
  });

  test('lying lengths in the extensions block are refused', () => {
    const hello = decodeHello(hellos.tls13);
    const block = encodeExtensions(hello.extensions!);
    const lies = {
      'block claims one byte more': Buffer.concat([u16(block.length + 1), block]),
      'block claims one byte less': Buffer.concat([u16(block.length - 1), block]),
      'an extension runs past the block': Buffer.concat([u16(block.length + 4), block, u16(0x0a0a), u16(1)]),
      'a lone byte after the last extension': Buffer.concat([u16(block.length + 1), block, Buffer.from([0])]),
      'bytes after the block': Buffer.concat([u16(block.length), block, u16(0x0a0a), u16(0)]),
    };
    for (const [what, extensions] of Object.entries(lies)) {
      const message = handshake(Buffer.concat([encodeHello({ ...hello, extensions: undefined }).subarray(4), extensions]));
      assert.equal(parseClientHello(frame(message)).kind, 'invalid', what);
    }
  });
});

describe('malformed and hostile input', () => {
  test('lying lengths before the extensions are refused', () => {
    const hello = decodeHello(hellos.tls13);
    const lies: Partial<Hello>[] = [
      { legacyVersion: 0x0200 },
      { sessionId: Buffer.alloc(33) },
      { cipherSuites: Buffer.alloc(0) },
      { cipherSuites: Buffer.alloc(3) },
      { compression: Buffer.alloc(0) },
    ];
    for (const lie of lies) assert.equal(parseClientHello(frame(encodeHello({ ...hello, ...lie }))).kind, 'invalid', JSON.stringify(lie));
  });

  test('a hello truncated anywhere, with outer lengths that agree with the truncation, is refused', () => {
    const hello = decodeHello(hellos.tls13);
    const body = encodeHello(hello).subarray(4);
    // Cut right after compression_methods, it is a valid hello from a client without extensions.
    const withoutExtensions = 2 + 32 + 1 + hello.sessionId.length + 2 + hello.cipherSuites.length + 1 + hello.compression.length;
    for (let cut = 0; cut < body.length; cut++) {
      const result = parseClientHello(frame(handshake(body.subarray(0, cut))));
      if (cut === withoutExtensions) assert.deepEqual(result, { kind: 'complete', serverName: undefined, length: cut + 9 });
      else assert.equal(result.kind, 'invalid', `cut at ${cut}`);
    }
  });

  test('a hello truncated anywhere whose handshake length claims the rest waits for more', () => {
    const message = encodeHello(decodeHello(hellos.tls13));
    for (let cut = 1; cut < message.length; cut++) assert.deepEqual(parseClientHello(record(message.subarray(0, cut))), { kind: 'incomplete' }, `cut at ${cut}`);
  });

  test('records and handshake messages that are not a ClientHello are refused as soon as they show', () => {
    const message = encodeHello(decodeHello(hellos.tls13));
    const cases = {
      'empty input': [Buffer.alloc(0), 'incomplete'],
      'one handshake byte': [Buffer.from([22]), 'incomplete'],
      'application data first': [Buffer.from([23]), 'invalid'],
      'an alert first': [record(Buffer.from([2, 40]), 21), 'invalid'],
      'ChangeCipherSpec before the hello': [Buffer.concat([record(Buffer.from([1]), 20), frame(message)]), 'invalid'],
      'record version major 2': [Buffer.from([22, 2]), 'invalid'],
      'record length 0': [Buffer.from([22, 3, 1, 0, 0]), 'invalid'],
      'record length 2^14 + 1': [Buffer.from([22, 3, 1, 0x40, 1]), 'invalid'],
      'a ServerHello': [Buffer.from([22, 3, 3, 0, 80, 2]), 'invalid'],
      'a ClientHello header so far': [Buffer.from([22, 3, 1, 0, 80, 1, 0]), 'incomplete'],
      'handshake length 0': [record(Buffer.from([1, 0, 0, 0])), 'invalid'],
    } satisfies Record<string, [Buffer, ClientHelloResult['kind']]>;
    for (const [what, [input, kind]] of Object.entries(cases)) assert.equal(parseClientHello(input).kind, kind, what);
  });

  test('a hello larger than max is refused, as early as its lengths show it', () => {
    const hello = hellos.tls13;
    assert.equal(parseClientHello(hello, hello.length).kind, 'complete');
    assert.deepEqual(parseClientHello(hello, hello.length - 1), { kind: 'invalid', reason: `the ClientHello is larger than ${hello.length - 1} bytes` });
    // Padded past 16 KiB, so it takes two records.
    const decoded = decodeHello(hello);
    const bigMessage = encodeHello({ ...decoded, extensions: [...decoded.extensions!, { type: 21, data: Buffer.alloc(20_000) }] });
    const big = frame(bigMessage);
    assert.ok(big.length > CLIENT_HELLO_MAX);
    assert.deepEqual(parseClientHello(big), { kind: 'invalid', reason: `the ClientHello is larger than ${CLIENT_HELLO_MAX} bytes` });
    assert.equal(parseClientHello(big.subarray(0, 9)).kind, 'invalid'); // the first record is too large already
    const smallRecords = frame(bigMessage, [10, 10]).subarray(0, 30); // two whole records of 10 bytes
    assert.equal(parseClientHello(smallRecords).kind, 'invalid'); // the handshake length alone tells
    assert.equal(parseClientHello(smallRecords, 1 << 16).kind, 'incomplete');
    assert.deepEqual(parseClientHello(big, 1 << 16), { kind: 'complete', serverName: 'app.localhost', length: big.length });
    // Record headers count too: one byte per record is six times the size.
    const message = encodeHello(decoded);
    const bytewise = frame(message, new Array<number>(message.length - 1).fill(1));
    assert.ok(bytewise.length > 2 * message.length);
    assert.equal(parseClientHello(bytewise, 2 * message.length).kind, 'invalid');
  });

  test('every single-byte change to a real hello gives a result, never a throw', () => {
    for (const hello of Object.values(hellos)) {
      for (let at = 0; at < hello.length; at++) {
        for (const value of [0x00, 0xff, hello[at]! ^ 0x01]) {
          const mutated = Buffer.from(hello);
          mutated[at] = value;
          assertWellFormed(parseClientHello(mutated), mutated);
        }
      }
    }
  });

  test('random mutations of real hellos and random bytes give a result, never a throw', () => {
    const random = mulberry32(20_260_125);
    const real = Object.values(hellos);
    for (let i = 0; i < 4000; i++) {
      const mutated = Buffer.from(real[i % real.length]!);
      for (let flips = 1 + Math.floor(random() * 4); flips > 0; flips--) mutated[Math.floor(random() * mutated.length)] ^= 1 + Math.floor(random() * 255);
      const input = random() < 0.2 ? mutated.subarray(0, Math.floor(random() * mutated.length)) : mutated;
      assertWellFormed(parseClientHello(input), input);
    }
    for (let i = 0; i < 4000; i++) {
      const bytes = Buffer.alloc(Math.floor(random() * 600));
      for (let at = 0; at < bytes.length; at++) bytes[at] = Math.floor(random() * 256);
      // Most random bytes fail at the first byte; give half of them a plausible record header.
      if (i % 2 === 0 && bytes.length >= 6) bytes.set([22, 3, 1, (bytes.length - 5) >> 8, (bytes.length - 5) & 0xff, 1]);
      assertWellFormed(parseClientHello(bytes), bytes);
      assertWellFormed(parseClientHello(bytes, Math.floor(random() * 1000)), bytes);
    }
  });
});

/** The checks every result must pass, whatever the input. */
function assertWellFormed(result: ClientHelloResult, input: Uint8Array): void {
  switch (result.kind) {
    case 'incomplete':
      return;
    case 'invalid':
      assert.equal(typeof result.reason, 'string');
      assert.ok(result.reason.length > 0);
      return;
    case 'complete':
      assert.ok(result.length > 0 && result.length <= input.length);
      if (result.serverName !== undefined) assert.match(result.serverName, /^[a-z0-9_.-]{1,253}$/);
      // The result depends only on the records it spans.
      assert.deepEqual(parseClientHello(input.subarray(0, result.length)), result);
      return;
    default:
      assert.fail(`not a ClientHelloResult: ${JSON.stringify(result)}`);
  }
}


interface Extension {
  type: number;
  data: Buffer;
}

/** A ClientHello's fields; `extensions` undefined means no extensions block at all. */
interface Hello {
  legacyVersion: number;
  random: Buffer;
  sessionId: Buffer;
  cipherSuites: Buffer;
  compression: Buffer;
  extensions: Extension[] | Buffer | undefined;
}

/** Splits a single-record ClientHello (trusted input: a capture) into its fields. */
function decodeHello(framed: Buffer): Hello & { extensions: Extension[] | undefined } {
  let at = 5 + 4;
  const take = (length: number) => framed.subarray(at, (at += length));
  const legacyVersion = framed.readUInt16BE(at);
  at += 2;
  const random = take(32);
  const sessionId = take(framed[at++]!);
  const cipherSuites = take(framed.readUInt16BE((at += 2) - 2));
  const compression = take(framed[at++]!);
  if (at === framed.length) return { legacyVersion, random, sessionId, cipherSuites, compression, extensions: undefined };
  const end = at + 2 + framed.readUInt16BE(at);
  at += 2;
  const extensions: Extension[] = [];
  while (at < end) {
    const type = framed.readUInt16BE(at);
    const length = framed.readUInt16BE(at + 2);
    at += 4;
    extensions.push({ type, data: take(length) });
  }
  assert.equal(at, framed.length);
  return { legacyVersion, random, sessionId, cipherSuites, compression, extensions };
}

/** The handshake message (type, 24-bit length, body) for a ClientHello's fields. */
function encodeHello(hello: Hello): Buffer {
  const parts = [u16(hello.legacyVersion), hello.random, vector8(hello.sessionId), vector16(hello.cipherSuites), vector8(hello.compression)];
  if (hello.extensions !== undefined) {
    parts.push(vector16(Buffer.isBuffer(hello.extensions) ? hello.extensions : encodeExtensions(hello.extensions)));
  }
  return handshake(Buffer.concat(parts));
}

function encodeExtensions(extensions: Extension[]): Buffer {
  return Buffer.concat(extensions.map((e) => Buffer.concat([u16(e.type), vector16(e.data)])));
}

/** A client_hello handshake message around `body`. */
function handshake(body: Buffer): Buffer {
  return Buffer.concat([Buffer.from([1, body.length >> 16, (body.length >> 8) & 0xff, body.length & 0xff]), body]);
}

/** The body of a server_name extension with these (name_type, name) entries. */
function serverNameData(...entries: [number, string][]): Buffer {
  return vector16(Buffer.concat(entries.map(([type, name]) => Buffer.concat([Buffer.from([type]), vector16(Buffer.from(name, 'latin1'))]))));
}

/** The parse of the TLS 1.3 capture with its server_name body replaced. */
function resultFor(serverName: Buffer): ClientHelloResult {
  const hello = decodeHello(hellos.tls13);
  const extensions = hello.extensions!.map((e) => (e.type === 0 ? { type: 0, data: serverName } : e));
  return parseClientHello(frame(encodeHello({ ...hello, extensions })));
}

function serverNameOf(serverName: Buffer): string | undefined {
  const result = resultFor(serverName);
  assert.equal(result.kind, 'complete', JSON.stringify(result));
  return (result as { serverName: string | undefined }).serverName;
}

/** A handshake message as records: fragments of `sizes` bytes first, the rest in records of at most 2^14. */
function frame(message: Buffer, sizes: number[] = []): Buffer {
  const records: Buffer[] = [];
  let at = 0;
  for (const size of sizes) records.push(record(message.subarray(at, (at += size))));
  while (at < message.length) records.push(record(message.subarray(at, (at += 1 << 14))));
  return Buffer.concat(records);
}

/** One TLS record; version 3.1, as clients send for their first record. */
function record(fragment: Buffer, type = 22): Buffer {
  return Buffer.concat([Buffer.from([type, 3, 1]), u16(fragment.length), fragment]);
}

function u16(value: number): Buffer {
  return Buffer.from([value >> 8, value & 0xff]);
}

function vector8(bytes: Buffer): Buffer {
  return Buffer.concat([Buffer.from([bytes.length]), bytes]);
}

function vector16(bytes: Buffer): Buffer {
  return Buffer.concat([u16(bytes.length), bytes]);
}

/** A small seeded PRNG, so a failing fuzz case can be replayed. */
function mulberry32(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
