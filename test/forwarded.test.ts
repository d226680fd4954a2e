// X-Forwarded-* and Forwarded on every request of a connection whose TLS norikae terminated: the
// stream stage alone (pipelined requests, Content-Length and chunked bodies, any split of the
// bytes, Upgrade, garbage), then end to end over TLS, including wss://.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import type { IncomingHttpHeaders } from 'node:http';
import { describe, test, type TestContext } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import fc from 'fast-check';
import WebSocket, { WebSocketServer } from 'ws';
import { ForwardedHeaders } from '../lib/forwarded.js';
import { rootFile } from '../lib/local-ca.js';
import { httpsRequest, nextData, parseResponse, readAll, startHttpUpstream, startSplicer } from './helpers.js';

const OURS = ['x-forwarded-proto', 'x-forwarded-host', 'x-forwarded-for', 'forwarded'];

interface RequestSpec {
  method: string;
  path: string;
  headers: [string, string][];
  body: { kind: 'none' } | { kind: 'length'; bytes: string } | { kind: 'chunked'; chunks: string[] };
}

/** The request as a client writes it. */
function wire(request: RequestSpec): string {
  const framing = request.body.kind === 'length' ? [`Content-Length: ${request.body.bytes.length}`]
    : request.body.kind === 'chunked' ? ['Transfer-Encoding: chunked'] : [];
  const head = [`${request.method} ${request.path} HTTP/1.1`, ...request.headers.map(([name, value]) => `${name}: ${value}`), ...framing].join('\r\n');
  return `${head}\r\n\r\n${body(request)}`;
}

function body(request: RequestSpec): string {
  if (request.body.kind === 'length') return request.body.bytes;
  if (request.body.kind === 'chunked') return `${request.body.chunks.map((chunk) => `${chunk.length.toString(16)}\r\n${chunk}\r\n`).join('')}0\r\n\r\n`;
  return '';
}

/** What the upstream must receive for `request` from `client`. */
function expected(request: RequestSpec, client: string): string {
  const framing = request.body.kind === 'length' ? [`Content-Length: ${request.body.bytes.length}`]
    : request.body.kind === 'chunked' ? ['Transfer-Encoding: chunked'] : [];
  const kept = request.headers.filter(([name]) => !OURS.includes(name.toLowerCase())).map(([name, value]) => `${name}: ${value}`);
  const host = request.headers.find(([name]) => name.toLowerCase() === 'host')?.[1];
  const ours = ['X-Forwarded-Proto: https', ...(host === undefined ? [] : [`X-Forwarded-Host: ${host}`]), `X-Forwarded-For: ${client}`,
    `Forwarded: for=${client}${host === undefined ? '' : `;host="${host}"`};proto=https`];
  return `${[`${request.method} ${request.path} HTTP/1.1`, ...kept, ...framing, ...ours].join('\r\n')}\r\n\r\n${body(request)}`;
}

/** Everything the stage passes on when given `pieces` one write each; rejects on its error. */
async function through(pieces: Buffer[], client = '127.0.0.1', maxHeadSize = 16384): Promise<string> {
  const stage = new ForwardedHeaders({ clientAddress: client, maxHeadSize });
  const out: Buffer[] = [];
  stage.on('data', (chunk: Buffer) => out.push(chunk));
  const done = new Promise<void>((resolve, reject) => {
    stage.on('end', resolve);
    stage.on('error', reject);
  });
  for (const piece of pieces) stage.write(piece);
  stage.end();
  await done;
  return Buffer.concat(out).toString('latin1');
}

/** `bytes` cut at `cuts` (positions, any order). */
function split(bytes: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((cut) => cut % (bytes.length + 1)))].sort((a, b) => a - b);
  const pieces: Buffer[] = [];
  let last = 0;
  for (const point of [...points, bytes.length]) {
    pieces.push(bytes.subarray(last, point));
    last = point;
  }
  return pieces.filter((piece) => piece.length > 0);
}

