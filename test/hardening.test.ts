// Hostile and broken clients and upstreams: timeouts, floods, resets, and what is never followed.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import {
  CLI, closed, closeServer, connectTo, delay, exchange, getHead, listenOn, parseResponse, readAll, startHttpUpstream, startSplicer,
} from './helpers.js';

describe('timeouts', () => {
  test('a head not complete within head_timeout gets 408; a silent connection is just closed', async (t) => {
    const upstream = await startHttpUpstream(t);
    const { port } = await startSplicer(t, `[service.app]\nport = ${upstream.port}\n`, { top: 'head_timeout = 0.3' });
    const slow = await connectTo(t, port);
    const reply = readAll(slow);
    slow.write('GET / HTTP/1.1\r\nHost: app.loc');
    const response = parseResponse(await reply);
    assert.equal(response.status, 408);
    assert.match(response.body, /not complete within 0\.3 s/);
    const silent = await connectTo(t, port);
    assert.equal((await readAll(silent)).length, 0);
  });

  test('the head timeout follows a monotonic clock: a wall clock stepped back 60 s or forward 60 s changes nothing', async (t) => {
    // A test cannot step the system clock; Date.now, which the sweep would read, can be stepped in-process.
    const realNow = Date.now;
    t.after(() => {
      Date.now = realNow;
    });
    const upstream = await startHttpUpstream(t);
    const { port } = await startSplicer(t, `[service.app]\nport = ${upstream.port}\n`, { top: 'head_timeout = 1' });
    for (const step of [-60_000, 60_000]) {
      const slow = await connectTo(t, port);
      const reply = readAll(slow);
      slow.write('GET / HTTP/1.1\r\nHost: app.loc');
      await delay(100);
      Date.now = () => realNow() + step;
      const began = performance.now();
      const timeout = setTimeout(() => slow.destroy(), 5000);
      const raw = await reply;
      clearTimeout(timeout);
      Date.now = realNow;
      const waited = performance.now() - began;
      assert.ok(raw.length > 0, `no 408 within 5 s of a clock step of ${step / 1000} s`);
      assert.equal(parseResponse(raw).status, 408);
      // 1 s after the connection (and a sweep every 250 ms), not at once nor 60 s later.
      assert.ok(waited >= 600 && waited < 2500, `408 after ${Math.round(waited)} ms with a clock step of ${step / 1000} s`);
    }
  });

  test('hundreds of slowloris connections do not keep real requests from being served', async (t) => {
    const upstream = await startHttpUpstream(t);
    const { port } = await startSplicer(t, `[service.app]\nport = ${upstream.port}\n`, { top: 'head_timeout = 2' });
    const loris = await Promise.all(Array.from({ length: 300 }, async () => {
      const socket = await connectTo(t, port);
      socket.on('error', () => {});
      socket.write('GET / HTTP/1.1\r\nX-Slow: ');
      return socket;
    }));
    for (let i = 0; i < 20; i++) {
      assert.equal(parseResponse(await exchange(t, port, [getHead('app.localhost')])).status, 200);
    }
    for (const socket of loris) assert.equal(socket.destroyed, false, 'still waiting: not yet timed out');
  });

  test('an upstream that never accepts (SYNs dropped) is answered 504 after connect_timeout', async (t) => {
    // A listener that never calls accept(): once its backlog is full the kernel drops new SYNs.
    const holder = spawn('python3', ['-c', [
      'import socket, sys, time',
      's = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(0)',
      'print(s.getsockname()[1], flush=True); time.sleep(60)',
    ].join('\n')], { stdio: ['ignore', 'pipe', 'inherit'] });
    t.after(() => holder.kill('SIGKILL'));
    const upstreamPort = Number(await new Promise<string>((resolve) => holder.stdout.once('data', (chunk: Buffer) => resolve(chunk.toString()))));
    const fillers = Array.from({ length: 4 }, () => connect(upstreamPort, '127.0.0.1').on('error', () => {}));
    t.after(() => fillers.forEach((socket) => socket.destroy()));
    await delay(200);
    const { port } = await startSplicer(t, `[service.stuck]\nport = ${upstreamPort}\n`, { top: 'connect_timeout = 0.5' });
    const response = parseResponse(await exchange(t, port, [getHead('stuck.localhost')]));
    assert.equal(response.status, 504);
    assert.match(response.body, new RegExp(`127\\.0\\.0\\.1:${upstreamPort} did not accept the connection in time`));
  });
});

