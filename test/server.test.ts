// The data path end to end: real upstream servers, a real SpliceServer, raw sockets.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { request } from 'node:http';
import { connect, createServer, type Socket } from 'node:net';
import { describe, test, type TestContext } from 'node:test';
import { promisify } from 'node:util';
import { WebSocket, WebSocketServer } from 'ws';
import { TlsAlert } from '../lib/answers.js';
import { dial } from '../lib/dial.js';
import type { UpstreamConnector } from '../lib/server.js';
import {
  captureClientHello, closed, closeServer, connectTo, delay, exchange, freePort, getHead, listenOn, parseResponse, readAll, startHttpUpstream,
  startSplicer, waitFor,
} from './helpers.js';

/** Two upstreams and a splicer routing app/*.app/api hosts to them. */
async function twoServices(t: TestContext) {
  const app = await startHttpUpstream(t);
  const api = await startHttpUpstream(t);
  const splicer = await startSplicer(t, `
[service.app]
host = ["app.localhost", "*.app.localhost"]
port = ${app.port}
[service.api]
host = "api.app.localhost"
port = ${api.port}
`);
  return { app, api, ...splicer };
}

async function get(t: TestContext, port: number, host: string, path = '/'): Promise<{ status: number; json: Record<string, unknown> }> {
  const response = parseResponse(await exchange(t, port, [getHead(host, path)]));
  return { status: response.status, json: JSON.parse(response.body) as Record<string, unknown> };
}

describe('routing', () => {
  test('by exact name, wildcard, case and port, with the head forwarded unchanged', async (t) => {
    const { app, api, port } = await twoServices(t);
    const exact = await get(t, port, 'app.localhost:8080', '/a?b=1');
    assert.deepEqual(exact.json, { method: 'GET', url: '/a?b=1', host: 'app.localhost:8080', port: app.port });
    assert.equal((await get(t, port, 'API.App.Localhost.')).json.port, api.port);
    assert.equal((await get(t, port, 'feature-x.app.localhost')).json.port, app.port);
    assert.equal((await get(t, port, 'v2.api.app.localhost')).json.port, app.port, 'wildcard of app, not api');
  });

  test('an absolute-form target routes by its authority, not by Host', async (t) => {
    const { api, port } = await twoServices(t);
    const raw = await exchange(t, port, ['GET http://api.app.localhost:9/x HTTP/1.1\r\nHost: app.localhost\r\nConnection: close\r\n\r\n']);
    const json = JSON.parse(parseResponse(raw).body) as Record<string, unknown>;
    assert.equal(json.port, api.port);
    assert.equal(json.url, 'http://api.app.localhost:9/x');
  });

  test('HTTP/1.0 without Host is refused, with Host is routed', async (t) => {
    const { app, port } = await twoServices(t);
    assert.equal(parseResponse(await exchange(t, port, ['GET / HTTP/1.0\r\n\r\n'])).status, 400);
    const raw = await exchange(t, port, ['GET / HTTP/1.0\r\nHost: app.localhost\r\n\r\n']);
    assert.equal((JSON.parse(parseResponse(raw).body) as { port: number }).port, app.port);
  });
});

