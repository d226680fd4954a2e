// HeadSniffer: the rules sniff.ts adds on top of llhttp (HTTP/1.x only, exactly one Host, target
// forms, CONNECT, the head cap, the HTTP/2 preface, TLS by SNI), then properties over random bytes,
// mutated real requests and heads around a small cap. Every sniffer is fed through `sniff()`, which
// spies on what reaches llhttp, checks that a result comes at most once, and destroys (twice) every
// sniffer that did not finish. Last, hostOfAuthority: the host a Host header or SNI name routes by.

import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import fc from 'fast-check';
import { CLIENT_HELLO_MAX } from '../lib/client-hello.js';
import { HeadError } from '../lib/errors.js';
import { HEAD_INCOMPLETE, RequestHeadParser } from '../lib/llhttp.js';
import { HeadSniffer, hostOfAuthority, type SniffResult } from '../lib/sniff.js';
import { captureClientHello } from './helpers.js';

const CAP = 16 * 1024;
const KINDS = new Set(['http', 'tls', 'http-error', 'tls-error']);
const STATUSES = new Set([400, 405, 431, 505]);
const CODES = new Set([
  'NORIKAE_ERR_HOST', 'NORIKAE_ERR_TARGET', 'NORIKAE_ERR_HTTP_VERSION', 'NORIKAE_ERR_CONNECT',
  'NORIKAE_ERR_HEAD_TOO_LARGE', 'NORIKAE_ERR_HTTP2_PRIOR_KNOWLEDGE', 'NORIKAE_ERR_MALFORMED_HEAD',
]);

// ---------------------------------------------------------------------------------------------
// Feeding

interface Sniffed {
  result: SniffResult | undefined;
  /** Bytes of the input pushed before the result (all of them when there was none). */
  pushed: number;
  /** Bytes the sniffer handed to llhttp, over all execute() calls. */
  executed: number;
}

/**
 * Pushes `chunks` into a fresh sniffer until it answers. Checks that a finished sniffer refuses more
 * input (so there is never a second result) and that destroy() is idempotent, before and after a result.
 */
function sniff(chunks: readonly Uint8Array[], maxHeadSize = CAP): Sniffed {
  const proto = RequestHeadParser.prototype;
  const execute = proto.execute;
  let executed = 0;
  proto.execute = function (this: RequestHeadParser, data: Uint8Array): number {
    executed += data.length;
    return execute.call(this, data);
  };
  try {
    const sniffer = new HeadSniffer(maxHeadSize);
    let pushed = 0;
    for (const chunk of chunks) {
      pushed += chunk.length;
      const result = sniffer.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length));
      if (result !== undefined) {
        assert.throws(() => sniffer.push(Buffer.from('GET / HTTP/1.1\r\n\r\n')), /after its result/, 'a finished sniffer takes no more input');
        sniffer.destroy();
        sniffer.destroy();
        return { result, pushed, executed };
      }
    }
    sniffer.destroy();
    sniffer.destroy();
    assert.throws(() => sniffer.push(Buffer.from('x')), /after its result/, 'a destroyed sniffer takes no more input');
    return { result: undefined, pushed, executed };
  } finally {
    proto.execute = execute;
  }
}

function sniffOne(input: string | Uint8Array, maxHeadSize = CAP): SniffResult | undefined {
  return sniff([typeof input === 'string' ? Buffer.from(input, 'latin1') : input], maxHeadSize).result;
}

/** `bytes` cut at `points` (taken modulo its length + 1, so any list of numbers is a valid split). */
function splitAt(bytes: Uint8Array, points: readonly number[]): Uint8Array[] {
  const cuts = [...new Set(points.map((p) => p % (bytes.length + 1)))].sort((a, b) => a - b);
  const chunks: Uint8Array[] = [];
  let from = 0;
  for (const cut of cuts) {
    chunks.push(bytes.subarray(from, cut));
    from = cut;
  }
  chunks.push(bytes.subarray(from));
  return chunks;
}

/** A result as plain data, so two results compare with deepEqual (HeadError's message included). */
function plain(result: SniffResult | undefined): unknown {
  if (result?.kind !== 'http-error') return result;
  const { code, status, message, name } = result.error;
  return { kind: result.kind, accept: result.accept, error: { name, code, status, message } };
}

function assertHttp(result: SniffResult | undefined, host: string, accept = ''): void {
  assert.deepEqual(result, { kind: 'http', host, accept });
}

function assertHttpError(result: SniffResult | undefined, status: number, code: string, accept?: string): HeadError {
  assert.equal(result?.kind, 'http-error', `expected an http-error, got ${JSON.stringify(plain(result))}`);
  assert.ok(result.error instanceof HeadError);
  assert.equal(result.error.status, status);
  assert.equal(result.error.code, code);
  if (accept !== undefined) assert.equal(result.accept, accept);
  return result.error;
}