describe('upstream failures mid-stream', () => {
  test('an upstream that closes half-way through a response closes the client promptly', async (t) => {
    const upstream = createServer((socket) => {
      socket.once('data', () => socket.end('HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nonly part'));
    });
    await listenOn(upstream);
    t.after(() => closeServer(upstream));
    const { port } = await startSplicer(t, `[service.app]\nport = ${(upstream.address() as AddressInfo).port}\n`);
    const raw = await exchange(t, port, [getHead('app.localhost')]);
    assert.match(raw.toString(), /only part$/);
  });

  test('an upstream process killed mid-response is passed on as a close', async (t) => {
    const child = spawn(process.execPath, ['-e', `
      require('net').createServer((s) => s.once('data', () => { s.write('HTTP/1.1 200 OK\\r\\nContent-Length: 99\\r\\n\\r\\npartial'); }))
        .listen(0, '127.0.0.1', function () { console.log(this.address().port); });
    `], { stdio: ['ignore', 'pipe', 'inherit'] });
    t.after(() => child.kill('SIGKILL'));
    const upstreamPort = Number(await new Promise<string>((resolve) => child.stdout.once('data', (chunk: Buffer) => resolve(chunk.toString()))));
    const { port } = await startSplicer(t, `[service.app]\nport = ${upstreamPort}\n`);
    const client = await connectTo(t, port);
    client.on('error', () => {});
    const done = closed(client);
    let received = '';
    client.on('data', (chunk: Buffer) => {
      received += chunk.toString();
      if (received.endsWith('partial')) child.kill('SIGKILL');
    });
    client.write(getHead('app.localhost'));
    await done;
    assert.match(received, /partial$/);
  });
});

describe('never an open proxy', () => {
  test('a Host or absolute-form target naming an address, another port or an unknown name gets 404', async (t) => {
    const upstream = await startHttpUpstream(t);
    const { port } = await startSplicer(t, `[service.app]\nport = ${upstream.port}\n`);
    const heads = [
      getHead(`127.0.0.1:${upstream.port}`),
      getHead(`localhost:${upstream.port}`),
      getHead('evil.example'), // DNS rebinding: a name that resolves to 127.0.0.1 reaches nothing
      `GET http://127.0.0.1:${upstream.port}/ HTTP/1.1\r\nHost: app.localhost\r\nConnection: close\r\n\r\n`,
      `GET http://[::1]:${upstream.port}/ HTTP/1.1\r\nHost: app.localhost\r\nConnection: close\r\n\r\n`,
    ];
    for (const head of heads) {
      assert.equal(parseResponse(await exchange(t, port, [head])).status, 404, head);
    }
    // A configured name on another port still goes to the configured upstream only.
    const body = JSON.parse(parseResponse(await exchange(t, port, [getHead('app.localhost:1')])).body) as { port: number };
    assert.equal(body.port, upstream.port);
  });

  test('a 404 lists the services for local names only, so a rebound domain cannot read them', async (t) => {
    const upstream = await startHttpUpstream(t);
    const { port } = await startSplicer(t, `[service.secret-project]\nport = ${upstream.port}\n`
      + `[service.corp]\nhost = "api.mycorp.test"\nport = ${upstream.port}\n[service.site]\nhost = "mysite.com"\nport = ${upstream.port}\n`
      + `[service.shop]\nhost = "myshop.co.uk"\nport = ${upstream.port}\n[service.api]\nhost = "api.mycorp.com"\nport = ${upstream.port}\n`);
    const listing = async (host: string): Promise<boolean> => {
      const answer = parseResponse(await exchange(t, port, [getHead(host)]));
      assert.equal(answer.status, 404, host);
      return /secret-project/.test(answer.body);
    };
    // DNS rebinding: the page's own name, pointed at 127.0.0.1.
    // Siblings under public names are anyone's to register, two-label suffixes (co.uk) included.
    for (const host of ['evil.example.com', 'rebind.attacker.net', 'evil.com', 'mysite.com.evil.net', 'attacker.co.uk', 'evil.mycorp.com']) {
      assert.equal(await listing(host), false, host);
    }
    // A developer's typo: addresses, .localhost names, siblings under a parent nobody else can register.
    for (const host of ['127.0.0.1', '[::1]', 'localhost', 'typo.localhost', 'web.mycorp.test', 'www.mysite.com', 'v2.api.mycorp.com']) {
      assert.equal(await listing(host), true, host);
    }
  });
});

