// The dashboard in a real browser: Debian's Chromium driven by playwright-core. The page is
// loaded through the splicer on norikae.localhost, sees a service go from stopped to running when
// a request launches it, and stops it with its button.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { chromium } from 'playwright-core';
import { parseConfig } from '../lib/config.js';
import { Dashboard } from '../lib/dashboard.js';
import { memoryLog } from '../lib/log.js';
import { SpliceServer } from '../lib/server.js';
import { ServiceSupervisor } from '../lib/supervisor.js';
import { closeServer, DEV_SERVER, exchange, freePort, getHead, listenOn, parseResponse } from './helpers.js';

/** Debian's package; `.ci/run` installs it. */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
/** What a headless Chromium needs in this sandbox: no network of its own, no GPU, no sandbox as root. */
export const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-proxy-server',
];

describe('dashboard in a browser', () => {
  test('shows a service start on a request, streams its log, and stops it with a button', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'norikae-browser-'));
    const config = parseConfig(`listen = "127.0.0.1:0"\nlog_dir = "${dir}"\n`
      + `[service.app]\nport = ${await freePort()}\ncommand = "node ${DEV_SERVER}"\n`, join(dir, 'norikae.toml'));
    const supervisor = new ServiceSupervisor(config, { log: memoryLog() });
    const server = new SpliceServer(config, { log: memoryLog(), connector: supervisor, dashboard: new Dashboard(supervisor) });
    const [address] = await server.listen();
    const port = address!.port;
    t.after(async () => {
      await server.close();
      await supervisor.stopAll();
      rmSync(dir, { recursive: true, force: true });
    });

    const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
    t.after(() => browser.close());
    const page = await browser.newPage();
    // Chromium resolves *.localhost to loopback by itself, as users' browsers do.
    await page.goto(`http://norikae.localhost:${port}/`);
    const row = page.locator('tr[data-service="app"]');
    await row.locator('.state', { hasText: /^stopped$/ }).waitFor();
    await page.locator('#live', { hasText: 'live' }).waitFor();

    // A request launches the service; the page learns it over server-sent events.
    assert.equal(parseResponse(await exchange(t, port, [getHead('app.localhost')])).status, 200);
    await row.locator('.state', { hasText: /^running$/ }).waitFor();

    await row.locator('[data-open-log]').click();
    await page.locator('#log', { hasText: /dev server listening/ }).waitFor();

    await row.locator('button[data-action="stop"]').click();
    await row.locator('.state', { hasText: /^stopped$/ }).waitFor();
    assert.equal(supervisor.info('app')!.state, 'stopped');
    assert.equal(supervisor.info('app')!.stoppedByUser, true);
    assert.equal(parseResponse(await exchange(t, port, [getHead('app.localhost')])).status, 503);

    await row.locator('button[data-action="start"]').click();
    await row.locator('.state', { hasText: /^running$/ }).waitFor();

    // An answer older than what the row shows (a POST's reply overtaken by an event) is dropped;
    // the full list after a reconnect is taken whatever its sequence.
    // The page's script is a classic one: its functions and its \`rows\` are the page's globals.
    await page.evaluate(`upsertService({ ...rows.get('app').info, state: 'crashed', sequence: rows.get('app').info.sequence - 1 })`);
    await assert.doesNotReject(row.locator('.state', { hasText: /^running$/ }).waitFor({ timeout: 1000 }));
    // A restarted norikae (another instance) counts anew: its lower sequence is not older.
    await page.evaluate(`upsertService({ ...rows.get('app').info, state: 'stopped', instance: 'another run', sequence: 1 })`);
    await row.locator('.state', { hasText: /^stopped$/ }).waitFor();
    await page.evaluate(`upsertService({ ...rows.get('app').info, state: 'crashed', sequence: rows.get('app').info.sequence - 1 }, true)`);
    await row.locator('.state', { hasText: /^crashed$/ }).waitFor();
  });

  test('lists the services in config order, as the API and the CLI status do, also after a reload adds one', async (t) => {
    const services = (names: string[]) => names.map((name) => `[service.${name}]\nport = 1\n`).join('');
    const config = parseConfig(`listen = "127.0.0.1:0"\n${services(['zeta', 'mid', 'alpha'])}`, '/test/norikae.toml');
    const supervisor = new ServiceSupervisor(config, { log: memoryLog() });
    const server = new SpliceServer(config, { log: memoryLog(), connector: supervisor, dashboard: new Dashboard(supervisor) });
    const [address] = await server.listen();
    t.after(() => server.close());

    const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
    t.after(() => browser.close());
    const page = await browser.newPage();
    await page.goto(`http://norikae.localhost:${address!.port}/`);
    // A string, as the page's own code: the tests are compiled without the DOM's types.
    const rowsInOrder = "[...document.querySelectorAll('tr[data-service]')].map((row) => row.dataset.service).join()";
    const order = async () => ((await page.evaluate(rowsInOrder)) as string).split(',');
    await page.locator('tr[data-service="alpha"]').waitFor();
    const api = JSON.parse(parseResponse(await exchange(t, address!.port, [getHead(`norikae.localhost:${address!.port}`, '/api/services')])).body) as { services: { name: string }[] };
    assert.deepEqual(api.services.map((service) => service.name), ['zeta', 'mid', 'alpha']);
    assert.deepEqual(await order(), ['zeta', 'mid', 'alpha']);

    await server.reconfigure(parseConfig(`listen = "127.0.0.1:0"\n${services(['zeta', 'beta', 'mid', 'alpha'])}`, '/test/norikae.toml'));
    await page.locator('tr[data-service="beta"]').waitFor();
    await page.waitForFunction(`${rowsInOrder} === 'zeta,beta,mid,alpha'`);
    assert.deepEqual(await order(), ['zeta', 'beta', 'mid', 'alpha']);
  });

  test('another site cannot frame the dashboard (its clicks would pass as the user\'s own)', async (t) => {
    const config = parseConfig('listen = "127.0.0.1:0"\n[service.app]\nport = 1\n', '/test/norikae.toml');
    const supervisor = new ServiceSupervisor(config, { log: memoryLog() });
    const server = new SpliceServer(config, { log: memoryLog(), connector: supervisor, dashboard: new Dashboard(supervisor) });
    const [address] = await server.listen();
    t.after(() => server.close());
    const framer = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(`<iframe id="f" src="http://norikae.localhost:${address!.port}/"></iframe>`);
    });
    await listenOn(framer);
    t.after(() => closeServer(framer));

    const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
    t.after(() => browser.close());
    const page = await browser.newPage();
    const refused = page.waitForEvent('console', { predicate: (message) => /frame-ancestors|X-Frame-Options/i.test(message.text()), timeout: 10_000 });
    await page.goto(`http://127.0.0.1:${(framer.address() as AddressInfo).port}/`);
    await refused;
    const frame = page.frames().find((f) => f !== page.mainFrame())!;
    assert.equal(await frame.locator('#services').count(), 0, 'the dashboard did not render inside the frame');
  });
});
