// The dashboard in a real browser: Debian's Chromium driven by playwright-core. The page is
// loaded through the splicer on norikae.localhost, sees a service go from stopped to running when
// a request launches it, and stops it with its button. Without Chromium these tests are skipped
// (failed in CI): see test/chromium.ts.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import { parseConfig } from '../lib/config-file.js';
import { Dashboard } from '../lib/dashboard.js';
import { memoryLog } from '../lib/log.js';
import { SpliceServer } from '../lib/server.js';
import { ServiceSupervisor } from '../lib/supervisor.js';
import { CHROMIUM_ARGS, chooseChromium } from './chromium.js';
import { closeServer, DEV_SERVER, exchange, freePort, getHead, listenOn, parseResponse } from './helpers.js';

/** Debian's package (`.ci/run` installs it), or why these tests skip or fail without it. */
const CHROMIUM = chooseChromium(process.env);
/** Each test is skipped on its own, so the run's summary counts them as skipped. */
const skip = 'skip' in CHROMIUM && CHROMIUM.skip;

describe('dashboard in a browser', () => {
  test('shows a service start on a request, streams its log, and stops it with a button', { skip }, async (t) => {
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

    const { page, problems } = await openPage(t);
    // Chromium resolves *.localhost to loopback by itself, as users' browsers do.
    await page.goto(`http://norikae.localhost:${port}/`);
    const row = page.locator('tr[data-service="app"]');
    await row.locator('.state', { hasText: /^stopped$/ }).waitFor();
    assert.equal(await page.evaluate(`getComputedStyle(document.querySelector('#services .state')).borderRadius`), '999px', 'the stylesheet applies');
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
    assert.deepEqual(problems, [], 'no errors in the console: the CSP refused nothing the page needs');

    // And it does refuse what an injection would add: an inline script does not run.
    const refused = page.waitForEvent('console', { predicate: (message) => /Content Security Policy/i.test(message.text()), timeout: 10_000 });
    await page.evaluate(`{ const script = document.createElement('script'); script.textContent = 'window.injected = true'; document.body.append(script); }`);
    await refused;
    assert.equal(await page.evaluate('window.injected'), undefined);
  });

  test('lists services in config order, shows why a launch failed, and a refused reload as a banner', { skip }, async (t) => {
    const toml = (names: string[]): string => 'listen = "127.0.0.1:0"\n' + names.map((name, i) => `[service.${name}]\nport = ${i + 1}\n`).join('');
    const config = parseConfig(toml(['zeta', 'alpha']), '/test/norikae.toml');
    const supervisor = new ServiceSupervisor(config, { log: memoryLog() });
    const refused = 'norikae.toml:3:7: expected "=" after a key\n  3 | port 1\n          ^';
    supervisor.setReloadError(refused);
    const dashboard = new Dashboard(supervisor);
    const server = new SpliceServer(config, { log: memoryLog(), connector: supervisor, dashboard });
    const [address] = await server.listen();
    t.after(() => server.close());

    const { page, problems } = await openPage(t);
    await page.goto(`http://norikae.localhost:${address!.port}/`);
    await page.locator('#live', { hasText: 'live' }).waitFor();
    const order = (): Promise<string | null> => page.evaluate(`Array.from(document.querySelectorAll('tr[data-service]'), (tr) => tr.dataset.service).join()`);
    await page.locator('tr[data-service="alpha"]').waitFor();
    assert.equal(await order(), 'zeta,alpha', 'the config\'s order, not sorted by name');

    // A refused reload: a banner while it stands, from the list and from the config event.
    const banner = page.locator('#reload-error');
    await banner.waitFor();
    assert.equal(await banner.textContent(), `The config file has an error; the running config is kept: ${refused}`);
    supervisor.setReloadError(undefined);
    await banner.waitFor({ state: 'hidden' });
    supervisor.setReloadError('norikae.toml: service "alpha" has no port');
    await page.locator('#reload-error', { hasText: 'service "alpha" has no port' }).waitFor();

    // A reload that adds a service in the middle: the rows follow the config's new order.
    await supervisor.reconfigure(parseConfig(toml(['zeta', 'mid', 'alpha']), '/test/norikae.toml'));
    await page.locator('tr[data-service="mid"]').waitFor();
    await page.waitForFunction(`Array.from(document.querySelectorAll('tr[data-service]'), (tr) => tr.dataset.service).join() === 'zeta,mid,alpha'`);

    // Why the last launch failed, under the state; nothing where the field is absent or null.
    assert.equal(await page.locator('#services .notes .error').count(), 0);
    const alpha = page.locator('tr[data-service="alpha"]');
    const failed = 'cannot launch alpha: its cwd /x is not a folder <b>not markup</b>';
    await page.evaluate(`upsertService({ ...rows.get('alpha').info, state: 'failed', lastError: ${JSON.stringify(failed)}, sequence: rows.get('alpha').info.sequence + 1 })`);
    await alpha.locator('.state-cell .notes .error', { hasText: failed }).waitFor();
    assert.equal(await alpha.locator('.notes b').count(), 0, 'written as text');
    await page.evaluate(`upsertService({ ...rows.get('alpha').info, lastError: null, sequence: rows.get('alpha').info.sequence + 1 })`);
    await alpha.locator('.notes .error').waitFor({ state: 'detached' });
    assert.deepEqual(problems, []);
  });

  test('another site cannot frame the dashboard (its clicks would pass as the user\'s own)', { skip }, async (t) => {
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

    const browser = await launchChromium();
    t.after(() => browser.close());
    const page = await browser.newPage();
    const refused = page.waitForEvent('console', { predicate: (message) => /frame-ancestors|X-Frame-Options/i.test(message.text()), timeout: 10_000 });
    await page.goto(`http://127.0.0.1:${(framer.address() as AddressInfo).port}/`);
    await refused;
    const frame = page.frames().find((f) => f !== page.mainFrame())!;
    assert.equal(await frame.locator('#services').count(), 0, 'the dashboard did not render inside the frame');
  });
});

/**
 * A page in a headless Chromium, closed after the test. `problems` collects console errors and
 * page errors: a resource or script the page's CSP refused is reported there, like any script error.
 */
async function openPage(t: TestContext): Promise<{ page: Page; problems: string[] }> {
  const browser = await launchChromium();
  t.after(() => browser.close());
  const page = await browser.newPage();
  const problems: string[] = [];
  page.on('console', (message) => { if (message.type() === 'error') problems.push(message.text()); });
  page.on('pageerror', (error) => problems.push(error.message));
  return { page, problems };
}

/** A headless Debian Chromium; in CI, a missing one fails the test here with what to install. */
function launchChromium(): Promise<Browser> {
  if (!('executable' in CHROMIUM)) throw new Error('fail' in CHROMIUM ? CHROMIUM.fail : CHROMIUM.skip);
  return chromium.launch({ executablePath: CHROMIUM.executable, headless: true, args: CHROMIUM_ARGS });
}
