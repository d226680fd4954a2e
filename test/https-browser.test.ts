// HTTPS in a real browser: Debian's Chromium, with the local CA's root added to the NSS database
// of a temporary HOME (as `norikae-splice trust` does), loads https://app.localhost:PORT/ from a
// plain-HTTP dev server with no certificate error, in a secure context; a wss:// echo round-trips;
// and a form POST reaches a dev server that checks Origin against X-Forwarded-Proto (as Django's
// CSRF check does behind a proxy). Skipped without Chromium or certutil (failed in CI).

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { chromium } from 'playwright-core';
import { WebSocketServer } from 'ws';
import { rootFile } from '../lib/local-ca.js';
import { CHROMIUM_ARGS, chooseChromium, chooseTool } from './chromium.js';
import { closeServer, listenOn, startSplicer } from './helpers.js';

const CHROMIUM = chooseChromium(process.env);
const CERTUTIL = chooseTool(process.env, 'certutil', 'apt-get install libnss3-tools');
const skip = ('skip' in CHROMIUM && CHROMIUM.skip) || CERTUTIL.skip;

const PAGE = `<!doctype html><title>app</title>
<form method="post" action="/submit"><input name="note" value="hello"><button>send</button></form>`;

describe('HTTPS in a browser', () => {
  test('loads over HTTPS with no certificate error, is a secure context, echoes over wss:// and posts a same-origin form', { skip }, async (t) => {
    if (!('executable' in CHROMIUM)) assert.fail('fail' in CHROMIUM ? CHROMIUM.fail : CHROMIUM.skip);
    if (CERTUTIL.fail) assert.fail(CERTUTIL.fail);

    // The dev server: plain HTTP, with a CSRF-style Origin check that trusts X-Forwarded-Proto.
    const posts: { origin: string | undefined; proto: string | undefined; body: string }[] = [];
    const dev = createServer((req, res) => {
      if (req.method === 'POST' && req.url === '/submit') {
        let body = '';
        req.on('data', (chunk: Buffer) => (body += chunk.toString()));
        req.on('end', () => {
          const proto = req.headers['x-forwarded-proto'] as string | undefined;
          posts.push({ origin: req.headers.origin, proto, body });
          const expectedOrigin = `${proto ?? 'http'}://${req.headers.host}`;
          const ok = req.headers.origin === expectedOrigin;
          res.writeHead(ok ? 200 : 403, { 'content-type': 'text/plain' });
          res.end(ok ? `accepted ${body}` : `CSRF check failed: Origin ${req.headers.origin} is not ${expectedOrigin}`);
        });
        return;
      }
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(PAGE);
    });
    const echo = new WebSocketServer({ server: dev });
    echo.on('connection', (socket) => socket.on('message', (data) => socket.send(`echo ${data.toString()}`)));
    await listenOn(dev);
    t.after(() => closeServer(dev));

    const { port, splicer, caDir } = await startSplicer(t, `[service.app]\nport = ${(dev.address() as AddressInfo).port}\n`);
    await splicer.certificates.authority();

    // A HOME of our own whose NSS database trusts the root, as `norikae-splice trust` leaves it.
    const home = mkdtempSync(join(tmpdir(), 'norikae-browser-home-'));
    const nssdb = join(home, '.pki', 'nssdb');
    mkdirSync(nssdb, { recursive: true });
    execFileSync('certutil', ['-N', '-d', `sql:${nssdb}`, '--empty-password']);
    execFileSync('certutil', ['-A', '-d', `sql:${nssdb}`, '-t', 'C,,', '-n', 'norikae', '-i', rootFile(caDir)]);

    const browser = await chromium.launch({ executablePath: CHROMIUM.executable, headless: true, args: CHROMIUM_ARGS, env: { ...process.env, HOME: home } });
    t.after(async () => {
      await browser.close();
      rmSync(home, { recursive: true, force: true });
    });
    const page = await browser.newPage();
    const url = `https://app.localhost:${port}/`;
    // A certificate error would make goto throw (net::ERR_CERT_…).
    const response = await page.goto(url);
    assert.equal(response?.status(), 200);
    const security = await response!.securityDetails();
    assert.equal(security?.subjectName, 'app.localhost');
    assert.equal(await page.evaluate('window.isSecureContext'), true);

    const echoed = await page.evaluate(`new Promise((resolve, reject) => {
      const socket = new WebSocket('wss://app.localhost:${port}/live');
      socket.onopen = () => socket.send('ping');
      socket.onmessage = (event) => { resolve(event.data); socket.close(); };
      socket.onerror = () => reject(new Error('WebSocket error'));
    })`);
    assert.equal(echoed, 'echo ping');

    await Promise.all([page.waitForURL(`${url}submit`), page.click('button')]);
    assert.equal(await page.textContent('body'), 'accepted note=hello');
    assert.deepEqual(posts, [{ origin: `https://app.localhost:${port}`, proto: 'https', body: 'note=hello' }]);
  });
});
