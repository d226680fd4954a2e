// The dashboard page's files (lib/dashboard/), as a running splicer serves them on
// norikae.localhost; and the pure helpers of its script, run in a vm.

import assert from 'node:assert/strict';
import { request, type IncomingHttpHeaders } from 'node:http';
import { after, before, describe, test } from 'node:test';
import vm from 'node:vm';
import { parseConfig } from '../lib/config-file.js';
import { Dashboard } from '../lib/dashboard.js';
import { memoryLog } from '../lib/log.js';
import { SpliceServer } from '../lib/server.js';
import { ServiceSupervisor } from '../lib/supervisor.js';

const CSP = "default-src 'self'; frame-ancestors 'none'";

interface Served {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** One GET on the dashboard host of the splicer listening on `port`. */
function get(port: number, path: string): Promise<Served> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers: { host: `norikae.localhost:${port}` } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end();
  });
}


/** Runs the script with a stand-in `document`, so its pure helpers can be called. */
function loadHelpers(script: string): Record<string, (...args: any[]) => any> {
  const context = vm.createContext({ URL, document: { addEventListener() {} } });
  new vm.Script(script, { filename: 'dashboard.js' }).runInContext(context);
  return context as Record<string, (...args: any[]) => any>;
}

/** One splicer with a dashboard for the whole file; the page's files as it served them. */
const config = parseConfig('listen = "127.0.0.1:0"\n[service.app]\nport = 1\n', '/test/norikae.toml');
const supervisor = new ServiceSupervisor(config, { log: memoryLog() });
const server = new SpliceServer(config, { log: memoryLog(), connector: supervisor, dashboard: new Dashboard(supervisor) });
after(() => server.close());
let port = 0;
let html = '';
let css = '';
let script = '';

before(async () => {
  port = (await server.listen())[0]!.port;
  [html, css, script] = (await Promise.all(['/', '/dashboard.css', '/dashboard.js'].map((path) => get(port, path)))).map((served) => served.body);
});