const token = fc.stringMatching(/^[A-Za-z][A-Za-z0-9-]{0,11}$/);
const text = fc.stringMatching(/^[ -~]{0,40}$/).map((value) => value.trim());
const requestArbitrary: fc.Arbitrary<RequestSpec> = fc.record({
  method: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE'),
  path: fc.stringMatching(/^\/[A-Za-z0-9/?=&._-]{0,30}$/),
  headers: fc.tuple(
    fc.constantFrom('app.localhost', 'app.localhost:8443', 'a.b.test'),
    fc.array(fc.tuple(fc.oneof(token.filter((name) => !['content-length', 'transfer-encoding', 'host', 'upgrade', 'connection'].includes(name.toLowerCase())),
      // Ours in any case, and names of the same lengths that are not ours (the rewrite looks names up by length).
      fc.constantFrom('X-Forwarded-For', 'x-forwarded-proto', 'X-FORWARDED-HOST', 'Forwarded', 'fORWARDED', 'X-Forwarded-Fox',
        'X-Forwarded-Prot0', 'Y-Forwarded-Host', 'Forwardex', 'Hosts', 'Hos')), text), { maxLength: 6 }),
  ).map(([host, rest]) => [['Host', host] as [string, string], ...rest]),
  body: fc.oneof(
    fc.constant({ kind: 'none' as const }),
    fc.record({ kind: fc.constant('length' as const), bytes: fc.stringMatching(/^[\s\S]{0,300}$/).map((value) => Buffer.from(value, 'latin1').toString('latin1')) }),
    fc.record({ kind: fc.constant('chunked' as const), chunks: fc.array(fc.stringMatching(/^[\x01-\x7f]{1,60}$/), { maxLength: 4 }) }),
  ),
});

