// The readiness poll's schedule: fast while most dev servers are still starting, then backing off.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { pollIntervalMs } from '../lib/readiness.js';

describe('pollIntervalMs', () => {
  test('every millisecond for the first half second, so a fast server is answered close behind its bind', () => {
    for (const elapsed of [0, 1, 100, 250, 500]) assert.equal(pollIntervalMs(elapsed, false), 1, `at ${elapsed} ms`);
  });

  test('then backs off without ever shrinking, to every 5 ms from 2.5 s on', () => {
    let previous = pollIntervalMs(0, false);
    for (let elapsed = 0; elapsed <= 60_000; elapsed += 50) {
      const interval = pollIntervalMs(elapsed, false);
      assert.ok(interval >= previous, `${interval} ms at ${elapsed} ms after ${previous} ms`);
      assert.ok(interval >= 1 && interval <= 5, `${interval} ms at ${elapsed} ms`);
      previous = interval;
    }
    assert.ok(pollIntervalMs(1500, false) > 1 && pollIntervalMs(1500, false) < 5);
    assert.equal(pollIntervalMs(2500, false), 5);
    assert.equal(pollIntervalMs(3_600_000, false), 5);
  });

  test('launches polling at once share a budget: twenty together each wait 5 ms, and never less than their own schedule', () => {
    assert.equal(pollIntervalMs(0, false, 1), 1);
    assert.equal(pollIntervalMs(0, false, 4), 1);
    assert.equal(pollIntervalMs(0, false, 20), 5);
    assert.equal(pollIntervalMs(0, false, 40), 10);
    assert.equal(pollIntervalMs(10_000, false, 2), 5);
    for (let pollers = 1; pollers <= 50; pollers++) {
      assert.ok(pollIntervalMs(0, false, pollers) >= pollIntervalMs(0, false, pollers - 1 || 1));
      assert.ok(1000 / pollIntervalMs(0, false, pollers) * pollers <= 4000 + 1e-6, `${pollers} pollers`);
    }
  });

  test('an HTTP health check is a request the server must answer: every 50 ms throughout', () => {
    for (const elapsed of [0, 500, 10_000]) assert.equal(pollIntervalMs(elapsed, true), 50);
  });
});