describe('dashboard page files', () => {
  test('are served with their types, uncached, under a CSP that allows only the page itself', async () => {
    const types = { '/': 'text/html; charset=utf-8', '/dashboard.css': 'text/css; charset=utf-8', '/dashboard.js': 'text/javascript; charset=utf-8' };
    for (const [path, type] of Object.entries(types)) {
      const served = await get(port, path);
      assert.equal(served.status, 200, path);
      assert.equal(served.headers['content-type'], type, path);
      assert.equal(served.headers['content-length'], String(Buffer.byteLength(served.body)), path);
      assert.equal(served.headers['cache-control'], 'no-store', path);
      assert.equal(served.headers['content-security-policy'], CSP, path);
      assert.equal(served.headers['x-frame-options'], 'DENY', path);
    }
    // Every other answer carries the same policy: the API, its errors, and the favicon the browser asks for.
    for (const [path, status] of [['/api/services', 200], ['/api/nothing', 404], ['/favicon.ico', 204]] as const) {
      const served = await get(port, path);
      assert.equal(served.status, status, path);
      assert.equal(served.headers['content-security-policy'], CSP, path);
      assert.equal(served.headers['x-frame-options'], 'DENY', path);
    }
  });

  test('the page is a complete HTML document', () => {
    assert.match(html, /^<!doctype html>\n<html lang="en">/);
    assert.match(html, /<meta charset="utf-8">/);
    assert.match(html, /<meta name="viewport" [^>]*>/);
    assert.match(html, /<title>norikae-splice<\/title>/);
    assert.match(html, /<\/body>\n<\/html>\n$/);
  });

  test('the page is a fixed document: no data is written into it on the server', async () => {
    // What it shows from data, the script writes with textContent (below); nothing needs escaping here.
    assert.equal((await get(port, '/')).body, html);
    assert.match(html, /<h1>norikae-splice<\/h1>/);
    assert.doesNotMatch(html, /\$\{|\{\{/);
  });

  test('nothing is inline, so the CSP can forbid inline script and style', () => {
    assert.doesNotMatch(html, /<style\b/i, 'no style element');
    assert.doesNotMatch(html, /\sstyle\s*=/i, 'no style attribute');
    assert.doesNotMatch(html, /\son[a-z]+\s*=/i, 'no inline event handler');
    assert.doesNotMatch(html, /javascript:|data:/i, 'no javascript: or data: URL (a data: icon is not default-src \'self\')');
    const scripts = [...html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/g)];
    assert.equal(scripts.length, 1, 'one script');
    assert.equal(scripts[0]![1], ' src="/dashboard.js"', 'the script is the served file');
    assert.equal(scripts[0]![2], '', 'with no inline body');
    const links = [...html.matchAll(/<link\b[^>]*>/g)].map(([tag]) => tag);
    assert.deepEqual(links, ['<link rel="stylesheet" href="/dashboard.css">']);
  });

  test('references nothing outside the page', () => {
    for (const [name, text] of [['index.html', html], ['dashboard.css', css], ['dashboard.js', script]]) {
      assert.ok(!text!.includes('http://') && !text!.includes('https://'), `no absolute URL in ${name}`);
    }
    assert.doesNotMatch(html, /\b(?:src|href|action|srcset|poster)\s*=\s*["']?\s*(?:[a-z][a-z0-9+.-]*:)?\/\//i);
    for (const [, target] of html.matchAll(/\b(?:src|href|action|srcset|poster)\s*=\s*"([^"]*)"/gi)) {
      assert.match(target!, /^\/[a-z]/, `same-origin path only: ${target}`);
    }
    assert.doesNotMatch(css, /@import|url\(/i, 'no CSS fetches');
    for (const [, target] of script.matchAll(/(?:fetch|EventSource)\(\s*'([^']*)'/g)) {
      assert.ok(target!.startsWith('/api/'), `same-origin API only: ${target}`);
    }
  });

  test('has the hooks browser tests select on', () => {
    assert.match(html, /<div id="notice"[^>]*>/);
    assert.match(html, /<span id="live"[^>]*>/);
    assert.match(html, /<section id="log"[^>]*>[\s\S]*<h2[^>]*>[^<]*<span id="log-name">[\s\S]*<pre class="lines"/);
    assert.match(script, /'data-service': name/);
    assert.match(script, /'data-open-log'/);
    assert.match(script, /'data-action': action/);
    assert.match(script, /const ACTIONS = \['start', 'stop', 'restart'\]/);
    assert.match(script, /className: 'state'/);
    assert.match(script, /'state state-' \+ info\.state/);
    assert.match(script, /live \? 'live' : 'reconnecting'/);
    assert.match(script, /new EventSource\('\/api\/events'\)/);
    assert.match(script, /'\/logs\?lines=' \+ LOG_FETCH_LINES/);
  });

  test('writes data with textContent, never as HTML', () => {
    assert.doesNotMatch(script, /innerHTML|outerHTML|insertAdjacentHTML|document\.write/);
  });

  test('has a script that parses as a classic script (its functions are the page\'s globals)', () => {
    assert.doesNotThrow(() => new vm.Script(script, { filename: 'dashboard.js' }));
    assert.doesNotMatch(script, /^\s*(?:import|export)\b/m, 'not a module');
  });

  test('stays small', () => {
    const bytes = Buffer.byteLength(html) + Buffer.byteLength(css) + Buffer.byteLength(script);
    assert.ok(bytes < 40 * 1024, `${bytes} bytes`);
  });
});

describe('dashboard script helpers', () => {
  let helpers: Record<string, (...args: any[]) => any>;
  before(() => {
    helpers = loadHelpers(script);
  });

  test('formatBytes uses binary units', () => {
    assert.equal(helpers.formatBytes!(0), '0 B');
    assert.equal(helpers.formatBytes!(1023), '1023 B');
    assert.equal(helpers.formatBytes!(1536), '1.5 KiB');
    assert.equal(helpers.formatBytes!(200 * 1024 * 1024), '200 MiB');
  });

  test('formatDuration is short and never negative', () => {
    assert.equal(helpers.formatDuration!(-5000), '0s');
    assert.equal(helpers.formatDuration!(59_999), '59s');
    assert.equal(helpers.formatDuration!(65_000), '1m 05s');
    assert.equal(helpers.formatDuration!(3_725_000), '1h 02m');
    assert.equal(helpers.formatDuration!(90_000_000), '1d 1h');
  });

  test('uptime only for a live process', () => {
    const now = 100_000;
    assert.equal(helpers.uptimeText!({ state: 'running', startedAt: 40_000 }, now), '1m 00s');
    assert.equal(helpers.uptimeText!({ state: 'crashed', startedAt: 40_000 }, now), '—');
    assert.equal(helpers.uptimeText!({ state: 'running', startedAt: null }, now), '—');
  });

  test('exit code or signal', () => {
    assert.equal(helpers.exitText!(null), '—');
    assert.equal(helpers.exitText!({ code: 1, signal: null, at: 0 }), 'exit 1');
    assert.equal(helpers.exitText!({ code: null, signal: 'SIGTERM', at: 0 }), 'SIGTERM');
    assert.equal(helpers.isBadExit!({ code: 1, signal: null, at: 0 }), true);
    assert.equal(helpers.isBadExit!({ code: 0, signal: null, at: 0 }), false);
    assert.equal(helpers.isBadExit!({ code: null, signal: 'SIGTERM', at: 0 }), false);
  });

  test('buttons follow the state, and an action in flight cannot be pressed again', () => {
    const plain = (value: unknown): unknown => JSON.parse(JSON.stringify(value));
    assert.deepEqual(plain(helpers.buttonStates!({ state: 'stopped' }, null)), { start: true, stop: false, restart: false });
    assert.deepEqual(plain(helpers.buttonStates!({ state: 'crashed' }, null)), { start: true, stop: false, restart: false });
    assert.deepEqual(plain(helpers.buttonStates!({ state: 'running' }, null)), { start: false, stop: true, restart: true });
    assert.deepEqual(plain(helpers.buttonStates!({ state: 'starting' }, 'start')), { start: false, stop: true, restart: true });
    assert.deepEqual(plain(helpers.buttonStates!({ state: 'running' }, 'stop')), { start: false, stop: false, restart: true });
  });

  test('only http(s) URLs become links', () => {
    assert.equal(helpers.safeHref!('http://app.localhost:8080/'), 'http://app.localhost:8080/');
    assert.equal(helpers.safeHref!('javascript:alert(1)'), null);
    assert.equal(helpers.safeHref!('not a url'), null);
    assert.equal(helpers.displayUrl!('http://app.localhost:8080/'), 'app.localhost:8080');
    assert.equal(helpers.displayUrl!('http://app.localhost/docs/'), 'app.localhost/docs');
  });

  test('log lines lose terminal escapes and overwritten progress', () => {
    assert.equal(helpers.cleanLine!('\x1b[32m✓\x1b[39m ready in \x1b[1m312\x1b[22m ms'), '✓ ready in 312 ms');
    assert.equal(helpers.cleanLine!('\x1b]8;;http://x/\x07link\x1b]8;;\x07'), 'link');
    assert.equal(helpers.cleanLine!('building 10%\rbuilding 100%\r'), 'building 100%');
  });

  test('lines that arrived while the log was fetched are not shown twice', () => {
    const plain = (value: unknown): unknown => JSON.parse(JSON.stringify(value));
    assert.deepEqual(plain(helpers.unseenLines!(['a', 'b', 'c'], ['b', 'c', 'd'])), ['d']);
    assert.deepEqual(plain(helpers.unseenLines!(['a', 'b'], ['c', 'd'])), ['c', 'd']);
    assert.deepEqual(plain(helpers.unseenLines!(['a', 'b'], ['a', 'b'])), []);
    assert.deepEqual(plain(helpers.unseenLines!([], ['x'])), ['x']);
  });
});