describe('a running norikae under a flood', () => {
  test('thousands of random, mutated and reset connections: it keeps serving and its descriptors return to where they were', async (t) => {
    const upstream = await startHttpUpstream(t);
    const dir = mkdtempSync(join(tmpdir(), 'norikae-flood-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(join(dir, 'norikae.toml'), `head_timeout = 1\n[service.app]\nport = ${upstream.port}\n`);
    const child = spawn(process.execPath, [CLI, '--listen', '127.0.0.1:0'], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, XDG_STATE_HOME: dir } });
    t.after(() => child.kill('SIGKILL'));
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    while (!/listening on http:\/\/127\.0\.0\.1:(\d+)/.test(stderr)) {
      assert.equal(child.exitCode, null, stderr);
      await delay(20);
    }
    const port = Number(/listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(stderr)![1]);
    const descriptors = (): number => readdirSync(`/proc/${child.pid}/fd`).length;
    assert.equal(parseResponse(await exchange(t, port, [getHead('app.localhost')])).status, 200);
    await delay(100);
    const before = descriptors();

    const valid = Buffer.from(getHead('app.localhost', '/x', 'Accept: text/html\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n'));
    let seed = 42;
    const random = (n: number): number => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n);
    const oneConnection = (i: number): Promise<void> => new Promise((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.on('error', () => {});
      socket.on('close', () => resolve());
      socket.on('data', () => {});
      socket.setTimeout(5000, () => socket.destroy());
      socket.on('connect', () => {
        const bytes = Buffer.from(valid);
        switch (i % 4) {
          case 0: // random garbage
            socket.end(randomBytes(1 + random(2000)));
            break;
          case 1: // a mutated real head
            for (let k = 0; k < 1 + random(4); k++) bytes[random(bytes.length)] = random(256);
            socket.end(bytes);
            break;
          case 2: // a reset half-way through a head
            socket.write(bytes.subarray(0, random(bytes.length)));
            setTimeout(() => socket.resetAndDestroy(), random(5));
            break;
          default: // a valid request
            socket.end(getHead('app.localhost'));
        }
      });
    });
    const total = 2000;
    let next = 0;
    await Promise.all(Array.from({ length: 50 }, async () => {
      while (next < total) await oneConnection(next++);
    }));

    assert.equal(child.exitCode, null, `norikae exited: ${stderr}`);
    assert.equal(parseResponse(await exchange(t, port, [getHead('app.localhost')])).status, 200);
    // Answered connections linger up to 2 s for the client to read; then all must be gone.
    let now = descriptors();
    for (let i = 0; i < 100 && now > before; i++) {
      await delay(50);
      now = descriptors();
    }
    assert.equal(now, before, 'descriptors leaked');
    assert.doesNotMatch(stderr, /internal error/);
  });
});