/** The invariants every result holds, whatever the input. */
function assertWellFormed(result: SniffResult | undefined): void {
  if (result === undefined) return;
  assert.ok(KINDS.has(result.kind), `unknown kind ${result.kind}`);
  switch (result.kind) {
    case 'http':
      assert.equal(typeof result.host, 'string');
      assert.notEqual(result.host, '');
      assert.equal(result.host, result.host.toLowerCase(), 'the host is lower-cased');
      assert.ok(!result.host.endsWith('.'), 'the host has no trailing dot');
      assert.equal(typeof result.accept, 'string');
      break;
    case 'http-error':
      assert.ok(result.error instanceof HeadError);
      assert.ok(STATUSES.has(result.error.status), `status ${result.error.status}`);
      assert.ok(CODES.has(result.error.code), `code ${result.error.code}`);
      assert.equal(typeof result.accept, 'string');
      break;
    case 'tls':
      assert.ok(result.host === undefined || (typeof result.host === 'string' && result.host !== ''));
      break;
    case 'tls-error':
      assert.equal(typeof result.reason, 'string');
      assert.notEqual(result.reason, '');
      break;
  }
}

// ---------------------------------------------------------------------------------------------
// Real ClientHellos, from node:tls, captured by a TCP server that never answers

const hellos: Record<'app' | 'mixedCase' | 'noSni', Buffer> = { app: Buffer.alloc(0), mixedCase: Buffer.alloc(0), noSni: Buffer.alloc(0) };

before(async () => {
  hellos.app = await captureClientHello({ servername: 'app.localhost', ALPNProtocols: ['h2', 'http/1.1'] });
  hellos.mixedCase = await captureClientHello({ servername: 'Shop.Localhost', ALPNProtocols: ['http/1.1'] });
  hellos.noSni = await captureClientHello({ servername: '' });
}, { timeout: 20_000 });


// ---------------------------------------------------------------------------------------------
// Realistic request heads

const BROWSER_ACCEPT = 'text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8';

const BROWSER_GET = [
  'GET /projects/norikae/index.html?tab=overview HTTP/1.1',
  'Host: App.Localhost:8080',
  'Connection: keep-alive',
  'sec-ch-ua: "Chromium";v="128", "Not;A=Brand";v="24"',
  'Upgrade-Insecure-Requests: 1',
  'User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/128.0.0.0 Safari/537.36',
  `Accept: ${BROWSER_ACCEPT}`,
  'Sec-Fetch-Mode: navigate',
  'Accept-Encoding: gzip, deflate, br, zstd',
  'Accept-Language: en-GB,en;q=0.9,ja;q=0.7',
  'Cookie: session=4f9c2a7e1b3d5f60; theme=dark',
  '', '',
].join('\r\n');

const POST_BODY = '{"name":"norikae","count":12345}';
const POST_WITH_BODY = [
  'POST /api/items?draft=1 HTTP/1.1',
  'Host: api.localhost.',
  'Content-Type: application/json',
  `Content-Length: ${POST_BODY.length}`,
  'Accept: application/json',
  '', '',
].join('\r\n') + POST_BODY;

const WEBSOCKET_UPGRADE = [
  'GET /_hmr HTTP/1.1',
  'Host: ws.localhost:5173',
  'Connection: Upgrade',
  'Upgrade: websocket',
  'Sec-WebSocket-Version: 13',
  'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
  'Sec-WebSocket-Protocol: vite-hmr',
  '', '',
].join('\r\n') + '\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58'; // a masked "Hello" frame right behind the head

const ABSOLUTE_FORM = [
  'GET http://Abs.Localhost.:9/x?y=1 HTTP/1.1',
  'Host: other.localhost',
  'Accept: */*',
  '', '',
].join('\r\n');

const FETCH = [
  'GET /api/session HTTP/1.1',
  'Host: spa.localhost:5173',
  'Accept: application/json',
  'X-Requested-With: XMLHttpRequest',
  '', '',
].join('\r\n');

const HTTP10 = 'GET /legacy HTTP/1.0\r\nHost: old.localhost\r\nUser-Agent: curl/7.0\r\n\r\n';

interface Seed { name: string; bytes: () => Buffer; expected: () => SniffResult }

const SEEDS: Seed[] = [
  { name: 'browser GET', bytes: () => Buffer.from(BROWSER_GET, 'latin1'), expected: () => ({ kind: 'http', host: 'app.localhost', accept: BROWSER_ACCEPT }) },
  { name: 'POST with body', bytes: () => Buffer.from(POST_WITH_BODY, 'latin1'), expected: () => ({ kind: 'http', host: 'api.localhost', accept: 'application/json' }) },
  { name: 'WebSocket upgrade', bytes: () => Buffer.from(WEBSOCKET_UPGRADE, 'latin1'), expected: () => ({ kind: 'http', host: 'ws.localhost', accept: '' }) },
  { name: 'absolute-form', bytes: () => Buffer.from(ABSOLUTE_FORM, 'latin1'), expected: () => ({ kind: 'http', host: 'abs.localhost', accept: '*/*' }) },
  { name: 'fetch() from a page', bytes: () => Buffer.from(FETCH, 'latin1'), expected: () => ({ kind: 'http', host: 'spa.localhost', accept: 'application/json' }) },
  { name: 'HTTP/1.0', bytes: () => Buffer.from(HTTP10, 'latin1'), expected: () => ({ kind: 'http', host: 'old.localhost', accept: '' }) },
  { name: 'TLS ClientHello', bytes: () => hellos.app, expected: () => ({ kind: 'tls', host: 'app.localhost' }) },
];