describe('the forwarded-headers stage', () => {
  test('pipelined requests, any split: every head gets ours instead of the client\'s, bodies pass byte for byte', async () => {
    await fc.assert(fc.asyncProperty(fc.array(requestArbitrary, { minLength: 1, maxLength: 5 }), fc.array(fc.nat(), { maxLength: 12 }), async (requests, cuts) => {
      const input = Buffer.from(requests.map(wire).join(''), 'latin1');
      const output = await through(split(input, cuts));
      assert.equal(output, requests.map((request) => expected(request, '127.0.0.1')).join(''));
    }), { numRuns: 300 });
  });

  test('byte at a time, an IPv6 client, empty lines before a request', async () => {
    const input = Buffer.from('GET /a HTTP/1.1\r\nHost: app.localhost\r\nX-Forwarded-For: 6.6.6.6\r\nAccept: */*\r\n\r\n'
      + '\r\nGET /b HTTP/1.1\r\nHost: app.localhost\r\n\r\n', 'latin1');
    const output = await through([...input].map((byte) => Buffer.from([byte])), '::ffff:127.0.0.1');
    assert.equal(output, 'GET /a HTTP/1.1\r\nHost: app.localhost\r\nAccept: */*\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: app.localhost\r\n'
      + 'X-Forwarded-For: 127.0.0.1\r\nForwarded: for=127.0.0.1;host="app.localhost";proto=https\r\n\r\n'
      + 'GET /b HTTP/1.1\r\nHost: app.localhost\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: app.localhost\r\n'
      + 'X-Forwarded-For: 127.0.0.1\r\nForwarded: for=127.0.0.1;host="app.localhost";proto=https\r\n\r\n');
    const v6 = await through([Buffer.from('GET / HTTP/1.1\r\nHost: x.localhost\r\n\r\n')], '::1');
    assert.match(v6, /X-Forwarded-For: ::1\r\nForwarded: for="\[::1\]";host="x\.localhost";proto=https\r\n/);
  });

  test('Host in any case and with blanks around it, no Host, many Hosts on one connection, a bodyless POST', async () => {
    const ours = (host: string): string => `X-Forwarded-Proto: https\r\nX-Forwarded-Host: ${host}\r\nX-Forwarded-For: 127.0.0.1\r\n`
      + `Forwarded: for=127.0.0.1;host="${host}";proto=https\r\n\r\n`;
    assert.equal(await through([Buffer.from('GET / HTTP/1.1\r\nhOsT:\t app.localhost \t\r\nX-Forwarded-Host: evil\r\n\r\n')]),
      `GET / HTTP/1.1\r\nhOsT:\t app.localhost \t\r\n${ours('app.localhost')}`);
    assert.equal(await through([Buffer.from('GET / HTTP/1.0\r\nForwarded: for=6.6.6.6\r\n\r\n')]),
      'GET / HTTP/1.0\r\nX-Forwarded-Proto: https\r\nX-Forwarded-For: 127.0.0.1\r\nForwarded: for=127.0.0.1;proto=https\r\n\r\n');
    // More Host values than the stage keeps lines for, each twice: every head still gets its own.
    const hosts = Array.from({ length: 20 }, (_, i) => `h${i}.localhost`);
    const sequence = [...hosts, ...hosts.reverse()];
    const heads = sequence.map((host) => `POST /${host} HTTP/1.1\r\nHost: ${host}\r\nContent-Length: 0\r\n\r\n`);
    assert.equal(await through(heads.map((head) => Buffer.from(head))),
      sequence.map((host) => `POST /${host} HTTP/1.1\r\nHost: ${host}\r\nContent-Length: 0\r\n${ours(host)}`).join(''));
  });

  test('after an Upgrade request, the rest passes unparsed (WebSocket frames are not HTTP)', async () => {
    const frames = Buffer.from([0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]);
    const head = 'GET /ws HTTP/1.1\r\nHost: app.localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n';
    const output = await through([Buffer.concat([Buffer.from(head), frames.subarray(0, 4)]), frames.subarray(4)]);
    assert.ok(output.startsWith('GET /ws HTTP/1.1\r\nHost: app.localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nX-Forwarded-Proto: https\r\n'));
    assert.ok(Buffer.from(output, 'latin1').subarray(-frames.length).equals(frames));
  });

  test('an Upgrade the dev server declines: the requests after it are marked too, however the bytes are split', async () => {
    const upgrade = 'GET /ws HTTP/1.1\r\nHost: app.localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n';
    const next = 'GET /next HTTP/1.1\r\nHost: app.localhost\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n';
    const ours = 'X-Forwarded-Proto: https\r\nX-Forwarded-Host: app.localhost\r\nX-Forwarded-For: 127.0.0.1\r\n'
      + 'Forwarded: for=127.0.0.1;host="app.localhost";proto=https\r\n\r\n';
    const expected = `${upgrade.slice(0, -2)}${ours}GET /next HTTP/1.1\r\nHost: app.localhost\r\n${ours}`;
    const input = Buffer.from(upgrade + next);
    for (let cut = 1; cut < input.length; cut++) {
      assert.equal(await through([input.subarray(0, cut), input.subarray(cut)]), expected, `cut at ${cut}`);
    }
    assert.equal(await through([...input].map((byte) => Buffer.from([byte]))), expected, 'a byte at a time');
  });

  test('an Upgrade taken passes any masked WebSocket frame, and after CONNECT nothing is read', async () => {
    const upgrade = 'GET /ws HTTP/1.1\r\nHost: app.localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n';
    const marked = Buffer.from(`${upgrade.slice(0, -2)}X-Forwarded-Proto: https\r\nX-Forwarded-Host: app.localhost\r\n`
      + 'X-Forwarded-For: 127.0.0.1\r\nForwarded: for=127.0.0.1;host="app.localhost";proto=https\r\n\r\n');
    // 0x41: a compressed text fragment (RSV1), a capital letter's byte; the mask bit sets the second byte's top bit.
    for (const first of [0x81, 0x82, 0x88, 0x01, 0x41, 0xc1]) {
      const frame = Buffer.from([first, 0x82, 0x11, 0x22, 0x33, 0x44, 0x59, 0x4b]);
      for (const pieces of [[Buffer.concat([Buffer.from(upgrade), frame])], [Buffer.from(upgrade), frame.subarray(0, 1), frame.subarray(1)]]) {
        const output = Buffer.from(await through(pieces), 'latin1');
        assert.ok(output.equals(Buffer.concat([marked, frame])), `frame ${first.toString(16)} in ${pieces.length} pieces`);
      }
    }
    const connect = 'CONNECT app.localhost:443 HTTP/1.1\r\nHost: app.localhost:443\r\n\r\n';
    const tunnelled = 'GET / HTTP/1.1\r\nHost: app.localhost\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n';
    const output = await through([Buffer.from(connect + tunnelled)]);
    assert.ok(output.endsWith(`\r\n\r\n${tunnelled}`), output);
  });

  test('a request llhttp refuses, or a head over the cap, is an error (the connection ends), never passed on unmarked', async () => {
    await assert.rejects(through([Buffer.from('GET / HTTP/1.1\r\nHost: a.localhost\r\n\r\nNOT HTTP AT ALL\r\n\r\n')]), /could not be read/);
    await assert.rejects(through([Buffer.from(`GET / HTTP/1.1\r\nHost: a.localhost\r\nX-Big: ${'x'.repeat(2000)}\r\n\r\n`)], '127.0.0.1', 1024), /larger than 1024/);
    // A folded header line and bare LF line ends (the rewrite relies on llhttp refusing both).
    await assert.rejects(through([Buffer.from('GET / HTTP/1.1\r\nHost: a\r\nForwarded: for=6.6.6.6\r\n ;proto=http\r\n\r\n')]), /could not be read/);
    await assert.rejects(through([Buffer.from('GET / HTTP/1.1\r\nHost: a\nX-Forwarded-For: 6.6.6.6\r\n\r\n')]), /could not be read/);
    // Framing llhttp refuses once the head is read: not even that head is passed on.
    const passed: Buffer[] = [];
    const smuggling = new ForwardedHeaders({ clientAddress: '127.0.0.1', maxHeadSize: 16384 });
    smuggling.on('data', (chunk: Buffer) => passed.push(chunk));
    const refused = once(smuggling, 'error');
    smuggling.write(Buffer.from('POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n'));
    assert.match(String((await refused)[0]), /could not be read/);
    assert.deepEqual(passed, []);
  });
});