describe('opaque splice', () => {
  test('keep-alive: several requests on one connection all reach the service routed first', async (t) => {
    const { app, port } = await twoServices(t);
    const socket = await connectTo(t, port);
    const responses: string[] = [];
    let buffered = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      buffered += chunk;
      for (let end; (end = buffered.indexOf('}')) !== -1;) {
        responses.push(buffered.slice(0, end + 1));
        buffered = buffered.slice(end + 1);
      }
    });
    for (let i = 0; i < 3; i++) {
      // Only the first request is routed: later ones go down the same pipe whatever their Host.
      socket.write(`GET /${i} HTTP/1.1\r\nHost: ${i === 0 ? 'app.localhost' : 'api.app.localhost'}\r\n\r\n`);
      while (responses.length <= i) await delay(5);
    }
    const urls = responses.map((r) => JSON.parse(r.slice(r.indexOf('{'))) as { url: string; port: number });
    assert.deepEqual(urls.map((u) => u.url), ['/0', '/1', '/2']);
    assert.ok(urls.every((u) => u.port === app.port));
  });

  test('pipelining: requests written at once come back in order', async (t) => {
    const { port } = await twoServices(t);
    const heads = [0, 1, 2, 3].map((i) => `GET /p${i} HTTP/1.1\r\nHost: app.localhost\r\n${i === 3 ? 'Connection: close\r\n' : ''}\r\n`);
    const raw = (await exchange(t, port, [heads.join('')])).toString('latin1');
    assert.deepEqual([...raw.matchAll(/"url":"([^"]+)"/g)].map((m) => m[1]), ['/p0', '/p1', '/p2', '/p3']);
  });

  test('multi-MiB request and response bodies arrive intact (by hash)', async (t) => {
    const upload = randomBytes(5 * 1024 * 1024 + 17);
    const download = randomBytes(7 * 1024 * 1024 + 3);
    const upstream = await startHttpUpstream(t, (req, res) => {
      const hash = createHash('sha256');
      req.on('data', (chunk: Buffer) => hash.update(chunk));
      req.on('end', () => {
        res.writeHead(200, { 'x-upload-sha256': hash.digest('hex'), 'content-length': download.length });
        res.end(download);
      });
    });
    const { port } = await startSplicer(t, `[service.big]\nhost = "big.localhost"\nport = ${upstream.port}\n`);
    const response = await new Promise<{ uploadHash: string; body: Buffer }>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, method: 'POST', path: '/', headers: { host: 'big.localhost', 'content-length': upload.length } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ uploadHash: String(res.headers['x-upload-sha256']), body: Buffer.concat(chunks) }));
      });
      req.on('error', reject);
      req.end(upload);
    });
    assert.equal(response.uploadHash, createHash('sha256').update(upload).digest('hex'));
    assert.equal(createHash('sha256').update(response.body).digest('hex'), createHash('sha256').update(download).digest('hex'));
  });

  test('a WebSocket session passes through the 101 upgrade', async (t) => {
    const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    t.after(() => new Promise<void>((resolve) => wss.close(() => resolve())));
    await once(wss, 'listening');
    wss.on('connection', (ws) => ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary })));
    const { port } = await startSplicer(t, `[service.ws]\nhost = "ws.localhost"\nport = ${(wss.address() as { port: number }).port}\n`);

    const ws = new WebSocket(`ws://127.0.0.1:${port}/socket`, { headers: { host: 'ws.localhost' } });
    t.after(() => ws.terminate());
    await once(ws, 'open');
    const big = randomBytes(3 * 1024 * 1024);
    const replies: Buffer[] = [];
    ws.on('message', (data: Buffer) => replies.push(data));
    ws.send('hello');
    ws.send(big);
    while (replies.length < 2) await delay(5);
    assert.equal(replies[0]!.toString(), 'hello');
    assert.ok(replies[1]!.equals(big));
    ws.close(1000, 'done');
    const [code] = await once(ws, 'close');
    assert.equal(code, 1000);
  });

  test('a head split at every byte is routed and forwarded byte for byte', async (t) => {
    const received: Buffer[] = [];
    const upstream = createServer((socket) => {
      const chunks: Buffer[] = [];
      socket.on('data', (chunk: Buffer) => chunks.push(chunk));
      socket.on('end', () => {
        received.push(Buffer.concat(chunks));
        socket.end('HTTP/1.1 204 No Content\r\n\r\n');
      });
    });
    await listenOn(upstream);
    t.after(() => closeServer(upstream));
    const { port } = await startSplicer(t, `[service.raw]\nhost = "raw.localhost"\nport = ${(upstream.address() as { port: number }).port}\n`);
    const head = Buffer.from('POST /split HTTP/1.1\r\nHost: raw.localhost\r\nContent-Length: 4\r\nX-Obs: \xe9\x80\r\n\r\nbody', 'latin1');
    for (let cut = 1; cut < head.length; cut++) {
      const socket = await connectTo(t, port, { allowHalfOpen: true });
      const reply = readAll(socket);
      socket.write(head.subarray(0, cut));
      await delay(2);
      socket.end(head.subarray(cut));
      assert.match((await reply).toString('latin1'), /^HTTP\/1\.1 204 /, `cut at ${cut}`);
      assert.ok(received.at(-1)!.equals(head), `cut at ${cut}: the upstream got other bytes`);
    }
  });

  test('half-close: the client ends its side and still receives the whole answer', async (t) => {
    const upstream = createServer({ allowHalfOpen: true }, (socket) => {
      const chunks: Buffer[] = [];
      socket.on('data', (chunk: Buffer) => chunks.push(chunk));
      // Answers only after the client's FIN has travelled through the splice.
      socket.on('end', async () => {
        await delay(20);
        socket.end(`HTTP/1.1 200 OK\r\n\r\nsaw ${Buffer.concat(chunks).length} bytes`);
      });
    });
    await listenOn(upstream);
    t.after(() => closeServer(upstream));
    const { port } = await startSplicer(t, `[service.h]\nhost = "h.localhost"\nport = ${(upstream.address() as { port: number }).port}\n`);
    const socket = await connectTo(t, port, { allowHalfOpen: true });
    const reply = readAll(socket);
    const head = 'GET / HTTP/1.1\r\nHost: h.localhost\r\n\r\n';
    socket.end(head);
    assert.equal((await reply).toString(), `HTTP/1.1 200 OK\r\n\r\nsaw ${head.length} bytes`);
  });

  test('backpressure: a client that stops reading stops the upstream, and norikae holds no more than a bounded buffer', async (t) => {
    const total = 64 * 1024 * 1024;
    let upstreamSocket: Socket | undefined;
    const upstream = createServer((socket) => {
      upstreamSocket = socket;
      socket.on('error', () => {});
      // 64 MiB at once, once the head is in: far more than every socket buffer on the way together.
      socket.once('data', () => socket.write(Buffer.alloc(total, 0x61)));
    });
    await listenOn(upstream);
    t.after(() => closeServer(upstream));
    const { port } = await startSplicer(t, `[service.b]\nhost = "b.localhost"\nport = ${(upstream.address() as { port: number }).port}\n`);
    const socket = await connectTo(t, port);
    socket.on('error', () => {});
    let received = 0;
    let stopped = false;
    socket.on('data', (chunk: Buffer) => {
      received += chunk.length;
      // Reads the first MiB, then stops reading until resumed below.
      if (!stopped && received >= 1024 * 1024) {
        stopped = true;
        socket.pause();
      }
    });
    socket.write(getHead('b.localhost'));
    await waitFor(() => received >= 1024 * 1024, 'the first MiB');
    // Let whatever would flow, flow: without backpressure norikae would take all 64 MiB meanwhile.
    await delay(1500);
    const left = upstreamSocket!.writableLength;
    assert.ok(left > total / 2, `the upstream could write all but ${left} bytes: norikae read what the client did not`);
    // And it resumes: the client reads again and everything arrives.
    socket.resume();
    await waitFor(() => received === total, `all 64 MiB (got ${received})`, 30_000);
    // The upstream's server closes (an after-hook) only once its connection is gone.
    socket.destroy();
    upstreamSocket!.destroy();
  });

  test('a reset from the upstream closes the client, and a client reset closes the upstream', async (t) => {
    const upstreamSockets: Socket[] = [];
    const upstream = createServer({ allowHalfOpen: true }, (socket) => {
      upstreamSockets.push(socket);
      socket.on('error', () => {});
    });
    await listenOn(upstream);
    t.after(() => closeServer(upstream));
    const { port } = await startSplicer(t, `[service.r]\nhost = "r.localhost"\nport = ${(upstream.address() as { port: number }).port}\n`);

    const first = await connectTo(t, port);
    first.on('error', () => {});
    first.write(getHead('r.localhost'));
    while (upstreamSockets.length < 1) await delay(5);
    const firstClosed = closed(first);
    upstreamSockets[0]!.resetAndDestroy();
    await firstClosed;

    const second = await connectTo(t, port);
    second.write(getHead('r.localhost'));
    while (upstreamSockets.length < 2) await delay(5);
    const upstreamClosed = closed(upstreamSockets[1]!);
    second.resetAndDestroy();
    await upstreamClosed;
  });
});