// ---------------------------------------------------------------------------------------------
// 1. Unit cases

describe('HeadSniffer: HTTP routing', () => {
  test('a valid GET routes by its Host, lower-cased, without port or trailing dot', () => {
    assertHttp(sniffOne('GET / HTTP/1.1\r\nHost: app.localhost\r\n\r\n'), 'app.localhost');
    assertHttp(sniffOne('GET / HTTP/1.1\r\nHost: App.LocalHost\r\n\r\n'), 'app.localhost');
    assertHttp(sniffOne('GET / HTTP/1.1\r\nHost: app.localhost:8080\r\n\r\n'), 'app.localhost');
    assertHttp(sniffOne('GET / HTTP/1.1\r\nHost: APP.localhost.:8080\r\n\r\n'), 'app.localhost');
    assertHttp(sniffOne('GET / HTTP/1.1\r\nhost:   app.localhost.  \r\n\r\n'), 'app.localhost');
    assertHttp(sniffOne('GET / HTTP/1.1\r\nHost: [::1]:3000\r\n\r\n'), '::1');
  });

  test('the realistic heads route, whole, split at every byte, and byte by byte', () => {
    for (const seed of SEEDS.filter((seed) => seed.name !== 'TLS ClientHello')) {
      const bytes = seed.bytes();
      assert.deepEqual(sniffOne(bytes), seed.expected(), seed.name);
      for (let at = 0; at <= bytes.length; at++) assert.deepEqual(sniff([bytes.subarray(0, at), bytes.subarray(at)]).result, seed.expected(), `${seed.name} split at ${at}`);
      assert.deepEqual(sniff([...bytes].map((b) => Uint8Array.of(b))).result, seed.expected(), `${seed.name} byte by byte`);
    }
  });

  test('absolute-form routes by its authority, whatever the Host says', () => {
    assertHttp(sniffOne('GET http://App.Localhost:9/x HTTP/1.1\r\nHost: other.localhost\r\n\r\n'), 'app.localhost');
    assertHttp(sniffOne('GET https://app.localhost./ HTTP/1.1\r\nHost: other.localhost\r\n\r\n'), 'app.localhost');
    assertHttp(sniffOne('GET ws://hmr.localhost:24678 HTTP/1.1\r\nHost: other.localhost\r\n\r\n'), 'hmr.localhost');
    // HTTP/1.0 may leave Host out when the target carries the authority.
    assertHttp(sniffOne('GET http://app.localhost/ HTTP/1.0\r\n\r\n'), 'app.localhost');
  });

  test('a target that is neither a path nor an http URL, or carries user info, is 400 NORIKAE_ERR_TARGET', () => {
    assertHttpError(sniffOne('GET * HTTP/1.1\r\nHost: app.localhost\r\n\r\n'), 400, 'NORIKAE_ERR_TARGET');
    assertHttpError(sniffOne('GET ftp://app.localhost/ HTTP/1.1\r\nHost: app.localhost\r\n\r\n'), 400, 'NORIKAE_ERR_TARGET');
    assertHttpError(sniffOne('GET http://user:pw@app.localhost/ HTTP/1.1\r\nHost: app.localhost\r\n\r\n'), 400, 'NORIKAE_ERR_TARGET');
  });

  test('OPTIONS * routes by Host', () => {
    assertHttp(sniffOne('OPTIONS * HTTP/1.1\r\nHost: App.Localhost:80\r\n\r\n'), 'app.localhost');
    assertHttpError(sniffOne('OPTIONS * HTTP/1.1\r\n\r\n'), 400, 'NORIKAE_ERR_HOST');
  });

  test('HTTP/1.0 without Host is 400 NORIKAE_ERR_HOST; with Host it routes', () => {
    assertHttpError(sniffOne('GET / HTTP/1.0\r\n\r\n'), 400, 'NORIKAE_ERR_HOST');
    assertHttp(sniffOne('GET / HTTP/1.0\r\nHost: app.localhost\r\n\r\n'), 'app.localhost');
  });

  test('HTTP/1.1 without Host, with two, or with an invalid one is 400 NORIKAE_ERR_HOST', () => {
    assertHttpError(sniffOne('GET / HTTP/1.1\r\n\r\n'), 400, 'NORIKAE_ERR_HOST');
    assertHttpError(sniffOne('GET / HTTP/1.1\r\nHost: a.localhost\r\nHost: b.localhost\r\n\r\n'), 400, 'NORIKAE_ERR_HOST');
    assertHttpError(sniffOne('GET / HTTP/1.1\r\nHost: a.localhost\r\nhost: a.localhost\r\n\r\n'), 400, 'NORIKAE_ERR_HOST');
    assertHttpError(sniffOne('GET / HTTP/1.1\r\nHost:\r\n\r\n'), 400, 'NORIKAE_ERR_HOST');
    assertHttpError(sniffOne('GET / HTTP/1.1\r\nHost: a b\r\n\r\n'), 400, 'NORIKAE_ERR_HOST');
    assertHttpError(sniffOne('GET / HTTP/1.1\r\nHost: app.localhost:http\r\n\r\n'), 400, 'NORIKAE_ERR_HOST');
    // Headers whose names merely start like Host are not Host.
    assertHttpError(sniffOne('GET / HTTP/1.1\r\nHostname: app.localhost\r\nX-Host: app.localhost\r\n\r\n'), 400, 'NORIKAE_ERR_HOST');
  });

  test('HTTP/2.0 in a request line is 505 NORIKAE_ERR_HTTP_VERSION', () => {
    const error = assertHttpError(sniffOne('GET / HTTP/2.0\r\nHost: app.localhost\r\n\r\n'), 505, 'NORIKAE_ERR_HTTP_VERSION');
    assert.match(error.message, /HTTP\/2\.0/);
  });

  test('HTTP/0.9 (no version) is 505 NORIKAE_ERR_HTTP_VERSION once llhttp sees an empty line', () => {
    assertHttpError(sniffOne('GET /\r\n\r\n'), 505, 'NORIKAE_ERR_HTTP_VERSION');
    assertHttpError(sniffOne('GET /\r\nHost: app.localhost\r\n\r\n'), 505, 'NORIKAE_ERR_HTTP_VERSION');
    // What the code does with a bare 0.9 request line: llhttp goes on to read headers, so the
    // sniffer waits for more (the connection's timeout answers it).
    assert.equal(sniffOne('GET /\r\n'), undefined);
  });

  test('other versions are malformed: 400 NORIKAE_ERR_MALFORMED_HEAD', () => {
    assertHttpError(sniffOne('GET / HTTP/1.2\r\nHost: app.localhost\r\n\r\n'), 400, 'NORIKAE_ERR_MALFORMED_HEAD');
    assertHttpError(sniffOne('GET / HTTP/3.0\r\nHost: app.localhost\r\n\r\n'), 400, 'NORIKAE_ERR_MALFORMED_HEAD');
    // A response is not a request.
    assertHttpError(sniffOne('HTTP/1.1 200 OK\r\n\r\n'), 400, 'NORIKAE_ERR_MALFORMED_HEAD');
    // Bare LF line ends are refused (llhttp is strict).
    assertHttpError(sniffOne('GET / HTTP/1.1\nHost: app.localhost\n\n'), 400, 'NORIKAE_ERR_MALFORMED_HEAD');
  });

  test('CONNECT is 405 NORIKAE_ERR_CONNECT', () => {
    assertHttpError(sniffOne('CONNECT app.localhost:443 HTTP/1.1\r\nHost: app.localhost:443\r\n\r\n'), 405, 'NORIKAE_ERR_CONNECT');
    assertHttpError(sniffOne('CONNECT app.localhost:443 HTTP/1.0\r\n\r\n'), 405, 'NORIKAE_ERR_CONNECT');
  });

  test('the HTTP/2 prior-knowledge preface is 400 NORIKAE_ERR_HTTP2_PRIOR_KNOWLEDGE, at every split', () => {
    const preface = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
    assertHttpError(sniffOne(preface), 400, 'NORIKAE_ERR_HTTP2_PRIOR_KNOWLEDGE');
    // A SETTINGS frame right behind it, as a real client sends.
    assertHttpError(sniffOne(Buffer.concat([preface, Buffer.from('000000040000000000', 'hex')])), 400, 'NORIKAE_ERR_HTTP2_PRIOR_KNOWLEDGE');
    for (let at = 0; at <= preface.length; at++) {
      assertHttpError(sniff([preface.subarray(0, at), preface.subarray(at)]).result, 400, 'NORIKAE_ERR_HTTP2_PRIOR_KNOWLEDGE');
    }
    assertHttpError(sniff([...preface].map((b) => Uint8Array.of(b))).result, 400, 'NORIKAE_ERR_HTTP2_PRIOR_KNOWLEDGE');
    // Until the whole preface is in, there is no answer.
    for (let end = 0; end < preface.length; end++) assert.equal(sniffOne(preface.subarray(0, end)), undefined, `prefix of ${end}`);
  });

  test('accept is carried on http and on http-error results', () => {
    assertHttp(sniffOne('GET / HTTP/1.1\r\nHost: a.localhost\r\nAccept: text/html\r\n\r\n'), 'a.localhost', 'text/html');
    assertHttp(sniffOne('GET / HTTP/1.1\r\nAccept: text/html\r\nAccept: application/json\r\nHost: a.localhost\r\n\r\n'), 'a.localhost', 'text/html, application/json');
    assertHttpError(sniffOne('GET / HTTP/1.1\r\nAccept: text/html\r\n\r\n'), 400, 'NORIKAE_ERR_HOST', 'text/html');
    assertHttpError(sniffOne('GET / HTTP/2.0\r\nAccept: application/json\r\nHost: a\r\n\r\n'), 505, 'NORIKAE_ERR_HTTP_VERSION', 'application/json');
    assertHttpError(sniffOne('CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\nACCEPT:  text/plain \r\n\r\n'), 405, 'NORIKAE_ERR_CONNECT', 'text/plain');
    assertHttpError(sniffOne(`GET / HTTP/1.1\r\nAccept: text/html\r\nX-Pad: ${'a'.repeat(300)}`, 256), 431, 'NORIKAE_ERR_HEAD_TOO_LARGE', 'text/html');
    assertHttpError(sniffOne('GET / HTTP/1.1\r\nAccept: text/html\r\nHost: a\r\nX: a\x00b\r\n\r\n'), 400, 'NORIKAE_ERR_MALFORMED_HEAD', 'text/html');
  });

  test('the Accept of a malformed head does not depend on where the reads were split', () => {
    // The header after Accept is malformed in its name. Whether Accept is filed must not depend on
    // whether the broken name arrived in the same read as the Accept line.
    const head = Buffer.from('GET / HTTP/1.1\r\nAccept: text/html\r\nBad Header: x\r\nHost: a.localhost\r\n\r\n', 'latin1');
    const whole = sniffOne(head);
    assertHttpError(whole, 400, 'NORIKAE_ERR_MALFORMED_HEAD');
    const at = head.indexOf('Bad') + 2;
    const split = sniff([head.subarray(0, at), head.subarray(at)]).result;
    assertHttpError(split, 400, 'NORIKAE_ERR_MALFORMED_HEAD');
    assert.deepEqual(plain(split), plain(whole));
  });
});

