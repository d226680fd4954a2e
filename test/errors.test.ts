import assert from 'node:assert/strict';
import { test } from 'node:test';
import { upstreamErrorPage } from '../lib/answers.js';
import { parseConfig } from '../lib/config-file.js';
import {
  ApiError, ConfigError, controlErrors, ErrorCode, headErrors, LaunchCancelledError, LaunchError, NoServiceError, NorikaeError,
  ReadinessTimeoutError, ServiceStoppedError, statusOf, UpstreamConnectError,
} from '../lib/errors.js';

test('every code is unique and has a status; statusOf gives each error its own, and 500 to anything else', () => {
  const codes = Object.values(ErrorCode);
  assert.equal(new Set(codes).size, codes.length, 'no two names share a code');
  for (const code of codes) {
    const status = new NorikaeError(code, 'x').status;
    assert.ok(Number.isInteger(status) && status >= 400 && status < 600, `${code}: ${status}`);
  }
  assert.equal(statusOf(headErrors.tooLarge(16384)), 431);
  assert.equal(statusOf(headErrors.timeout(10)), 408);
  assert.equal(statusOf(headErrors.httpVersion(2, 0)), 505);
  assert.equal(statusOf(headErrors.connectMethod()), 405);
  assert.equal(statusOf(new NoServiceError('web')), 404);
  assert.equal(statusOf(new UpstreamConnectError('127.0.0.1', 1, 'ECONNREFUSED')), 502);
  assert.equal(statusOf(new UpstreamConnectError('127.0.0.1', 1, 'ETIMEDOUT')), 504);
  assert.equal(statusOf(new LaunchError('web', 'x')), 502);
  assert.equal(statusOf(new ReadinessTimeoutError('web', 'x', [])), 504);
  assert.equal(statusOf(new LaunchCancelledError('web', 'stopped')), 503);
  assert.equal(statusOf(new ServiceStoppedError('web', '/c.toml')), 503);
  assert.equal(statusOf(controlErrors.notControllable('web')), 409);
  assert.equal(statusOf(controlErrors.crossSite('origin')), 403);
  assert.equal(statusOf(new ApiError(418, 'teapot')), 418);
  assert.equal(statusOf(new Error('a bug')), 500);
  assert.equal(statusOf('not even an error'), 500);
});

test('a cancelled launch has a code of its own, says why, and says when a restart replaced it', () => {
  const restarted = new LaunchCancelledError('web', 'restarted');
  assert.equal(restarted.code, 'NORIKAE_ERR_LAUNCH_CANCELLED');
  assert.equal(restarted.replaced, true);
  assert.equal(restarted.message, 'web was not launched: it was restarted.');
  assert.equal(new LaunchCancelledError('web', 'held').replaced, false);
  assert.ok(!(restarted instanceof LaunchError), 'a cancellation is not a failed launch');
});

test('a config error names its file and position, or only its file, or stands alone when there is no file', () => {
  assert.equal(new ConfigError('/c.toml', 'bad', { line: 3, column: 5 }).message, '/c.toml:3:5: bad');
  assert.equal(new ConfigError('/c.toml', 'unreadable').message, '/c.toml: unreadable');
  assert.equal(new ConfigError(undefined, 'no config file found').message, 'no config file found');
});

test('the start command of a stopped service is one shell word per argument', () => {
  assert.equal(new ServiceStoppedError('web', "/home/me/my projects/it's.toml").startCommand,
    "norikae-splice start web --config '/home/me/my projects/it'\\''s.toml'");
});

test('an IPv6 upstream is written in brackets, in the message and on the 502 and 504 pages', () => {
  const [service] = parseConfig('[service.web]\nport = 14102\nupstream = "::1"\n', '/c.toml').services;
  for (const reason of ['ETIMEDOUT', 'ECONNREFUSED', 'EHOSTUNREACH']) {
    const error = new UpstreamConnectError('::1', 14102, reason);
    assert.match(error.message, /\[::1\]:14102/);
    const page = upstreamErrorPage(service!, error);
    assert.match(page.message, /\[::1\]:14102/, reason);
    assert.doesNotMatch(page.message, /(^|[^[])::1:14102/, reason);
  }
  assert.match(upstreamErrorPage(service!, new UpstreamConnectError('127.0.0.1', 3000, 'ETIMEDOUT')).message, /127\.0\.0\.1:3000 did not/);
});