describe('our answers', () => {
  test('404 lists the configured services as links on the port used, HTML for browsers', async (t) => {
    const { port } = await twoServices(t);
    const html = parseResponse(await exchange(t, port, [getHead('nope.localhost', '/', 'Accept: text/html,*/*\r\n')]));
    assert.equal(html.status, 404);
    assert.equal(html.headers['content-type'], 'text/html; charset=utf-8');
    assert.equal(html.headers.connection, 'close');
    assert.equal(Number(html.headers['content-length']), Buffer.byteLength(html.body));
    assert.match(html.body, /No service is configured for nope\.localhost/);
    assert.match(html.body, new RegExp(`<a href="http://app\\.localhost:${port}/">app\\.localhost</a>`));
    assert.match(html.body, new RegExp(`<a href="http://api\\.app\\.localhost:${port}/">`));
    assert.match(html.body, /<code>\*\.app\.localhost<\/code>/);
    const text = parseResponse(await exchange(t, port, [getHead('127.0.0.1')]));
    assert.equal(text.status, 404);
    assert.equal(text.headers['content-type'], 'text/plain; charset=utf-8');
    assert.match(text.body, new RegExp(`http://app\\.localhost:${port}/`));
  });

  test('400 for malformed heads and missing or duplicate Host', async (t) => {
    const { port } = await twoServices(t);
    const cases: [string, RegExp][] = [
      ['GARBAGE\r\n\r\n', /malformed/],
      ['GET / HTTP/1.1\r\nBad Header\r\n\r\n', /malformed/],
      ['GET / HTTP/1.1\r\n\r\n', /no Host header/],
      ['GET / HTTP/1.1\r\nHost: app.localhost\r\nHost: app.localhost\r\n\r\n', /more than one Host/],
      ['GET / HTTP/1.1\r\nHost: a b\r\n\r\n', /not a valid host/],
      ['GET / HTTP/1.1\r\nHost:\r\n\r\n', /not a valid host|no Host/],
      ['GET foo HTTP/1.1\r\nHost: app.localhost\r\n\r\n', /malformed \(Invalid characters in url\)/],
      ['GET ftp://app.localhost/ HTTP/1.1\r\nHost: app.localhost\r\n\r\n', /not a path or an http URL/],
      ['GET http://user@app.localhost/ HTTP/1.1\r\nHost: app.localhost\r\n\r\n', /user info/],
      ['PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', /HTTP\/2 with prior knowledge/],
    ];
    for (const [head, reason] of cases) {
      const response = parseResponse(await exchange(t, port, [head]));
      assert.equal(response.status, 400, JSON.stringify(head));
      assert.match(response.body, reason, JSON.stringify(head));
    }
  });

  test('405 for CONNECT and 505 for other HTTP versions', async (t) => {
    const { port } = await twoServices(t);
    const connect = parseResponse(await exchange(t, port, ['CONNECT app.localhost:443 HTTP/1.1\r\nHost: app.localhost:443\r\n\r\n']));
    assert.equal(connect.status, 405);
    assert.match(connect.body, /not a forward proxy/);
    const v2 = parseResponse(await exchange(t, port, ['GET / HTTP/2.0\r\nHost: app.localhost\r\n\r\n']));
    assert.equal(v2.status, 505);
  });

  test('431 once the head passes the cap, even if the client keeps sending', async (t) => {
    const { port } = await twoServices(t);
    const socket = await connectTo(t, port);
    const reply = readAll(socket);
    socket.write('GET / HTTP/1.1\r\nHost: app.localhost\r\n');
    const filler = `X-Filler: ${'x'.repeat(1000)}\r\n`;
    for (let i = 0; i < 20 && socket.writable; i++) {
      socket.write(filler);
      await delay(1);
    }
    const response = parseResponse(await reply);
    assert.equal(response.status, 431);
    assert.match(response.body, /larger than 16384 bytes/);
  });

  test('a head of exactly the cap is accepted, one byte more is 431', async (t) => {
    const { port } = await startSplicer(t, `[service.app]\nhost = "app.localhost"\nport = ${(await startHttpUpstream(t)).port}\n`, { top: 'max_head_size = 1024' });
    const base = 'GET / HTTP/1.1\r\nHost: app.localhost\r\nConnection: close\r\nX-Pad: \r\n\r\n';
    const fit = base.replace('X-Pad: ', `X-Pad: ${'p'.repeat(1024 - base.length)}`);
    assert.equal(fit.length, 1024);
    assert.equal(parseResponse(await exchange(t, port, [fit])).status, 200);
    const over = base.replace('X-Pad: ', `X-Pad: ${'p'.repeat(1025 - base.length)}`);
    assert.equal(parseResponse(await exchange(t, port, [over])).status, 431);
  });

  test('502 when nothing listens on the upstream port, saying which and how to add a command', async (t) => {
    const dead = await freePort();
    const { port } = await startSplicer(t, `[service.off]\nhost = "off.localhost"\nport = ${dead}\n`);
    const response = parseResponse(await exchange(t, port, [getHead('off.localhost')]));
    assert.equal(response.status, 502);
    assert.match(response.body, new RegExp(`127\\.0\\.0\\.1:${dead} \\(connection refused\\)`));
    assert.match(response.body, /command/);
  });

  test('a client that closes before its head is complete gets 400, or nothing if it sent nothing', async (t) => {
    const { port } = await twoServices(t);
    const partial = await connectTo(t, port, { allowHalfOpen: true });
    const reply = readAll(partial);
    partial.end('GET / HTTP/1.1\r\nHost: app.loc');
    const response = parseResponse(await reply);
    assert.equal(response.status, 400);
    assert.match(response.body, /closed before the request head was complete/);
    const silent = await connectTo(t, port, { allowHalfOpen: true });
    const nothing = readAll(silent);
    silent.end();
    assert.equal((await nothing).length, 0);
  });
});