/** Resolves every name to 127.0.0.1, as browsers do for *.localhost. */
function loopback(_host: string, options: { all?: boolean }, callback: (...args: unknown[]) => void): void {
  if (options.all) callback(null, [{ address: '127.0.0.1', family: 4 }]);
  else callback(null, '127.0.0.1', 4);
}

/** An upstream that records each request's headers and body and answers with the count so far. */
async function recordingUpstream(t: TestContext): Promise<{ port: number; seen: { headers: IncomingHttpHeaders; body: string }[] }> {
  const seen: { headers: IncomingHttpHeaders; body: string }[] = [];
  const { port } = await startHttpUpstream(t, (req, res) => {
    let bodyText = '';
    req.setEncoding('latin1');
    req.on('data', (chunk: string) => (bodyText += chunk));
    req.on('end', () => {
      seen.push({ headers: req.headers, body: bodyText });
      res.end(`request ${seen.length}`);
    });
  });
  return { port, seen };
}

describe('forwarded headers end to end', () => {
  test('pipelined requests over TLS each reach the dev server marked as HTTPS, the client\'s own claims dropped', async (t) => {
    const upstream = await recordingUpstream(t);
    const { port, splicer, caDir } = await startSplicer(t, `[service.app]\nport = ${upstream.port}\n`);
    await splicer.certificates.authority();
    const requests = `GET /one HTTP/1.1\r\nHost: app.localhost:${port}\r\nX-Forwarded-Proto: http\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n`
      + `POST /two HTTP/1.1\r\nHost: app.localhost:${port}\r\nTransfer-Encoding: chunked\r\nForwarded: for=6.6.6.6\r\n\r\n5\r\nhello\r\n0\r\n\r\n`
      + `GET /three HTTP/1.1\r\nHost: app.localhost:${port}\r\nConnection: close\r\n\r\n`;
    const answer = await httpsRequest(t, port, 'app.localhost', readFileSync(rootFile(caDir), 'utf8'), requests);
    assert.match(answer, /request 3$/);
    assert.equal(upstream.seen.length, 3);
    for (const { headers } of upstream.seen) {
      assert.equal(headers['x-forwarded-proto'], 'https');
      assert.equal(headers['x-forwarded-host'], `app.localhost:${port}`);
      assert.equal(headers['x-forwarded-for'], '127.0.0.1');
      assert.equal(headers.forwarded, `for=127.0.0.1;host="app.localhost:${port}";proto=https`);
    }
    assert.equal(upstream.seen[1]!.body, 'hello');
  });

  test('after an Upgrade the dev server declines, the next request on the connection is marked too', async (t) => {
    const upstream = await recordingUpstream(t);
    const { port, splicer, caDir } = await startSplicer(t, `[service.app]\nport = ${upstream.port}\n`);
    await splicer.certificates.authority();
    // node:http with no 'upgrade' listener answers an Upgrade request as a plain one and keeps the
    // connection; a client sends its next request once it has the answer.
    const socket = tlsConnect({ host: '127.0.0.1', port, servername: 'app.localhost', ca: readFileSync(rootFile(caDir), 'utf8') });
    t.after(() => socket.destroy());
    await once(socket, 'secureConnect');
    socket.write('GET /ws HTTP/1.1\r\nHost: app.localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n');
    assert.match((await nextData(socket, 'the answer to the Upgrade request')).toString('latin1'), /request 1$/);
    socket.write('GET /after HTTP/1.1\r\nHost: app.localhost\r\nX-Forwarded-For: 6.6.6.6\r\nConnection: close\r\n\r\n');
    const answer = (await readAll(socket)).toString('latin1');
    assert.match(answer, /request 2$/);
    assert.equal(upstream.seen.length, 2);
    for (const { headers } of upstream.seen) {
      assert.equal(headers['x-forwarded-proto'], 'https');
      assert.equal(headers['x-forwarded-for'], '127.0.0.1');
    }
  });

  test('forwarded_headers = false leaves the requests as the client sent them', async (t) => {
    const upstream = await recordingUpstream(t);
    const { port, splicer, caDir } = await startSplicer(t, `[service.app]\nport = ${upstream.port}\nforwarded_headers = false\n`);
    await splicer.certificates.authority();
    const answer = await httpsRequest(t, port, 'app.localhost', readFileSync(rootFile(caDir), 'utf8'),
      'GET / HTTP/1.1\r\nHost: app.localhost\r\nX-Forwarded-For: 6.6.6.6\r\nConnection: close\r\n\r\n');
    assert.equal(parseResponse(Buffer.from(answer)).status, 200);
    assert.equal(upstream.seen[0]!.headers['x-forwarded-for'], '6.6.6.6');
    assert.equal(upstream.seen[0]!.headers['x-forwarded-proto'], undefined);
  });

  test('wss:// reaches a plain ws:// dev server and echoes both ways', async (t) => {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await once(wss, 'listening');
    t.after(() => new Promise<void>((resolve) => {
      for (const client of wss.clients) client.terminate();
      wss.close(() => resolve());
    }));
    let upgradeHeaders: IncomingHttpHeaders | undefined;
    wss.on('connection', (socket, req) => {
      upgradeHeaders = req.headers;
      socket.on('message', (data) => socket.send(`echo ${data.toString()}`));
    });
    const { port, splicer, caDir } = await startSplicer(t, `[service.live]\nport = ${(wss.address() as { port: number }).port}\n`);
    await splicer.certificates.authority();
    const client = new WebSocket(`wss://live.localhost:${port}/socket`, { ca: readFileSync(rootFile(caDir)), lookup: loopback } as WebSocket.ClientOptions);
    t.after(() => client.terminate());
    await once(client, 'open');
    for (const message of ['one', 'two', 'x'.repeat(100_000)]) {
      client.send(message);
      const [reply] = await once(client, 'message');
      assert.equal(String(reply), `echo ${message}`);
    }
    assert.equal(upgradeHeaders?.['x-forwarded-proto'], 'https');
  });
});
