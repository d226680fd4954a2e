// The llhttp binding: heads whole, split at every point and byte by byte, bytes after the head left
// alone, latin1 decoding, errors by name, and parsers pooled without sharing state.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { HEAD_INCOMPLETE, HEAD_INVALID, RequestHeadParser } from '../lib/llhttp.js';

/** A Chrome-like navigation request, ~825 bytes. */
const BROWSER_HEAD = [
  'GET /projects/norikae/index.html?tab=overview&sort=recent HTTP/1.1',
  'Host: app.localhost:8080',
  'Connection: keep-alive',
  'Cache-Control: max-age=0',
  'sec-ch-ua: "Chromium";v="128", "Not;A=Brand";v="24", "Google Chrome";v="128"',
  'sec-ch-ua-mobile: ?0',
  'sec-ch-ua-platform: "Linux"',
  'Upgrade-Insecure-Requests: 1',
  'User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/128.0.0.0 Safari/537.36',
  'Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8',
  'Sec-Fetch-Site: none',
  'Sec-Fetch-Mode: navigate',
  'Sec-Fetch-User: ?1',
  'Sec-Fetch-Dest: document',
  'Accept-Encoding: gzip, deflate, br, zstd',
  'Accept-Language: en-GB,en-US;q=0.9,en;q=0.8,ja;q=0.7',
  'Cookie: session=4f9c2a7e1b3d5f60; theme=dark; _ga=GA1.1.123456789.1700000000',
  'If-None-Match: W/"5e1-18f3c2a9b40"',
  '', '',
].join('\r\n');

interface Parsed {
  result: number;
  /** Bytes consumed over all chunks: whole chunks while incomplete, then what execute() returned. */
  consumed: number;
  method: string;
  url: string;
  version: string;
  hosts: string[];
  accept: string;
  upgrade: boolean;
  errorName: string;
}

/** Feeds `chunks` to a fresh parser until it has a result, then destroys it. */
function parse(...chunks: (string | Uint8Array)[]): Parsed {
  const parser = new RequestHeadParser();
  try {
    let result = HEAD_INCOMPLETE;
    let consumed = 0;
    for (const chunk of chunks) {
      result = parser.execute(typeof chunk === 'string' ? Buffer.from(chunk, 'latin1') : chunk);
      if (result === HEAD_INCOMPLETE) consumed += chunk.length;
      else {
        if (result >= 0) consumed += result;
        break;
      }
    }
    return snapshot(parser, result, consumed);
  } finally {
    parser.destroy();
  }
}

function snapshot(parser: RequestHeadParser, result: number, consumed: number): Parsed {
  const { method, url, hosts, accept, upgrade, errorName } = parser;
  return { result, consumed, method, url, version: `${parser.httpMajor}.${parser.httpMinor}`, hosts, accept, upgrade, errorName };
}

const browserParsed: Parsed = {
  result: Buffer.byteLength(BROWSER_HEAD),
  consumed: Buffer.byteLength(BROWSER_HEAD),
  method: 'GET',
  url: '/projects/norikae/index.html?tab=overview&sort=recent',
  version: '1.1',
  hosts: ['app.localhost:8080'],
  accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8',
  upgrade: false,
  errorName: '',
};

/** The same head as `parse()` sees it when the head ends inside an earlier chunk than the last. */
const sameHead = (parsed: Parsed) => ({ ...parsed, result: undefined });