describe('a failure on a routing path is answered, never left unhandled', () => {
  /** A connector with a bug per service; `ok` dials its port. */
  const buggyConnector: UpstreamConnector = {
    connect(service) {
      switch (service.name) {
        case 'throws':
        case 'raw':
          throw new Error(`connector bug: thrown for ${service.name}`);
        case 'rejects':
          return Promise.reject(new Error('connector bug: rejected'));
        case 'nothing':
          // Not even an Error: what a bug may reject with.
          return Promise.reject(undefined);
        default:
          return dial('127.0.0.1', service.port!, 2000);
      }
    },
  };

  test('a connector that throws or rejects with no NorikaeError, a throwing dashboard: HTTP, TLS and TCP each get an answer', async (t) => {
    const unhandled: unknown[] = [];
    let failNow: (reason: unknown) => void = () => {};
    const failed = new Promise<never>((_, reject) => (failNow = reject));
    failed.catch(() => {});
    const onUnhandled = (reason: unknown): void => {
      unhandled.push(reason);
      failNow(new Error(`unhandled rejection: ${String(reason)}`));
    };
    process.on('unhandledRejection', onUnhandled);
    t.after(() => process.off('unhandledRejection', onUnhandled));
    /** `answer`, or a rejection as soon as an unhandled one is seen (an unanswered client would wait forever). */
    const answered = <T>(answer: Promise<T>): Promise<T> => Promise.race([answer, failed]);

    const upstream = await startHttpUpstream(t);
    const rawListen = await freePort();
    const throwingDashboard = { accept(): void { throw new Error('dashboard bug'); } };
    const { port, log } = await startSplicer(t, '[service.throws]\nport = 1\ntls = "passthrough"\n[service.rejects]\nport = 1\n[service.nothing]\nport = 1\n'
      + `[service.raw]\nport = 1\nlisten = ${rawListen}\n[service.ok]\nport = ${upstream.port}\n`, { connector: buggyConnector, dashboard: throwingDashboard });

    const http = async (host: string): Promise<{ status: number; body: string }> => parseResponse(await answered(exchange(t, port, [getHead(host)])));
    const thrown = await http('throws.localhost');
    assert.equal(thrown.status, 502);
    assert.match(thrown.body, /connector bug: thrown for throws/);
    assert.equal((await http('rejects.localhost')).status, 502);
    assert.equal((await http('nothing.localhost')).status, 502);
    const dashboard = await http('norikae.localhost');
    assert.equal(dashboard.status, 500);
    assert.match(dashboard.body, /internal error/i);

    const hello = await captureClientHello({ servername: 'throws.localhost' });
    const tls = await connectTo(t, port);
    const alert = readAll(tls);
    tls.write(hello);
    assert.deepEqual([...await answered(alert)], [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, TlsAlert.INTERNAL_ERROR]);

    // Reset, as soon as it is accepted: the reset may come before the client has seen its connect.
    const raw = connect({ host: '127.0.0.1', port: rawListen });
    t.after(() => raw.destroy());
    const rawData: Buffer[] = [];
    let rawError: NodeJS.ErrnoException | undefined;
    raw.on('data', (chunk: Buffer) => rawData.push(chunk));
    raw.on('error', (err) => (rawError = err));
    await answered(closed(raw));
    assert.equal(rawError?.code, 'ECONNRESET');
    assert.deepEqual(rawData, []);

    // Each bug was logged with its stack, once per connection.
    for (const what of [/to throws: Error: connector bug: thrown for throws\n\s+at /, /to rejects: Error: connector bug: rejected/,
      /to nothing: undefined/, /routing a connection: Error: dashboard bug/, /to raw: Error: connector bug: thrown for raw/]) {
      assert.ok(log.lines.some((line) => line.startsWith('error: internal error while routing a connection') && what.test(line)), `${what} in ${log.lines.join('\n')}`);
    }
    assert.ok(log.lines.some((line) => line === 'warning: throws: a TLS connection was dropped: connector bug: thrown for throws'));
    assert.ok(log.lines.some((line) => line === 'warning: raw: a TCP connection was dropped: connector bug: thrown for raw'));

    // And the server still serves.
    const ok = await http('ok.localhost');
    assert.equal(ok.status, 200);
    assert.equal((JSON.parse(ok.body) as { port: number }).port, upstream.port);
    await delay(10); // one more turn of the event loop for a late rejection
    assert.deepEqual(unhandled, []);
  });
});