describe('HeadSniffer: the head cap', () => {
  /** A valid head of exactly `size` bytes for a.localhost. */
  function headOf(size: number): Buffer {
    const start = 'GET / HTTP/1.1\r\nHost: a.localhost\r\nX-Pad: ';
    const head = `${start}${'p'.repeat(size - start.length - 4)}\r\n\r\n`;
    assert.equal(head.length, size);
    return Buffer.from(head, 'latin1');
  }

  test('a head of exactly maxHeadSize bytes is accepted; one byte more is 431', () => {
    for (const cap of [64, 256, 1000, CAP]) {
      assertHttp(sniffOne(headOf(cap), cap), 'a.localhost');
      // With a body behind it in the same read, still accepted.
      assertHttp(sniffOne(Buffer.concat([headOf(cap), Buffer.from('BODY')]), cap), 'a.localhost');
      const over = sniff([headOf(cap + 1)], cap);
      assertHttpError(over.result, 431, 'NORIKAE_ERR_HEAD_TOO_LARGE');
      assert.equal(over.executed, cap, 'llhttp saw exactly the cap');
      assert.match((over.result as { error: HeadError }).error.message, new RegExp(`${cap} bytes`));
    }
  });

  test('at the cap, split reads give the same answer', () => {
    const cap = 128;
    const fits = headOf(cap);
    const over = headOf(cap + 1);
    for (let at = 0; at <= cap; at++) {
      assertHttp(sniff([fits.subarray(0, at), fits.subarray(at)], cap).result, 'a.localhost');
      const result = sniff([over.subarray(0, at), over.subarray(at)], cap);
      assertHttpError(result.result, 431, 'NORIKAE_ERR_HEAD_TOO_LARGE');
      assert.ok(result.executed <= cap);
    }
    assertHttp(sniff([...fits].map((b) => Uint8Array.of(b)), cap).result, 'a.localhost');
    const byteByByte = sniff([...over].map((b) => Uint8Array.of(b)), cap);
    assertHttpError(byteByByte.result, 431, 'NORIKAE_ERR_HEAD_TOO_LARGE');
    assert.equal(byteByByte.pushed, cap, 'the answer comes with the byte that reaches the cap');
  });

  test('a 1 MiB read without an empty line is 431, and llhttp is never fed past the cap', () => {
    const huge = Buffer.alloc(1 << 20, 'a');
    Buffer.from('GET / HTTP/1.1\r\nX-Big: ', 'latin1').copy(huge);
    const result = sniff([huge], CAP);
    assertHttpError(result.result, 431, 'NORIKAE_ERR_HEAD_TOO_LARGE');
    assert.equal(result.executed, CAP);
    // The same, in reads that straddle the cap.
    const chunked = sniff([huge.subarray(0, 10_000), huge.subarray(10_000, 20_000), huge.subarray(20_000)], CAP);
    assertHttpError(chunked.result, 431, 'NORIKAE_ERR_HEAD_TOO_LARGE');
    assert.equal(chunked.executed, CAP);
    assert.equal(chunked.pushed, 20_000);
  });

  test('an incomplete head below the cap waits; empty reads change nothing', () => {
    const start = Buffer.from('GET / HTTP/1.1\r\nHost: a.localhost\r\n', 'latin1');
    assert.equal(sniff([Buffer.alloc(0), start, Buffer.alloc(0)]).result, undefined);
    assertHttp(sniff([Buffer.alloc(0), start, Buffer.alloc(0), Buffer.from('\r\n')]).result, 'a.localhost');
  });
});

