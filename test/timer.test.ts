// Timers of any length (lib/timer.ts): setTimeout turns 2^31 ms or more into 1 ms, so a config
// duration of weeks would fire at once. Each config duration that becomes a timer is tried here
// with a value past that limit: the service is not stopped, the upstream is reached, the stop
// command runs to its end.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseConfig } from '../lib/config-file.js';
import { ConfigError } from '../lib/errors.js';
import { MAX_TIMER_MS, startTimer } from '../lib/timer.js';
import { delay, freePort, waitFor } from './helpers.js';
import { start } from './launch-harness.js';

describe('startTimer', () => {
  test('a delay of 2^31 ms or more, or Infinity, does not fire; a short one does, once; clear() cancels', async () => {
    const fired: string[] = [];
    const long = [MAX_TIMER_MS + 1, 2 ** 32, 30 * 24 * 3600 * 1000, Infinity].map((ms) => startTimer(ms, () => fired.push(String(ms))));
    const short = startTimer(5, () => fired.push('short'));
    const cleared = startTimer(5, () => fired.push('cleared'));
    cleared.clear();
    await delay(100);
    assert.deepEqual(fired, ['short']);
    for (const timer of long) timer.clear();
    short.clear();
  });
});

describe('durations past setTimeout\'s limit', () => {
  test('idle_timeout = 30 days: the service is not stopped after its first request, and is not relaunched', async (t) => {
    const h = await start(t, `[service.app]\nport = ${await freePort()}\ncommand = "{server} --record {record}"\nidle_timeout = 2592000\n`);
    assert.equal((await h.get('app.localhost')).status, 200);
    await delay(300);
    assert.equal(h.supervisor.info('app')!.state, 'running');
    assert.equal((await h.get('app.localhost')).status, 200);
    assert.equal(h.launches().length, 1);
    assert.ok(!h.log.lines.some((line) => /idle for/.test(line)), h.log.lines.join('\n'));
  });

  test('connect_timeout = 30 days: a healthy upstream is reached, not answered 504', async (t) => {
    const h = await start(t, `connect_timeout = 2592000\n[service.app]\nport = ${await freePort()}\ncommand = "{server} --record {record}"\n`);
    for (let i = 0; i < 3; i++) assert.equal((await h.get('app.localhost')).status, 200);
  });

  test('stop_timeout = 30 days: a stop command that takes a while runs to its end', async (t) => {
    const h = await start(t, `[service.app]\nport = ${await freePort()}\ncommand = "{server} --record {record}"\nstop_timeout = 2592000\n`
      + 'stop = "sleep 0.3; echo stop-command-finished"\n');
    assert.equal((await h.get('app.localhost')).status, 200);
    await h.supervisor.stopByUser('app');
    await waitFor(() => h.supervisor.logTail('app', 50).some((line) => line.includes('stop-command-finished')), 'the stop command\'s last line', 5000);
    assert.ok(!h.supervisor.logTail('app', 50).some((line) => /did not finish/.test(line)), h.supervisor.logTail('app', 50).join('\n'));
  });

  test('delay = 30 days is waited, not cut to 1 ms: with ready_timeout = 0.5 the launch times out instead of being checked at once', async (t) => {
    const h = await start(t, `[service.app]\nport = ${await freePort()}\ncommand = "{server} --record {record}"\ndelay = 2592000\nready_timeout = 0.5\n`);
    const began = performance.now();
    const response = await h.get('app.localhost');
    assert.equal(response.status, 504, response.body);
    assert.ok(performance.now() - began >= 450, `answered after ${performance.now() - began} ms`);
  });

  test('a duration too long to be one (more than 100 years) is refused with its position', () => {
    for (const key of ['idle_timeout', 'stop_timeout', 'ready_timeout', 'delay', 'idle_cooldown']) {
      assert.throws(() => parseConfig(`[service.app]\nport = 3000\n${key} = 1e300\n`, '/c.toml'), (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.match(err.message, new RegExp(`^/c\\.toml:3:1: expected a number of seconds.*up to 3155760000 \\(100 years\\), got number 1e\\+300$`), key);
        return true;
      });
    }
    assert.throws(() => parseConfig('connect_timeout = 1e20\n', '/c.toml'), /^ConfigError: \/c\.toml:1:1: expected a number of seconds above 0, up to 3155760000/);
    assert.equal(parseConfig('head_timeout = 3155760000\n', '/c.toml').headTimeout, 3155760000);
  });
});