describe('lifecycle', () => {
  test('listen() has compiled the head parser before it resolves, so the first client does not wait for it', async () => {
    // A process of its own: in this one, earlier tests have long loaded the parser.
    const lib = (file: string): string => JSON.stringify(new URL(`../lib/${file}`, import.meta.url).href);
    const script = `
      const { parseConfig } = await import(${lib('config-file.js')});
      const { parserLoaded } = await import(${lib('llhttp.js')});
      const { SpliceServer } = await import(${lib('server.js')});
      const config = parseConfig('listen = "127.0.0.1:0"', '/test/norikae.toml');
      const quiet = { info() {}, warn() {}, error() {} };
      const server = new SpliceServer(config, { log: quiet, connector: { connect: () => Promise.reject(new Error('unused')) } });
      const before = parserLoaded();
      await server.listen();
      const after = parserLoaded();
      await server.close();
      process.stdout.write(JSON.stringify({ before, after }));
    `;
    const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '--eval', script]);
    assert.deepEqual(JSON.parse(stdout), { before: false, after: true });
  });

  test('close() stops accepting and ends open connections', async (t) => {
    const { splicer, port } = await twoServices(t);
    const idle = await connectTo(t, port);
    const closed = once(idle, 'close');
    await splicer.close();
    await closed;
    await assert.rejects(connectTo(t, port), /ECONNREFUSED/);
  });
});