describe('HeadSniffer: TLS', () => {
  test('a real ClientHello is routed by its SNI name, whole, split at every byte and byte by byte', () => {
    const hello = hellos.app;
    assert.equal(hello[0], 0x16);
    assert.deepEqual(sniffOne(hello), { kind: 'tls', host: 'app.localhost' });
    for (let at = 0; at <= hello.length; at++) {
      assert.deepEqual(sniff([hello.subarray(0, at), hello.subarray(at)]).result, { kind: 'tls', host: 'app.localhost' }, `split at ${at}`);
    }
    assert.deepEqual(sniff([...hello].map((b) => Uint8Array.of(b))).result, { kind: 'tls', host: 'app.localhost' });
    // Never handed to llhttp.
    assert.equal(sniff([hello]).executed, 0);
    // Bytes after the ClientHello (in the same read) do not matter.
    assert.deepEqual(sniffOne(Buffer.concat([hello, Buffer.from('170303001000', 'hex')])), { kind: 'tls', host: 'app.localhost' });
  });

  test('the SNI name is lower-cased; a hello without SNI has no host', () => {
    assert.deepEqual(sniffOne(hellos.mixedCase), { kind: 'tls', host: 'shop.localhost' });
    assert.deepEqual(sniffOne(hellos.noSni), { kind: 'tls', host: undefined });
  });

  test('a prefix of a ClientHello waits', () => {
    for (let end = 0; end < hellos.app.length; end += 7) assert.equal(sniffOne(hellos.app.subarray(0, end)), undefined, `prefix of ${end}`);
  });

  test('TLS with garbage is tls-error', () => {
    const notClientHello = Buffer.from(hellos.app);
    notClientHello[5] = 2; // a ServerHello
    assert.equal(sniffOne(notClientHello)?.kind, 'tls-error');
    assert.equal(sniffOne(Buffer.from('16000000', 'hex'))?.kind, 'tls-error');
    assert.equal(sniffOne(Buffer.from('1603010000', 'hex'))?.kind, 'tls-error'); // an empty record
    assert.equal(sniffOne(Buffer.concat([Buffer.from([0x16, 0x03, 0x01]), Buffer.from('GET / HTTP/1.1\r\n\r\n')]))?.kind, 'tls-error');
    const lyingLength = Buffer.from(hellos.app);
    lyingLength.writeUInt16BE(lyingLength.readUInt16BE(3) - 10, 3); // the record ends inside the hello, then garbage
    const result = sniffOne(lyingLength);
    assert.equal(result?.kind, 'tls-error');
  });

  test('the ClientHello cap is CLIENT_HELLO_MAX whatever maxHeadSize is (an HTTP limit); a larger hello is tls-error', () => {
    const hello = hellos.app;
    assert.deepEqual(sniffOne(hello, hello.length), { kind: 'tls', host: 'app.localhost' });
    // max_head_size may be set as low as 1 KiB, below a browser's ClientHello (about 2 KB with post-quantum key shares).
    assert.deepEqual(sniffOne(hello, Math.floor(hello.length / 2)), { kind: 'tls', host: 'app.localhost' });
    // A hello that claims 64 KiB, with a cap far above CLIENT_HELLO_MAX.
    const huge = Buffer.alloc(1 << 20);
    Buffer.from([0x16, 0x03, 0x01, 0x40, 0x00, 0x01, 0x00, 0xff, 0xff]).copy(huge);
    const result = sniffOne(huge, 1 << 21);
    assert.equal(result?.kind, 'tls-error');
    assert.match((result as { reason: string }).reason, new RegExp(`larger than ${CLIENT_HELLO_MAX} bytes`));
  });

  test('only the first byte of the connection decides TLS', () => {
    // 0x16 later in an HTTP stream is just a bad byte to llhttp.
    assertHttpError(sniff([Buffer.from('G'), hellos.app]).result, 400, 'NORIKAE_ERR_MALFORMED_HEAD');
    // An empty first read does not count as the first byte.
    assert.deepEqual(sniff([Buffer.alloc(0), hellos.app]).result, { kind: 'tls', host: 'app.localhost' });
  });
});

