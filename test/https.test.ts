// TLS terminated by norikae-splice for services without TLS of their own: certificates from the
// local CA, the same routing and answers as plain HTTP (over HTTPS), the `https` listeners,
// ClientHellos split across reads, unknown names (an alert, nothing minted), one mint for many
// first handshakes, and `https_redirect`.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { connect as netConnect, createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import { ListenError } from '../lib/errors.js';
import { createCa, rootFile } from '../lib/local-ca.js';
import { closeServer, delay, exchange, freePort, getHead, httpsRequest, listenOn, parseResponse, runWithInput, startHttpUpstream, startSplicer } from './helpers.js';

const OPENSSL = spawnSync('openssl', ['version']).status === 0;

async function appSplicer(t: TestContext, extra = '', top = '') {
  const { port: upstreamPort } = await startHttpUpstream(t, (req, res) => {
    const body = JSON.stringify({ url: req.url, host: req.headers.host, proto: req.headers['x-forwarded-proto'] ?? null });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
  const splicer = await startSplicer(t, `[service.app]\nhost = ["app.localhost", "*.app.localhost"]\nport = ${upstreamPort}\n${extra}`, { top });
  // The CA is made on first need: here, before the test reads its root.
  await splicer.certificates.authority();
  return { ...splicer, root: () => readFileSync(rootFile(splicer.caDir), 'utf8') };
}

/** A TCP relay that passes the client's bytes on in `size`-byte pieces, one per timer tick. */
async function choppingRelay(t: TestContext, targetPort: number, size: number): Promise<number> {
  const relay = createNetServer((client) => {
    const upstream = netConnect({ host: '127.0.0.1', port: targetPort });
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    upstream.pipe(client);
    let queue = Promise.resolve();
    client.on('data', (chunk: Buffer) => {
      queue = queue.then(async () => {
        for (let offset = 0; offset < chunk.length; offset += size) {
          upstream.write(chunk.subarray(offset, offset + size));
          await delay(1);
        }
      });
    });
    client.on('end', () => void queue.then(() => upstream.end()));
  });
  await listenOn(relay);
  t.after(() => closeServer(relay));
  return (relay.address() as AddressInfo).port;
}

describe('TLS terminated at the edge', () => {
  test('a plain-HTTP service is served over HTTPS with a certificate of the local CA', async (t) => {
    const { port, root, certificates } = await appSplicer(t);
    await assert.rejects(httpsRequest(t, port, 'app.localhost', '', getHead('app.localhost')), /unable to verify|self.signed|issuer/i,
      'without the root, the certificate is not trusted');
    const text = await httpsRequest(t, port, 'app.localhost', root(), getHead('app.localhost', '/hello'));
    const response = parseResponse(Buffer.from(text));
    assert.equal(response.status, 200);
    assert.equal(JSON.parse(response.body).url, '/hello');
    // A wildcard's subdomain gets a leaf of its own.
    assert.equal(parseResponse(Buffer.from(await httpsRequest(t, port, 'api.app.localhost', root(), getHead('api.app.localhost')))).status, 200);
    assert.equal(certificates.minted, 2);
  });

  test('the decrypted request is routed and answered as plain HTTP is: a 404 and a 502 page arrive over HTTPS', async (t) => {
    const down = await freePort();
    const { port, root } = await appSplicer(t, `[service.down]\nport = ${down}\n`);
    const notFound = parseResponse(Buffer.from(await httpsRequest(t, port, 'app.localhost', root(), getHead('nothing.localhost', '/', 'Accept: text/html\r\n'))));
    assert.equal(notFound.status, 404);
    assert.match(notFound.body, /No service is configured for nothing\.localhost/);
    const badGateway = parseResponse(Buffer.from(await httpsRequest(t, port, 'down.localhost', root(), getHead('down.localhost'))));
    assert.equal(badGateway.status, 502);
    assert.match(badGateway.body, /down is not running/);
  });

  test('an `https` listener serves TLS and plain HTTP; the plain listener serves TLS too', async (t) => {
    const { splicer, port, root } = await appSplicer(t, '', 'https = "127.0.0.1:0"');
    const [https] = splicer.httpsAddresses();
    assert.ok(https !== undefined && https.port !== port);
    assert.deepEqual(splicer.addresses().map((address) => address.port), [port]);
    assert.equal(parseResponse(Buffer.from(await httpsRequest(t, https.port, 'app.localhost', root(), getHead('app.localhost')))).status, 200);
    assert.equal(parseResponse(await exchange(t, https.port, [getHead('app.localhost')])).status, 200);
    assert.equal(parseResponse(Buffer.from(await httpsRequest(t, port, 'app.localhost', root(), getHead('app.localhost')))).status, 200);
  });

  test('an `https` address that is taken is refused with the same advice as `listen`, naming --https', async (t) => {
    const taken = createNetServer();
    await listenOn(taken);
    t.after(() => closeServer(taken));
    const port = (taken.address() as AddressInfo).port;
    await assert.rejects(startSplicer(t, '[service.app]\nport = 1\n', { top: `https = ${port}` }),
      (err: unknown) => err instanceof ListenError && new RegExp(`127\\.0\\.0\\.1:${port} \\(https\\): the port is already in use.*--https`).test(err.message));
  });

  test('a name the CA may not sign for is served nothing (an alert) and the log says to renew, once', async (t) => {
    const { port: upstreamPort } = await startHttpUpstream(t);
    const { port, caDir, certificates, log } = await startSplicer(t, `[service.shop]\nhost = "shop.test"\nport = ${upstreamPort}\n`);
    await createCa(caDir, ['app.localhost']);
    for (let i = 0; i < 2; i++) await assert.rejects(httpsRequest(t, port, 'shop.test', '', getHead('shop.test')), /internal error/i);
    assert.equal(certificates.minted, 0);
    assert.equal(log.lines.filter((line) => /shop\.test is outside the names the local CA may sign for.*trust --renew/.test(line)).length, 1, log.lines.join('\n'));
  });

  test('an unknown or missing SNI name gets an alert, and no certificate (nor CA) is made', async (t) => {
    const { port: upstreamPort } = await startHttpUpstream(t);
    const { port, certificates, caDir } = await startSplicer(t, `[service.app]\nport = ${upstreamPort}\n`);
    await assert.rejects(httpsRequest(t, port, 'other.localhost', '', getHead('other.localhost')), /unrecognized name/i);
    await assert.rejects(httpsRequest(t, port, '', '', getHead('app.localhost')), /unrecognized name/i);
    assert.equal(certificates.minted, 0);
    assert.equal(existsSync(caDir), false, 'not even the CA was made');
  });

  test('a ClientHello split into 7-byte reads completes the handshake', async (t) => {
    const { port, root } = await appSplicer(t);
    const relay = await choppingRelay(t, port, 7);
    assert.equal(parseResponse(Buffer.from(await httpsRequest(t, relay, 'app.localhost', root(), getHead('app.localhost')))).status, 200);
  });

  test('concurrent first handshakes for one name make one mint', async (t) => {
    const { port: upstreamPort } = await startHttpUpstream(t);
    const { port, certificates, caDir } = await startSplicer(t, `[service.app]\nport = ${upstreamPort}\n`);
    // The root does not exist before the first handshake: trust is checked after, against the file.
    const texts = await Promise.all(Array.from({ length: 8 }, () => httpsRequest(t, port, 'app.localhost', '', getHead('app.localhost'), { rejectUnauthorized: false })));
    for (const text of texts) assert.equal(parseResponse(Buffer.from(text)).status, 200);
    assert.equal(certificates.minted, 1);
    assert.equal(parseResponse(Buffer.from(await httpsRequest(t, port, 'app.localhost', readFileSync(rootFile(caDir), 'utf8'), getHead('app.localhost')))).status, 200);
  });

  test('a leaf near its end is renewed for the next handshake', async (t) => {
    let now = Date.now();
    const { port: upstreamPort } = await startHttpUpstream(t);
    const { port, certificates, caDir } = await startSplicer(t, `[service.app]\nport = ${upstreamPort}\n`, { now: () => now });
    const serialOf = async (): Promise<string> => {
      const socket = tlsConnect({ host: '127.0.0.1', port, servername: 'app.localhost', rejectUnauthorized: false });
      t.after(() => socket.destroy());
      await new Promise((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
      const serial = socket.getPeerCertificate().serialNumber;
      socket.destroy();
      return serial;
    };
    const first = await serialOf();
    assert.equal(await serialOf(), first);
    now += 300 * 24 * 3600 * 1000; // past two thirds of 365 days
    const renewed = await serialOf();
    assert.notEqual(renewed, first);
    assert.equal(certificates.minted, 2);
    assert.ok(existsSync(join(caDir, 'leaves', 'app.localhost.pem')));
  });

  test('openssl s_client verifies the chain with -verify_return_error, and ALPN picks http/1.1', { skip: OPENSSL ? false : 'no openssl; `apt-get install openssl`' }, async (t) => {
    const { port, caDir } = await appSplicer(t);
    // Not spawnSync: the splicer runs in this process and must go on answering.
    const run = await runWithInput('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'app.localhost', '-CAfile', rootFile(caDir),
      '-verify_return_error', '-verify_hostname', 'app.localhost', '-alpn', 'h2,http/1.1', '-ign_eof'], getHead('app.localhost'));
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /Verify return code: 0 \(ok\)/);
    assert.match(run.stdout, /ALPN protocol: http\/1\.1/);
    assert.match(run.stdout, /HTTP\/1\.1 200 OK/);
  });

  test('`https_redirect` answers plain HTTP with a 308 to the same URL over HTTPS', async (t) => {
    const { splicer, port, root } = await appSplicer(t, 'https_redirect = true\n', 'https = "127.0.0.1:0"');
    const httpsPort = splicer.httpsAddresses()[0]!.port;
    const redirect = parseResponse(await exchange(t, port, [getHead('App.Localhost:1234', '/a/b?c=d')]));
    assert.equal(redirect.status, 308);
    assert.equal(redirect.headers.location, `https://app.localhost:${httpsPort}/a/b?c=d`);
    // Over HTTPS the same request is served.
    assert.equal(parseResponse(Buffer.from(await httpsRequest(t, httpsPort, 'app.localhost', root(), getHead('app.localhost', '/a/b?c=d')))).status, 200);
  });

  test('a service whose TLS is its own is still spliced by SNI with tls = "passthrough"', async (t) => {
    // A plain TCP upstream sees the ClientHello itself: nothing was terminated.
    const received: Buffer[] = [];
    const upstream = createNetServer((socket: Socket) => {
      socket.on('data', (chunk: Buffer) => {
        received.push(chunk);
        socket.destroy();
      });
    });
    await listenOn(upstream);
    t.after(() => closeServer(upstream));
    const { port, certificates } = await startSplicer(t, `[service.own]\nport = ${(upstream.address() as AddressInfo).port}\ntls = "passthrough"\n`);
    await httpsRequest(t, port, 'own.localhost', '', getHead('own.localhost')).catch(() => '');
    assert.equal(received[0]?.[0], 0x16, 'the upstream got the ClientHello');
    assert.equal(certificates.minted, 0);
  });
});