describe('RequestHeadParser', () => {
  test('a typical browser head in one chunk', () => {
    assert.ok(BROWSER_HEAD.length > 800 && BROWSER_HEAD.length < 850, `head is ${BROWSER_HEAD.length} bytes`);
    assert.deepEqual(parse(BROWSER_HEAD), browserParsed);
  });

  test('the head split at every 2-way point gives the same result', () => {
    const bytes = Buffer.from(BROWSER_HEAD, 'latin1');
    for (let i = 0; i <= bytes.length; i++) {
      const parsed = parse(bytes.subarray(0, i), bytes.subarray(i));
      assert.deepEqual(sameHead(parsed), sameHead(browserParsed), `split at ${i}`);
      // The last non-empty chunk ends the head: the result counts bytes of that chunk only.
      assert.equal(parsed.result, i === bytes.length ? bytes.length : bytes.length - i, `split at ${i}`);
    }
  });

  test('the head split at a sample of 3-way points gives the same result', () => {
    const bytes = Buffer.from(BROWSER_HEAD, 'latin1');
    let count = 0;
    for (let i = 0; i <= bytes.length; i += 7) {
      for (let j = i; j <= bytes.length; j += 31) {
        const parsed = parse(bytes.subarray(0, i), bytes.subarray(i, j), bytes.subarray(j));
        assert.deepEqual(sameHead(parsed), sameHead(browserParsed), `split at ${i}, ${j}`);
        count++;
      }
    }
    assert.ok(count > 1000);
  });

  test('the head fed one byte at a time gives the same result', () => {
    const bytes = Buffer.from(BROWSER_HEAD, 'latin1');
    const chunks = Array.from(bytes, (_, i) => bytes.subarray(i, i + 1));
    const parsed = parse(...chunks);
    assert.deepEqual(sameHead(parsed), sameHead(browserParsed));
    assert.equal(parsed.result, 1);
  });

  test('the method is known once the request target starts', () => {
    const parser = new RequestHeadParser();
    assert.equal(parser.execute(Buffer.from('DELE')), HEAD_INCOMPLETE);
    assert.equal(parser.method, '');
    assert.equal(parser.execute(Buffer.from('TE ')), HEAD_INCOMPLETE);
    assert.equal(parser.execute(Buffer.from('/x')), HEAD_INCOMPLETE);
    assert.equal(parser.method, 'DELETE');
    parser.destroy();
  });

  test('bytes after the head are not consumed: a body, an upgraded stream, a pipelined request', () => {
    const post = 'POST /form HTTP/1.1\r\nHost: app.localhost\r\nContent-Length: 5\r\n\r\n';
    assert.equal(parse(post + 'hello').result, post.length);
    assert.equal(parse(post + 'hel').result, post.length);

    const upgrade = 'GET /ws HTTP/1.1\r\nHost: app.localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 4\r\n\r\n';
    const parsed = parse(upgrade + 'abcdGET /next HTTP/1.1\r\nHost: other.localhost\r\n\r\n');
    assert.equal(parsed.result, upgrade.length);
    assert.equal(parsed.upgrade, true);
    assert.deepEqual(parsed.hosts, ['app.localhost']);

    const pipelined = 'GET /a HTTP/1.1\r\nHost: a.localhost\r\n\r\n';
    assert.equal(parse(pipelined + 'GET /b HTTP/1.1\r\nHost: b.localhost\r\n\r\n').result, pipelined.length);
  });

  test('CONNECT reports its authority-form target and llhttp\'s upgrade flag', () => {
    const parsed = parse('CONNECT app.localhost:443 HTTP/1.1\r\nHost: app.localhost:443\r\n\r\n');
    assert.equal(parsed.method, 'CONNECT');
    assert.equal(parsed.url, 'app.localhost:443');
    assert.equal(parsed.upgrade, true);
  });

  test('empty header values keep names and values aligned', () => {
    assert.deepEqual(parse('GET / HTTP/1.1\r\nX-Empty:\r\nHost: app.localhost\r\n\r\n').hosts, ['app.localhost']);
    assert.deepEqual(parse('GET / HTTP/1.1\r\nX-Empty: \r\nX-Also:\r\nHost: app.localhost\r\nX-Last:\r\n\r\n').hosts, ['app.localhost']);
    assert.deepEqual(parse('GET / HTTP/1.1\r\nHost:\r\nAccept: */*\r\n\r\n').hosts, ['']);
    const head = 'GET / HTTP/1.1\r\nX-Empty:\r\nHost: app.localhost\r\nX-Empty2:\r\nAccept: text/html\r\n\r\n';
    for (let i = 0; i <= head.length; i++) {
      const parsed = parse(head.slice(0, i), head.slice(i));
      assert.deepEqual([parsed.hosts, parsed.accept], [['app.localhost'], 'text/html'], `split at ${i}`);
    }
  });

  test('obs-text in Host decodes as latin1, one char per byte', () => {
    const parsed = parse(Buffer.from('GET / HTTP/1.1\r\nHost: \x80caf\xe9\xff.localhost\r\n\r\n', 'latin1'));
    assert.deepEqual(parsed.hosts, ['\u0080caf\u00e9\u00ff.localhost']);
    assert.notEqual(parsed.hosts[0]![0], '\u20ac');
  });

  test('obs-text in the request target is rejected by llhttp; percent-encoding is kept as is', () => {
    const parsed = parse(Buffer.from('GET /caf\xe9\x80 HTTP/1.1\r\nHost: a\r\n\r\n', 'latin1'));
    assert.equal(parsed.result, HEAD_INVALID);
    assert.equal(parsed.errorName, 'HPE_INVALID_URL');
    assert.equal(parse('GET /caf%C3%A9%80 HTTP/1.1\r\nHost: a\r\n\r\n').url, '/caf%C3%A9%80');
  });

  test('Host: names match case-insensitively, whitespace is trimmed, every value is kept', () => {
    assert.deepEqual(parse('GET / HTTP/1.1\r\nhOsT:   app.localhost \t \r\n\r\n').hosts, ['app.localhost']);
    assert.deepEqual(parse('GET / HTTP/1.1\r\nHost: a.localhost\r\nX-Other: 1\r\nHOST: b.localhost\r\n\r\n').hosts, ['a.localhost', 'b.localhost']);
    assert.deepEqual(parse('GET / HTTP/1.1\r\nX-Host: a.localhost\r\nHosts: b\r\n\r\n').hosts, []);
    assert.deepEqual(parse('GET / HTTP/1.1\r\n\r\n').hosts, []);
  });

  test('Host and Accept names match as bytes in any case, split anywhere; near misses do not', () => {
    const pads = Array.from({ length: 60 }, (_, i) => `X-Pad-${i}: ${'v'.repeat(i)}`);
    const head = [
      'GET /many HTTP/1.1', ...pads.slice(0, 30),
      'Hos: no', 'Hostt: no', 'X-Host: no', 'HOST: Many.Localhost ', 'Accep: no', 'Accepts: no', 'Accept-Encoding: no',
      'aCcEpT: text/html', ...pads.slice(30), 'ACCEPT:\t*/* ', '', '',
    ].join('\r\n');
    const expected = { hosts: ['Many.Localhost'], accept: 'text/html, */*' };
    const bytes = Buffer.from(head, 'latin1');
    const pick = (parsed: Parsed) => ({ hosts: parsed.hosts, accept: parsed.accept });
    assert.deepEqual(pick(parse(bytes)), expected);
    for (let i = 0; i <= bytes.length; i++) assert.deepEqual(pick(parse(bytes.subarray(0, i), bytes.subarray(i))), expected, `split at ${i}`);
    assert.deepEqual(pick(parse(...Array.from(bytes, (_, i) => bytes.subarray(i, i + 1)))), expected);
  });

  test('Accept: every value, joined with ", "', () => {
    assert.equal(parse('GET / HTTP/1.1\r\nAccept: text/html \r\nHost: a\r\naccept: */*\r\n\r\n').accept, 'text/html, */*');
    assert.equal(parse('GET / HTTP/1.1\r\nAccept-Language: en\r\nHost: a\r\n\r\n').accept, '');
  });

  test('versions are reported, not judged', () => {
    assert.equal(parse('GET / HTTP/1.0\r\n\r\n').version, '1.0');
    const h2 = parse('GET / HTTP/2.0\r\nHost: a\r\n\r\n');
    assert.deepEqual([h2.result, h2.version], [27, '2.0']);
  });

  test('malformed heads are HEAD_INVALID with llhttp\'s error name and reason', () => {
    const cases: [string, string][] = [
      ['FOO / HTTP/1.1\r\n\r\n', 'HPE_INVALID_METHOD'],
      ['HTTP/1.1 200 OK\r\n\r\n', 'HPE_INVALID_METHOD'],
      ['GET / HTTP/1.1\r\nBad Header: x\r\n\r\n', 'HPE_INVALID_HEADER_TOKEN'],
      ['GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n', 'HPE_INVALID_TRANSFER_ENCODING'],
      ['\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03', 'HPE_INVALID_METHOD'],
    ];
    for (const [head, errorName] of cases) {
      const parser = new RequestHeadParser();
      assert.equal(parser.execute(Buffer.from(head, 'latin1')), HEAD_INVALID, JSON.stringify(head));
      assert.equal(parser.errorName, errorName, JSON.stringify(head));
      assert.ok(parser.errorReason.length > 0);
      parser.destroy();
    }
  });

  test('the HTTP/2 prior-knowledge preface is HEAD_INVALID with HPE_PAUSED_H2_UPGRADE', () => {
    const parsed = parse('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
    assert.equal(parsed.result, HEAD_INVALID);
    assert.equal(parsed.errorName, 'HPE_PAUSED_H2_UPGRADE');
    assert.equal(parsed.method, 'PRI');
  });

  test('execute() after a result, or after destroy(), throws; destroy() twice is fine', () => {
    const complete = new RequestHeadParser();
    assert.equal(complete.execute(Buffer.from('GET / HTTP/1.1\r\n\r\n')), 18);
    assert.throws(() => complete.execute(Buffer.from('GET / HTTP/1.1\r\n\r\n')), /after the head/);
    complete.destroy();
    complete.destroy();
    assert.throws(() => complete.execute(Buffer.from('GET')), /after destroy/);
    assert.equal(complete.method, 'GET', 'what was parsed stays readable');

    const invalid = new RequestHeadParser();
    assert.equal(invalid.execute(Buffer.from('FOO / HTTP/1.1\r\n')), HEAD_INVALID);
    assert.throws(() => invalid.execute(Buffer.from('\r\n')), /after the head/);
    invalid.destroy();
  });

  test('a destroyed parser cannot drive the pooled parser handed to the next one', () => {
    const stale = new RequestHeadParser();
    stale.execute(Buffer.from('GET /stale HTTP/1.1\r\nHo'));
    stale.destroy();
    const fresh = new RequestHeadParser();
    assert.throws(() => stale.execute(Buffer.from('st: stale\r\n\r\n')));
    const head = 'PUT /fresh HTTP/1.1\r\nHost: fresh\r\n\r\n';
    assert.equal(fresh.execute(Buffer.from(head)), head.length);
    assert.deepEqual([fresh.method, fresh.url, fresh.hosts], ['PUT', '/fresh', ['fresh']]);
    fresh.destroy();
  });

  test('10 000 parsers created and destroyed, half mid-head or invalid, reuse pooled parsers cleanly', () => {
    for (let i = 0; i < 10_000; i++) {
      const parser = new RequestHeadParser();
      if (i % 3 === 0) parser.execute(Buffer.from('GET /half HTTP/1.1\r\nHost: ha'));
      else if (i % 3 === 1) parser.execute(Buffer.from('BAD!'));
      parser.destroy();
    }
    // Held at once, more parsers than the pool keeps.
    const many = Array.from({ length: 200 }, () => new RequestHeadParser());
    many.forEach((parser, i) => parser.execute(Buffer.from(`GET /${i} HTTP/1.1\r\nHo`)));
    many.forEach((parser, i) => assert.equal(parser.execute(Buffer.from(`st: h${i}\r\n\r\n`)), 9 + String(i).length));
    many.forEach((parser, i) => assert.deepEqual([parser.url, parser.hosts], [`/${i}`, [`h${i}`]]));
    many.forEach((parser) => parser.destroy());
    assert.deepEqual(parse(BROWSER_HEAD), browserParsed);
  });

  test('a large input grows the shared input area; smaller heads still parse after it', () => {
    const big = `GET / HTTP/1.1\r\nX-Big: ${'x'.repeat(100_000)}\r\nHost: big.localhost\r\n\r\n`;
    assert.deepEqual(parse(big).hosts, ['big.localhost']);
    assert.equal(parse(big).consumed, big.length);
    assert.deepEqual(parse(BROWSER_HEAD), browserParsed);
  });

  test('two parsers fed interleaved keep their state apart', () => {
    const a = Buffer.from(BROWSER_HEAD, 'latin1');
    const b = Buffer.from('POST /upload?id=7 HTTP/1.0\r\nAccept: application/json\r\nHost: api.localhost\r\nContent-Length: 2\r\n\r\n{}', 'latin1');
    for (const [splitA, splitB] of [[300, 40], [17, 60], [a.length - 1, 1]] as const) {
      const pa = new RequestHeadParser();
      const pb = new RequestHeadParser();
      assert.equal(pa.execute(a.subarray(0, splitA)), HEAD_INCOMPLETE);
      assert.equal(pb.execute(b.subarray(0, splitB)), HEAD_INCOMPLETE);
      assert.equal(pa.execute(a.subarray(splitA)), a.length - splitA);
      assert.equal(pb.execute(b.subarray(splitB)), b.length - 2 - splitB);
      assert.deepEqual(snapshot(pa, a.length, a.length), browserParsed);
      assert.deepEqual(
        [pb.method, pb.url, pb.httpMajor, pb.httpMinor, pb.hosts, pb.accept],
        ['POST', '/upload?id=7', 1, 0, ['api.localhost'], 'application/json'],
      );
      pa.destroy();
      pb.destroy();
    }
  });
});