describe('HeadSniffer: destroy', () => {
  test('is idempotent, before any input, mid-head and after a result', () => {
    const fresh = new HeadSniffer(CAP);
    fresh.destroy();
    fresh.destroy();
    assert.throws(() => fresh.push(Buffer.from('GET / HTTP/1.1\r\n')), /after its result/);

    const midHead = new HeadSniffer(CAP);
    assert.equal(midHead.push(Buffer.from('GET / HTTP/1.1\r\nHost: a')), undefined);
    midHead.destroy();
    midHead.destroy();
    assert.throws(() => midHead.push(Buffer.from('\r\n\r\n')), /after its result/);

    const midTls = new HeadSniffer(CAP);
    assert.equal(midTls.push(hellos.app.subarray(0, 20)), undefined);
    midTls.destroy();
    midTls.destroy();

    const finished = new HeadSniffer(CAP);
    assertHttp(finished.push(Buffer.from('GET / HTTP/1.1\r\nHost: a\r\n\r\n')), 'a');
    finished.destroy();
    finished.destroy();
  });

  test('destroyed sniffers do not disturb the next ones (parsers are pooled)', () => {
    for (let i = 0; i < 200; i++) {
      const abandoned = new HeadSniffer(CAP);
      abandoned.push(Buffer.from(`GET /${i} HTTP/1.1\r\nHost: stale${i}.localhost\r\nAccept: x/`));
      abandoned.destroy();
      assertHttp(sniffOne(`GET / HTTP/1.1\r\nHost: fresh${i}.localhost\r\n\r\n`), `fresh${i}.localhost`);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// 2. Properties

const splitPoints = fc.array(fc.nat({ max: 1 << 16 }), { maxLength: 8 });

/** Tokens that make llhttp go further than the first byte. */
const HTTP_TOKENS = [
  'GET', 'POST', 'OPTIONS', 'CONNECT', 'PRI', 'HEAD', ' ', '/', '/x?y=1', '*', 'http://', 'App.Localhost', ':8080', '@',
  'HTTP/1.1', 'HTTP/1.0', 'HTTP/2.0', 'HTTP/0.9', '\r\n', '\r\n\r\n', '\n', '\r', 'Host', 'host', ': ', ':', 'a.localhost',
  'Accept', 'text/html', 'Content-Length: 3', 'Transfer-Encoding: chunked', 'Upgrade: websocket', 'Connection: upgrade',
  '\x00', '\x16', '\x7f', '\xff', '\t', 'SM', 'x',
];
const httpSoup = fc.array(fc.constantFrom(...HTTP_TOKENS), { maxLength: 40 }).map((tokens) => Buffer.from(tokens.join(''), 'latin1'));

describe('hostOfAuthority', () => {
  test('lower-cases and drops the port and a trailing dot', () => {
    assert.equal(hostOfAuthority('App.LocalHost'), 'app.localhost');
    assert.equal(hostOfAuthority('app.localhost:8080'), 'app.localhost');
    assert.equal(hostOfAuthority('app.localhost.:8080'), 'app.localhost');
    assert.equal(hostOfAuthority('app.localhost:'), 'app.localhost');
    assert.equal(hostOfAuthority('[::1]:8080'), '::1');
    assert.equal(hostOfAuthority('127.0.0.1'), '127.0.0.1');
    assert.equal(hostOfAuthority('APP.LOCALHOST.:00080'), 'app.localhost');
    assert.equal(hostOfAuthority('[FE80::1%ETH0]:80'), 'fe80::1%eth0');
    assert.equal(hostOfAuthority('app.localhost:65535'), 'app.localhost');
  });

  test('a Host whose port is above 65535 is answered 400, like any authority that is not one', () => {
    const sniffer = new HeadSniffer(CAP);
    const result = sniffer.push(Buffer.from('GET / HTTP/1.1\r\nHost: app.localhost:99999\r\n\r\n'));
    assert.equal(result?.kind, 'http-error');
    assert.equal(result.kind === 'http-error' && result.error.status, 400);
  });

  test('refuses what is not an authority', () => {
    for (const bad of ['', ':80', 'a b', 'app.localhost:80:80', 'app.localhost:abc', 'app.localhost:123456', 'app.localhost:000000', 'app.localhost:65536', 'app.localhost:99999', '[::1]:70000', '[::1]x', '[::1]:8o', 'Caf\u00e9.localhost', '[::1', '[nope]:80', 'a/b', 'a@b', '.']) {
      assert.equal(hostOfAuthority(bad), undefined, bad);
    }
  });
});

describe('HeadSniffer properties', () => {
  test('(a) random bytes, split anywhere: never throws, at most one result, only the four kinds', () => {
    const input = fc.oneof(
      { weight: 2, arbitrary: fc.uint8Array({ maxLength: 600 }) },
      { weight: 1, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 600 }).map((bytes) => Uint8Array.of(0x16, 0x03, ...bytes)) },
      { weight: 3, arbitrary: httpSoup },
    );
    fc.assert(
      fc.property(input, splitPoints, fc.constantFrom(16, 64, 256, CAP), (bytes, points, cap) => {
        const split = sniff(splitAt(bytes, points), cap);
        assertWellFormed(split.result);
        assert.ok(split.executed <= cap, `llhttp was fed ${split.executed} bytes with a cap of ${cap}`);
        // The routing decision does not depend on how the bytes were cut.
        const whole = sniff([bytes], cap).result;
        assert.equal(split.result?.kind, whole?.kind);
        if (whole?.kind === 'http-error' && split.result?.kind === 'http-error') {
          assert.equal(split.result.error.status, whole.error.status);
          assert.equal(split.result.error.code, whole.error.code);
        }
        if (whole?.kind === 'http' || whole?.kind === 'tls') assert.deepEqual(split.result, whole);
      }),
      { seed: 0x5ff1, numRuns: 400, includeErrorInReport: true },
    );
  });

  test('(b) mutated real requests: the same invariants; unmutated ones route; whole and split agree', () => {
    const mutation = fc.record({
      op: fc.constantFrom('xor', 'set', 'insert', 'delete'),
      at: fc.nat(),
      byte: fc.oneof(fc.integer({ min: 1, max: 255 }), fc.constantFrom(0x0d, 0x0a, 0x20, 0x3a, 0x00, 0x16, 0x2f, 0x09)),
    });
    const mutations = fc.oneof({ weight: 1, arbitrary: fc.constant([]) }, { weight: 3, arbitrary: fc.array(mutation, { minLength: 1, maxLength: 4 }) });
    fc.assert(
      fc.property(fc.constantFrom(...SEEDS.map((seed) => seed.name)), mutations, splitPoints, (name, edits, points) => {
        const seed = SEEDS.find((candidate) => candidate.name === name)!;
        const original = seed.bytes();
        const bytes = mutate(original, edits);
        const split = sniff(splitAt(bytes, points));
        assertWellFormed(split.result);
        assert.ok(split.executed <= CAP);
        if (bytes.equals(original)) assert.deepEqual(split.result, seed.expected(), seed.name);
        const whole = sniff([bytes]);
        const chunks = splitAt(bytes, points).map((chunk) => chunk.length);
        assert.deepEqual(plain(split.result), plain(whole.result), `whole and split (${chunks.join('+')}) give the same result for ${bytes.toString('hex')}`);
      }),
      { seed: 3, numRuns: 600, includeErrorInReport: true },
    );
  });

  test('(c) with a cap of 256: 431 exactly when llhttp finds no end (nor error) in the first 256 bytes', () => {
    const cap = 256;
    const seeds = SEEDS.filter((seed) => seed.name !== 'TLS ClientHello').map((seed) => seed.bytes());
    const input = fc.oneof(
      // Realistic heads, cut or padded around the cap.
      fc.tuple(fc.constantFrom(...seeds), fc.nat({ max: 600 })).map(([head, length]) => Buffer.concat([head, Buffer.alloc(600, 'x')]).subarray(0, length)),
      httpSoup,
      fc.uint8Array({ maxLength: 400 }).map((bytes) => Buffer.from(bytes)),
    ).filter((bytes) => bytes[0] !== 0x16);
    fc.assert(
      fc.property(input, splitPoints, (bytes, points) => {
        const { result, executed, pushed } = sniff(splitAt(bytes, points), cap);
        assertWellFormed(result);
        assert.ok(executed <= cap, `llhttp was fed ${executed} bytes`);
        // The oracle: the first `cap` bytes, whole, to a bare llhttp parser.
        const reference = new RequestHeadParser();
        const end = reference.execute(bytes.subarray(0, cap));
        reference.destroy();
        const is431 = result?.kind === 'http-error' && result.error.status === 431;
        if (end === HEAD_INCOMPLETE && bytes.length >= cap) {
          assertHttpError(result, 431, 'NORIKAE_ERR_HEAD_TOO_LARGE');
          assert.equal(executed, cap);
        } else if (end === HEAD_INCOMPLETE) {
          assert.equal(result, undefined);
          assert.equal(executed, bytes.length);
        } else {
          assert.ok(!is431, 'no 431 when the head ends (or is refused) within the cap');
          assert.notEqual(result, undefined);
        }
        if (result !== undefined) assert.ok(pushed - cap <= Math.max(...splitAt(bytes, points).map((c) => c.length)));
      }),
      { seed: 0x5ff3, numRuns: 600, includeErrorInReport: true },
    );
  });

  test('(c) generated well-formed heads: 431 if and only if the head is longer than the cap', () => {
    const cap = 256;
    const head = fc.record({
      host: fc.constantFrom('app.localhost', 'App.Localhost:3000', 'api.localhost.'),
      pads: fc.array(fc.tuple(fc.constantFrom('X-Pad', 'Cookie', 'User-Agent', 'Accept-Language'), fc.nat({ max: 120 })), { maxLength: 5 }),
      body: fc.uint8Array({ maxLength: 64 }),
    });
    fc.assert(
      fc.property(head, splitPoints, ({ host, pads, body }, points) => {
        const lines = ['GET /path HTTP/1.1', `Host: ${host}`, ...pads.map(([name, n]) => `${name}: ${'v'.repeat(n)}`), '', ''];
        const text = Buffer.from(lines.join('\r\n'), 'latin1');
        const { result, executed } = sniff(splitAt(Buffer.concat([text, body]), points), cap);
        assert.ok(executed <= cap);
        if (text.length <= cap) assertHttp(result, host.toLowerCase().replace(/\.?(:\d+)?$/, ''));
        else assertHttpError(result, 431, 'NORIKAE_ERR_HEAD_TOO_LARGE');
      }),
      { seed: 0x5ff4, numRuns: 400, includeErrorInReport: true },
    );
  });
});

type Mutation = { op: 'xor' | 'set' | 'insert' | 'delete'; at: number; byte: number };

function mutate(original: Buffer, edits: readonly Mutation[]): Buffer {
  const bytes = [...original];
  for (const { op, at, byte } of edits) {
    if (op === 'insert') {
      bytes.splice(at % (bytes.length + 1), 0, byte);
      continue;
    }
    if (bytes.length === 0) continue;
    const i = at % bytes.length;
    if (op === 'xor') bytes[i] = bytes[i]! ^ byte;
    else if (op === 'set') bytes[i] = byte;
    else bytes.splice(i, 1);
  }
  return Buffer.from(bytes);
}
