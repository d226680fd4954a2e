import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseConfig } from '../lib/config-file.js';
import { Router } from '../lib/router.js';

const config = parseConfig(`
[service.app]
port = 1
host = ["app.localhost", "*.app.localhost"]
[service.api]
port = 2
host = "api.app.localhost"
[service.catchall]
port = 3
host = "*.localhost"
[service.deep]
port = 4
host = "*.b.c.test"
`, '/test.toml');
const router = new Router(config.services);
const route = (host: string): string | undefined => router.route(host)?.name;

describe('Router', () => {
  test('exact names win over wildcards', () => {
    assert.equal(route('app.localhost'), 'app');
    assert.equal(route('api.app.localhost'), 'api');
  });

  test('wildcards match any depth of subdomain, most specific suffix first', () => {
    assert.equal(route('x.app.localhost'), 'app');
    assert.equal(route('v1.x.app.localhost'), 'app');
    assert.equal(route('other.localhost'), 'catchall');
    assert.equal(route('a.b.c.test'), 'deep');
    assert.equal(route('z.a.b.c.test'), 'deep');
  });

  test('a wildcard does not match its own bare suffix, and unknown names route nowhere', () => {
    assert.equal(route('localhost'), undefined);
    assert.equal(route('b.c.test'), undefined);
    assert.equal(route('example.com'), undefined);
    assert.equal(route('127.0.0.1'), undefined);
    assert.equal(route(''), undefined);
  });

  test('without wildcards only exact names route', () => {
    const exactOnly = new Router(parseConfig('[service.a]\nport = 1\nhost = "a.localhost"\n', '/t.toml').services);
    assert.equal(exactOnly.route('a.localhost')?.name, 'a');
    assert.equal(exactOnly.route('x.a.localhost'), undefined);
  });
});
