// Only the user who runs norikae-splice may read its services' output or control them: requests
// made by a process of another uid (setpriv) are refused, ours are served, and the key from the
// state folder lets a client in wherever it comes from.

import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { accessSync, constants, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { ApiAccess, apiKeyFile, peerUid } from '../lib/api-access.js';
import { parseConfig } from '../lib/config-file.js';
import { Dashboard } from '../lib/dashboard.js';
import { memoryLog } from '../lib/log.js';
import { SpliceServer } from '../lib/server.js';
import { ServiceSupervisor } from '../lib/supervisor.js';
import { CLI, connectTo, DEV_SERVER, freePort, nextData, waitFor } from './helpers.js';

const SETPRIV = '/usr/bin/setpriv';
const SETPRIV_INSTALL = 'apt-get install util-linux';
/** The uid and gid the other user's requests run as. */
const NOBODY = 65534;

/** Why the other-user tests cannot run here: a skip, or (under CI) a failure. */
function otherUserUnavailable(): { skip?: string; fail?: string } {
  const ci = process.env.CI !== undefined && !['', '0', 'false'].includes(process.env.CI.toLowerCase());
  try {
    accessSync(SETPRIV, constants.X_OK);
  } catch {
    const missing = `no ${SETPRIV}; install it with \`${SETPRIV_INSTALL}\``;
    return ci ? { fail: `${missing} (CI is set, so this is a failure, not a skip)` } : { skip: missing };
  }
  if (process.getuid?.() !== 0) return ci ? { fail: 'running as another user needs root (CI runs as root)' } : { skip: 'running as another user needs root' };
  return {};
}

/**
 * Makes the requests from a node process running as uid/gid 65534; each is `[method, path, headers]`.
 * Resolves with each answer's status (and, for /api/events, 200 as soon as the stream's head came).
 */
async function requestsAsNobody(port: number, requests: [string, string, Record<string, string>?][]): Promise<number[]> {
  const code = `
    const http = require('node:http');
    const [port, requests] = [Number(process.argv[1]), JSON.parse(process.argv[2])];
    const one = ([method, path, headers]) => new Promise((resolve) => {
      const req = http.request({ host: '127.0.0.1', port, method, path, headers: { host: 'norikae.localhost:' + port, ...headers } }, (res) => {
        resolve(res.statusCode);
        res.destroy();
      });
      req.on('error', (err) => resolve(String(err.code)));
      req.end();
    });
    (async () => { const statuses = []; for (const r of requests) statuses.push(await one(r)); console.log(JSON.stringify(statuses)); })();`;
  const { stdout } = await new Promise<{ stdout: string }>((resolve, reject) => {
    execFile(SETPRIV, [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', process.execPath, '-e', code, String(port), JSON.stringify(requests)],
      { cwd: '/', timeout: 20_000 }, (err, out, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve({ stdout: out })));
  });
  return JSON.parse(stdout) as number[];
}

/** The same requests from this process (our uid). */
async function requestsAsUs(port: number, requests: [string, string, Record<string, string>?][]): Promise<number[]> {
  const statuses: number[] = [];
  for (const [method, path, headers] of requests) {
    const socket = await connectToPort(port);
    socket.write(`${method} ${path} HTTP/1.1\r\nHost: norikae.localhost:${port}\r\n${Object.entries(headers ?? {}).map(([k, v]) => `${k}: ${v}\r\n`).join('')}Content-Length: 0\r\n\r\n`);
    const chunk = await nextData(socket, `the answer to ${method} ${path}`);
    statuses.push(Number(/^HTTP\/1\.1 (\d+)/.exec(chunk.toString('latin1'))?.[1]));
    socket.destroy();
  }
  return statuses;
}

async function connectToPort(port: number) {
  const { connect } = await import('node:net');
  const socket = connect(port, '127.0.0.1');
  await once(socket, 'connect');
  return socket;
}

const PRIVATE: [string, string][] = [['GET', '/api/services/app/logs'], ['GET', '/api/events'], ['GET', '/api/services'], ['POST', '/api/services/app/stop']];

async function startDashboard(t: TestContext, access: ApiAccess) {
  const dir = mkdtempSync(join(tmpdir(), 'norikae-access-'));
  const config = parseConfig(`listen = "127.0.0.1:0"\nlog_dir = "${dir}"\n[service.app]\nport = ${await freePort()}\ncommand = "node ${DEV_SERVER}"\n`, join(dir, 'norikae.toml'));
  const supervisor = new ServiceSupervisor(config, { log: memoryLog() });
  const server = new SpliceServer(config, { log: memoryLog(), connector: supervisor, dashboard: new Dashboard(supervisor, { access }) });
  const [address] = await server.listen();
  t.after(async () => {
    await server.close();
    await supervisor.stopAll();
    rmSync(dir, { recursive: true, force: true });
  });
  return { port: address!.port, supervisor };
}

describe('API access', () => {
  test('the peer of a loopback connection is found with its uid (IPv4)', async (t) => {
    const { createServer } = await import('node:net');
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.after(() => server.close());
    const accepted = once(server, 'connection');
    const client = await connectTo(t, (server.address() as { port: number }).port);
    const [socket] = (await accepted) as [import('node:net').Socket];
    t.after(() => socket.destroy());
    assert.equal(await peerUid(socket), process.getuid!());
    client.destroy();
  });

  test('another user gets 403 for output, events and stop; we are served; the key lets anyone in', async (t) => {
    const unavailable = otherUserUnavailable();
    if (unavailable.fail) assert.fail(unavailable.fail);
    if (unavailable.skip) return t.skip(unavailable.skip);
    const key = 'k'.repeat(43);
    const { port, supervisor } = await startDashboard(t, new ApiAccess(key, 'test'));
    await supervisor.start('app');
    assert.deepEqual(await requestsAsNobody(port, PRIVATE), [403, 403, 403, 403]);
    assert.equal(supervisor.info('app')!.state, 'running', 'not stopped by the other user');
    // The page's own files are public: they hold no data.
    assert.deepEqual(await requestsAsNobody(port, [['GET', '/'], ['GET', '/dashboard.js']]), [200, 200]);
    // With the key (which only our user can read from the state folder), in a header or as the session cookie.
    const bearer = { authorization: `Bearer ${key}` };
    assert.deepEqual(await requestsAsNobody(port, [['GET', '/api/services/app/logs', bearer], ['GET', '/api/events', bearer]]), [200, 200]);
    assert.deepEqual(await requestsAsNobody(port, [['POST', '/api/session', { authorization: 'Bearer wrong' }], ['GET', '/api/services/app/logs', { cookie: 'norikae-key-test=wrong' }]]), [403, 403]);
    assert.deepEqual(await requestsAsNobody(port, [['POST', '/api/session', bearer], ['GET', '/api/services/app/logs', { cookie: `other=1; norikae-key-test=${key}` }]]), [204, 200]);

    assert.deepEqual(await requestsAsUs(port, PRIVATE), [200, 200, 200, 202]);
    assert.equal(supervisor.info('app')!.stoppedByUser, true);
  });

  test('norikae-splice writes its key (0600) at start; the CLI sends it; `dashboard` opens the page with it in a 0600 file', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'norikae-access-cli-'));
    const port = await freePort();
    writeFileSync(join(dir, 'norikae.toml'), `listen = ${port}\nlog_dir = "logs"\n[service.app]\nport = ${await freePort()}\ncommand = "node ${DEV_SERVER}"\n`);
    // A "browser" that keeps a copy of what it was asked to open.
    const opened = join(dir, 'opened.html');
    writeFileSync(join(dir, 'browser.sh'), `#!/bin/sh\ncp "$1" "${opened}"\n`, { mode: 0o755 });
    const env = { ...process.env, XDG_STATE_HOME: join(dir, 'state'), BROWSER: join(dir, 'browser.sh'), DEBUG: '' };
    const child = spawn(process.execPath, [CLI], { cwd: dir, env, stdio: ['ignore', 'ignore', 'pipe'] });
    t.after(async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await once(child, 'exit');
      }
      rmSync(dir, { recursive: true, force: true });
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    await waitFor(() => stderr.includes('listening on'), 'norikae to start');

    const keyFile = apiKeyFile(join(dir, 'state', 'norikae'), join(dir, 'norikae.toml'));
    assert.equal(statSync(keyFile).mode & 0o777, 0o600);
    const key = readFileSync(keyFile, 'utf8').trim();
    assert.match(key, /^[\w-]{43}$/);

    const run = (...args: string[]) => new Promise<{ code: number | null; stdout: string }>((resolve) => {
      execFile(process.execPath, [CLI, ...args], { cwd: dir, env }, (err, stdout) => resolve({ code: err ? (err as { code?: number }).code ?? 1 : 0, stdout }));
    });
    assert.equal((await run('status')).code, 0);
    const dashboard = await run('dashboard');
    assert.equal(dashboard.code, 0);
    assert.match(dashboard.stdout, new RegExp(`opening http://norikae\\.localhost:${port}/\\n`));
    assert.doesNotMatch(dashboard.stdout, new RegExp(key), 'the key is not printed');
    await waitFor(() => { try { return readFileSync(opened, 'utf8').includes('refresh'); } catch { return false; } }, 'the browser to be given the file');
    const page = readFileSync(opened, 'utf8');
    assert.ok(page.includes(`url=http://norikae.localhost:${port}/#key=${key}"`), page);
    const stateFolder = join(dir, 'state', 'norikae');
    const openerFile = readdirSync(stateFolder).find((name) => /^open-dashboard-\w+\.html$/.test(name));
    assert.ok(openerFile !== undefined, 'the file opened is in the state folder');
    assert.equal(readFileSync(join(stateFolder, openerFile), 'utf8'), page);
    assert.equal(statSync(join(stateFolder, openerFile)).mode & 0o777, 0o600);

    const unavailable = otherUserUnavailable();
    if (unavailable.skip) return;
    if (unavailable.fail) assert.fail(unavailable.fail);
    assert.deepEqual(await requestsAsNobody(port, [['GET', '/api/services/app/logs'], ['GET', '/api/services/app/logs', { authorization: `Bearer ${key}` }]]), [403, 200]);
  });
});
