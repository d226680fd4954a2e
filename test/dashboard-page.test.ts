import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import vm from 'node:vm';
import { renderDashboardPage } from '../lib/dashboard-page.js';

const page = renderDashboardPage({});

/** The text of the page's one inline script. */
function scriptOf(html: string): string {
  const scripts = [...html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/g)];
  assert.equal(scripts.length, 1, 'one inline script');
  assert.equal(scripts[0]![1], '', 'the script has no attributes (no src)');
  return scripts[0]![2]!;
}

/** Runs the script with a stand-in `document`, so its pure helpers can be called. */
function loadHelpers(): Record<string, (...args: any[]) => any> {
  const context = vm.createContext({ URL, document: { addEventListener() {} } });
  new vm.Script(scriptOf(page)).runInContext(context);
  return context as Record<string, (...args: any[]) => any>;
}

describe('renderDashboardPage', () => {
  test('is a complete HTML document', () => {
    assert.match(page, /^<!doctype html>\n<html lang="en">/);
    assert.match(page, /<meta charset="utf-8">/);
    assert.match(page, /<meta name="viewport" [^>]*>/);
    assert.match(page, /<title>norikae-splice<\/title>/);
    assert.match(page, /<\/body>\n<\/html>\n$/);
  });

  test('escapes the title', () => {
    const html = renderDashboardPage({ title: '<b>"x" & y</b>' });
    assert.ok(!html.includes('<b>'));
    assert.match(html, /<title>&#60;b&#62;&#34;x&#34; &#38; y&#60;\/b&#62;<\/title>/);
    assert.match(html, /<h1>&#60;b&#62;&#34;x&#34; &#38; y&#60;\/b&#62;<\/h1>/);
  });

  test('references nothing outside the page', () => {
    assert.ok(!page.includes('http://') && !page.includes('https://'), 'no absolute URL anywhere');
    assert.doesNotMatch(page, /\b(?:src|href|action|srcset|poster)\s*=\s*["']?\s*(?:[a-z][a-z0-9+.-]*:)?\/\//i);
    assert.doesNotMatch(page, /<(?:link|script)\b[^>]*\b(?:src|href)=(?!"data:)/i, 'no linked script or stylesheet');
    const style = /<style>([\s\S]*?)<\/style>/.exec(page)?.[1] ?? '';
    assert.doesNotMatch(style, /@import|url\(/i, 'no CSS fetches');
    for (const [, target] of page.matchAll(/(?:fetch|EventSource)\(\s*'([^']*)'/g)) {
      assert.ok(target!.startsWith('/api/'), `same-origin API only: ${target}`);
    }
  });

  test('has the hooks browser tests select on', () => {
    const script = scriptOf(page);
    assert.match(page, /<div id="notice"[^>]*>/);
    assert.match(page, /<span id="live"[^>]*>/);
    assert.match(page, /<section id="log"[^>]*>[\s\S]*<h2[^>]*>[^<]*<span id="log-name">[\s\S]*<pre class="lines"/);
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
    assert.doesNotMatch(scriptOf(page), /innerHTML|outerHTML|insertAdjacentHTML|document\.write/);
  });

  test('has a script that parses', () => {
    const script = scriptOf(page);
    assert.doesNotThrow(() => new vm.Script(script, { filename: 'dashboard.js' }));
    assert.ok(!script.includes('</'), 'nothing in the script can close the script element');
  });

  test('stays small', () => {
    assert.ok(Buffer.byteLength(page) < 40 * 1024, `${Buffer.byteLength(page)} bytes`);
  });
});

describe('dashboard script helpers', () => {
  const helpers = loadHelpers();

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
