import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { configKey, sameConfig } from '../lib/config.js';
import { findConfigFile, loadConfig, parseConfig } from '../lib/config-file.js';
import { ConfigError } from '../lib/errors.js';

const FILE = '/home/dev/norikae.toml';

/** The ConfigError that parsing `source` throws. */
function configError(source: string): ConfigError {
  try {
    parseConfig(source, FILE);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${err}`);
    return err;
  }
  assert.fail('expected the config to be refused');
}

describe('parseConfig', () => {
  test('reads the original Norikae format unchanged', () => {
    const config = parseConfig(`
[service.django]
host = "django.localhost"
port = 8001
cwd = "~/Projects/my-django-project"
command = "uv run manage.py runserver {port}"
delay = 2
`, FILE);
    assert.deepEqual(config.listen, [{ host: '127.0.0.1', port: 80 }]);
    assert.equal(config.maxHeadSize, 16 * 1024);
    assert.match(config.logDir, /norikae\/logs$/);
    const [django] = config.services;
    assert.deepEqual(django, {
      name: 'django',
      hosts: ['django.localhost'],
      port: 8001,
      upstream: undefined,
      cwd: join(homedir(), 'Projects/my-django-project'),
      command: 'uv run manage.py runserver {port}',
      delay: 2,
      env: {},
      readyTimeout: 30,
      idleTimeout: undefined,
      stopTimeout: 5,
      listen: [],
      ready: { tcp: true, http: undefined, log: undefined },
      tls: 'terminate',
      httpsRedirect: false,
      forwardedHeaders: true,
      requires: [],
      stop: undefined,
      idleCooldown: 30,
      terminal: false,
    });
  });

  test('normalises hosts, listen addresses and every service key', () => {
    const config = parseConfig(`
listen = ["127.0.0.1:8080", "[::1]:8080", 9000]
max_head_size = 32768
idle_timeout = 600
stop_timeout = 2
log_dir = "logs"

[service.app]
host = ["App.Localhost.", "*.App.localhost"]
port = 3000
upstream = "::1"
cwd = "sites/app"
command = "vite --port {port}"
delay = 0.5
env = { NODE_ENV = "development", WORKERS = 2 }
ready_timeout = 60
idle_timeout = 900
listen = [5433, "127.0.0.2:5434"]
`, FILE);
    assert.deepEqual(config.listen, [
      { host: '127.0.0.1', port: 8080 }, { host: '::1', port: 8080 }, { host: '127.0.0.1', port: 9000 },
    ]);
    assert.equal(config.maxHeadSize, 32768);
    assert.equal(config.logDir, '/home/dev/logs');
    const [app] = config.services;
    assert.deepEqual(app!.hosts, ['app.localhost', '*.app.localhost']);
    assert.equal(app!.upstream, '::1');
    assert.equal(app!.cwd, '/home/dev/sites/app');
    assert.deepEqual(app!.env, { NODE_ENV: 'development', WORKERS: '2' });
    assert.equal(app!.delay, 0.5);
    assert.equal(app!.readyTimeout, 60);
    assert.equal(app!.idleTimeout, 900, 'the service overrides the top-level default');
    assert.equal(app!.stopTimeout, 2, 'the top-level default applies');
    assert.deepEqual(app!.listen, [{ host: '127.0.0.1', port: 5433 }, { host: '127.0.0.2', port: 5434 }]);
  });

  test('a service without host or listen is reached at NAME.localhost; one with listen only has no host', () => {
    const config = parseConfig('[service.Blog]\nport = 4000\n[service.pg]\nlisten = 5433\nport = 5432\n', FILE);
    assert.deepEqual(config.services.map((s) => s.hosts), [['blog.localhost'], []]);
  });

  test('a TOML syntax error names file, line and column', () => {
    const err = configError('listen = 8080\n[service.a]\nport = = 3\n');
    assert.equal(err.line, 3);
    assert.equal(err.column, 8);
    assert.match(err.message, /^\/home\/dev\/norikae\.toml:3:8: /);
    assert.ok(err.codeFrame?.includes('3 | port = = 3'), err.codeFrame);
  });

  test('TOML syntax errors say the usual mistake behind the parser\'s words, in the same code frame as other errors', () => {
    const cases: [string, RegExp, number][] = [
      ['[service.bad\nport = 1\n', /:1:13: illegal character in key: the table header has no closing "\]"$/, 1],
      ['[service.a]\ncommand = "npm run dev\nport = 1\n', /:2:\d+: .*: the string is not closed \(a missing quote at the end of the line\?\)$/, 2],
      ['[service.a]\nport =\n', /:2:\d+: invalid value: there is no value after "="$/, 2],
      ['[service.a]\nhost = ["a.localhost"\nport = 1\n', /:3:1: .*: an array or inline table opened before this line is not closed$/, 3],
      ['[service.a]\nport = 1\n[service.a]\n', /:3:\d+: .*: this table or key is already defined above$/, 3],
    ];
    for (const [source, pattern, line] of cases) {
      const err = configError(source);
      assert.match(err.message, pattern, source);
      assert.equal(err.line, line, source);
      assert.match(err.codeFrame ?? '', new RegExp(`^${line} \\| `, 'm'), source);
    }
  });

  test('a mistake on a line of megabytes is shown cut around its column, in the message and the code frame', () => {
    const long = 'x'.repeat(3_000_000);
    const cases: [string, RegExp][] = [
      // A TOML syntax error at the end of the line, a value of the wrong type, a host name that is not one.
      [`[service.web]\nport = 3000\ncommand = "${long}" junk\n`, /:3:\d+: /],
      [`[service.web]\nport = "${long}"\n`, /:2:1: expected a whole number from 1 to 65535, got string "x{80}…"$/],
      [`[service.web]\nport = 3000\nhost = "${long}"\n`, /:3:1: "x{80}…" is not a host name/],
      [`[service.web]\nport = 3000\n${long} = 1\n`, /:3:1: unknown key "x{80}…"/],
    ];
    for (const [source, pattern] of cases) {
      const err = configError(source);
      assert.match(err.message, pattern);
      assert.ok(err.message.length < 1000, `a message of ${err.message.length} characters`);
      const [text, caret] = (err.codeFrame ?? '').split('\n');
      assert.ok(text!.length < 200 && caret!.length < 200, `a code frame of ${err.codeFrame?.length} characters`);
      // The caret still points under the column, at an x (or at the mistake after them).
      const column = caret!.indexOf('^');
      assert.ok(column > 0 && column < text!.length, err.codeFrame);
      if (err.column! > 100) assert.match(text!, /^\d+ \| …x+" junk$/);
    }
  });

  test('an unknown key is named, located and matched to the nearest valid one', () => {
    const err = configError('listen = 8080\n\n[service.web]\nport = 3000\n  comand = "npm run dev"\n');
    assert.match(err.message, /:5:3: unknown key "comand" in \[service\.web\]; did you mean "command"\?/);
    assert.equal(err.line, 5);
    assert.equal(err.column, 3);
    const top = configError('lisen = 8080\n');
    assert.match(top.message, /:1:1: unknown key "lisen" at the top level; did you mean "listen"\?/);
    const far = configError('[service.web]\nport = 3000\nwhatever = 1\n');
    assert.doesNotMatch(far.message, /did you mean/);
  });

  test('a misspelled table is an unknown key with a suggestion', () => {
    const err = configError('[services.web]\nport = 3000\n');
    assert.match(err.message, /:1:2: unknown key "services" at the top level; did you mean "service"\?/);
  });

  test('wrong types and out-of-range values are errors at the key', () => {
    const cases: [string, RegExp, number][] = [
      ['[service.a]\nport = "3000"\n', /expected a whole number from 1 to 65535, got string "3000"/, 2],
      ['[service.a]\nport = 70000\n', /expected a whole number from 1 to 65535, got number 70000/, 2],
      ['[service.a]\nport = 0\n', /from 1 to 65535/, 2],
      ['[service.a]\nport = 1\ndelay = -1\n', /delay|seconds/, 3],
      ['[service.a]\nport = 1\nready_timeout = 0\n', /seconds above 0/, 3],
      ['[service.a]\nport = 1\nhost = 5\n', /expected a host name/, 3],
      ['[service.a]\nport = 1\nhost = "a.localhost:80"\n', /is not a host name/, 3],
      ['[service.a]\nport = 1\nhost = "a.*.localhost"\n', /is not a host name/, 3],
      ['[service.a]\nport = 1\nenv = { A = [1] }\n', /environment values are strings/, 3],
      ['[service.a]\nport = 1\ncommand = ""\n', /non-empty string/, 3],
      ['listen = "localhost"\n', /is not "host:port"/, 1],
      ['listen = 65536\n', /not a port number/, 1],
      ['listen = "[127.0.0.1]:80"\n', /not an IPv6 address/, 1],
      ['[service.a]\nport = 1\nlisten = 0\n', /fixed port/, 3],
      ['[service.a]\nport = 1\nupstream = "not valid!"\n', /not an IP address or host name/, 3],
      ['service = 3\n', /expected a table/, 1],
    ];
    for (const [source, pattern, line] of cases) {
      const err = configError(source);
      assert.match(err.message, pattern, source);
      assert.equal(err.line, line, source);
    }
  });

  test('a service with neither port nor command is refused', () => {
    const err = configError('[service.web]\nhost = "web.localhost"\n');
    assert.match(err.message, /:1:10: service "web" needs a `port`/);
  });

  test('a service with a command and no port is accepted (the port is chosen at launch)', () => {
    const config = parseConfig('[service.web]\ncommand = "npm run dev"\n', FILE);
    assert.equal(config.services[0]!.port, undefined);
  });

  test('one host claimed by two services is refused, naming both', () => {
    const err = configError('[service.a]\nport = 1\nhost = "x.localhost"\n[service.b]\nport = 2\nhost = ["y.localhost", "X.localhost"]\n');
    assert.match(err.message, /:6:1: host "x\.localhost" is claimed by both "a" and "b"/);
  });

  test('ready checks, requires and stop', () => {
    const config = parseConfig(`
[service.db]
port = 5432
command = "postgres"
stop = "pg_ctl stop"
[service.api]
port = 3000
command = "npm run dev"
requires = ["db"]
ready = { http = "/healthz", log = "Watching" }
[service.web]
port = 4000
requires = "api"
ready = "tcp"
`, FILE);
    const [db, api, web] = config.services;
    assert.equal(db!.stop, 'pg_ctl stop');
    assert.deepEqual(db!.ready, { tcp: true, http: undefined, log: undefined });
    assert.deepEqual(api!.requires, ['db']);
    assert.equal(api!.ready.tcp, false);
    assert.equal(api!.ready.http, '/healthz');
    assert.ok(api!.ready.log!.test('Watching for file changes'));
    assert.deepEqual(web!.requires, ['api']);
  });

  test('bad ready checks, unknown or cyclic requires are errors at the key', () => {
    const cases: [string, RegExp, number][] = [
      ['[service.a]\nport = 1\nready = "http"\n', /expected "tcp" or a table/, 3],
      ['[service.a]\nport = 1\nready = { htpp = "/x" }\n', /unknown key "htpp" in \[service\.a\.ready\]; did you mean "http"\?/, 3],
      ['[service.a]\nport = 1\nready = { http = "healthz" }\n', /must start with "\/"/, 3],
      ['[service.a]\nport = 1\nready = { log = "(" }\n', /not a regular expression/, 3],
      ['[service.a]\nport = 1\nready = {}\n', /at least one check/, 3],
      ['[service.a]\nport = 1\nrequires = ["dbb"]\n[service.db]\nport = 2\n', /"dbb" is not a service; did you mean "db"\?/, 3],
      ['[service.a]\nport = 1\nrequires = [3]\n', /expected service names/, 3],
      ['[service.a]\nport = 1\nrequires = ["b"]\n[service.b]\nport = 2\nrequires = ["c"]\n[service.c]\nport = 3\nrequires = ["a"]\n',
        /services require each other in a cycle: a → b → c → a/, 3],
      ['[service.a]\nport = 1\nrequires = ["a"]\n', /cycle: a → a/, 3],
      // Services that require nothing, before and inside the chain, change nothing of what is found.
      ['[service.x]\nport = 9\n[service.d]\nport = 4\nrequires = ["x", "b"]\n[service.b]\nport = 2\nrequires = ["c"]\n[service.c]\nport = 3\nrequires = ["x", "b"]\n',
        /services require each other in a cycle: b → c → b/, 8],
    ];
    for (const [source, pattern, line] of cases) {
      const err = configError(source);
      assert.match(err.message, pattern, source);
      assert.equal(err.line, line, source);
    }
  });

  test('the dashboard host is configurable, can be switched off, and cannot be claimed by a service', () => {
    assert.equal(parseConfig('[service.a]\nport = 1\n', FILE).dashboardHost, 'norikae.localhost');
    assert.equal(parseConfig('dashboard = "Control.Localhost"\n[service.a]\nport = 1\n', FILE).dashboardHost, 'control.localhost');
    assert.equal(parseConfig('dashboard = false\n[service.a]\nport = 1\n', FILE).dashboardHost, undefined);
    assert.match(configError('[service.a]\nport = 1\nhost = "norikae.localhost"\n').message, /claimed by both "the dashboard/);
    assert.match(configError('dashboard = 3\n').message, /expected a host name, true or false/);
  });

  test('dotted keys and inline tables are located too', () => {
    const err = configError('service.web.port = 1\nservice.web.prot = 2\n');
    assert.match(err.message, /:2:13: unknown key "prot"/);
  });

  test('lines inside a multi-line string are never taken for keys', () => {
    const command = 'command = """\ncd app && env NODE_ENV=development npm run dev\nport = 1\n"""\n';
    const port = configError(`[service.web]\n${command}port = 99999\n`);
    assert.match(port.message, /:6:1: expected a whole number from 1 to 65535, got number 99999/);
    const typo = configError(`[service.web]\nport = 3000\n${command.replaceAll('"""', "'''")}comand = "x"\n`);
    assert.match(typo.message, /:7:1: unknown key "comand"/);
    // Opened and closed on one line, it is an ordinary value; a """ in a comment or another string opens nothing.
    const inline = configError('[service.web]\ncommand = """npm run dev"""\nport = 0\n');
    assert.match(inline.message, /:3:1: /);
    for (const line of ['command = "npm run dev" # not """ a string', "command = '''echo \"\"\"'''", "command = 'echo \"\"\"'", 'command = "echo \\"\\"\\" done"']) {
      assert.match(configError(`[service.web]\n${line}\nport = 0\n`).message, /:3:1: /, line);
    }
  });

  test('two listeners on one address are refused at the second', () => {
    const cases: [string, RegExp][] = [
      ['listen = 8080\n[service.a]\nport = 1\nlisten = 5433\n[service.b]\nport = 2\nlisten = [5434, "127.0.0.1:5433"]\n',
        /:7:1: 127\.0\.0\.1:5433 is also the `listen` of service "a" \(127\.0\.0\.1:5433\)/],
      ['listen = 8080\n[service.a]\nport = 1\nlisten = 8080\n', /:4:1: 127\.0\.0\.1:8080 is also the `listen` of norikae-splice/],
      ['listen = "0.0.0.0:8080"\n[service.a]\nport = 1\nlisten = "127.0.0.1:8080"\n', /:4:1: .*0\.0\.0\.0:8080/],
      ['listen = ["[::]:8080", "localhost:9000"]\n[service.a]\nport = 1\nlisten = ["[::1]:8080"]\n', /:4:1: \[::1\]:8080 is also/],
      ['listen = ["127.0.0.1:9000", "localhost:9000"]\n', /:1:1: localhost:9000 is also/],
    ];
    for (const [source, pattern] of cases) assert.match(configError(source).message, pattern, source);
    // Other families, other addresses and port 0 (chosen by the system) do not clash.
    parseConfig('listen = ["0.0.0.0:8080", "[::1]:8080", "127.0.0.1:0", "127.0.0.1:0"]\n[service.a]\nport = 1\nlisten = "[::1]:8081"\n', FILE);
    parseConfig('listen = "127.0.0.2:8080"\n[service.a]\nport = 1\nlisten = "127.0.0.1:8080"\n', FILE);
  });

  test('a service whose port is one of norikae-splice\'s own listeners is refused (it would loop into itself)', () => {
    assert.match(configError('listen = 8080\n[service.a]\nport = 8080\n').message,
      /:3:1: port 8080 is the `listen` of norikae-splice \(127\.0\.0\.1:8080\), so "a" would connect back to norikae-splice/);
    assert.match(configError('[service.pg]\nlisten = 5433\nport = 5433\n').message, /:3:1: port 5433 is the `listen` of service "pg"/);
    assert.match(configError('listen = "0.0.0.0:8080"\n[service.a]\nport = 8080\n').message, /:3:1: port 8080/);
    assert.match(configError('listen = "0.0.0.0:8080"\n[service.a]\nport = 8080\nupstream = "127.0.0.2"\n').message, /:3:1: port 8080/);
    assert.match(configError('listen = "[::]:8080"\n[service.a]\nport = 8080\nupstream = "::1"\n').message, /:3:1: port 8080/);
    // A connect to the unspecified address reaches this machine's listeners of its family.
    assert.match(configError('listen = 8080\n[service.a]\nport = 8080\nupstream = "0.0.0.0"\n').message, /:3:1: port 8080/);
    assert.match(configError('listen = "[::1]:8080"\n[service.a]\nport = 8080\nupstream = "::"\n').message, /:3:1: port 8080/);
    assert.match(configError('listen = "0.0.0.0:8080"\n[service.a]\nport = 8080\nupstream = "0.0.0.0"\n').message, /:3:1: port 8080/);
    // ... which is loopback: another address of this machine is not reached through it.
    parseConfig('listen = "127.0.0.2:8080"\n[service.a]\nport = 8080\nupstream = "0.0.0.0"\n', FILE);
    // On an upstream elsewhere, the same port number is another server, also behind a wildcard listener.
    parseConfig('listen = 8080\n[service.a]\nport = 8080\nupstream = "10.0.0.5"\n', FILE);
    parseConfig('listen = "127.0.0.1:8080"\n[service.a]\nport = 8080\nupstream = "::1"\n', FILE);
    parseConfig('listen = "0.0.0.0:8080"\n[service.a]\nport = 8080\nupstream = "192.0.2.10"\n[service.b]\nport = 8080\nupstream = "devbox.example"\n', FILE);
    // --listen replaces the file's listen before the check.
    parseConfig('[service.nginx]\nport = 80\n', FILE, { listen: [{ host: '127.0.0.1', port: 8080 }] });
    assert.throws(() => parseConfig('[service.a]\nport = 8080\n', FILE, { listen: [{ host: '127.0.0.1', port: 8080 }] }),
      /:2:1: port 8080 is the --listen of norikae-splice/);
  });

  test('service names: "_" may lead, "-" and "." may not; inf and nan are named as TOML writes them', () => {
    assert.equal(parseConfig('[service._db]\nport = 5432\n', FILE).services[0]!.hosts[0], '_db.localhost');
    assert.match(configError('[service.-db]\nport = 1\n').message, /service name "-db" must be .*and not start with "-" or "\."/);
    assert.match(configError('[service.".db"]\nport = 1\n').message, /not start with "-" or "\."/);
    assert.match(configError('[service.a]\nport = inf\n').message, /got number inf$/);
    assert.match(configError('[service.a]\nport = 1\ndelay = -inf\n').message, /got number -inf$/);
    assert.match(configError('[service.a]\nport = nan\n').message, /got number nan$/);
  });
});

describe('configKey and sameConfig', () => {
  const service = (body: string) => parseConfig(`[service.web]\nport = 3000\n${body}`, FILE);

  test('ready.log patterns compare by source and flags, not as the {} JSON makes of every RegExp', () => {
    assert.ok(sameConfig(service('ready = { log = "ready in \\\\d+ ms" }'), service('ready = { log = "ready in \\\\d+ ms" }')));
    assert.ok(!sameConfig(service('ready = { log = "ready" }'), service('ready = { log = "listening" }')));
    assert.ok(!sameConfig({ log: /ready/ }, { log: /ready/i }));
    assert.equal(configKey({ log: /a.b/ }), '{"log":"/a.b/"}');
  });

  test('the order keys are written in does not count; the order of a list does', () => {
    assert.ok(sameConfig(service('env = { A = "1", B = "2" }'), service('env = { B = "2", A = "1" }')));
    assert.equal(configKey({ b: 1, a: { d: 2, c: 3 } }), configKey({ a: { c: 3, d: 2 }, b: 1 }));
    assert.ok(!sameConfig(service('env = { A = "1" }'), service('env = { A = "2" }')));
    assert.ok(!sameConfig({ hosts: ['a', 'b'] }, { hosts: ['b', 'a'] }));
  });

  test('the key is JSON.stringify with sorted keys and RegExps as text, and sameConfig agrees with it, for any value', () => {
    const reference = (value: unknown): string => JSON.stringify(value, (_key, item: unknown) => {
      if (item instanceof RegExp) return String(item);
      if (item === null || typeof item !== 'object' || Array.isArray(item)) return item;
      return Object.fromEntries(Object.entries(item).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    });
    const leaf = fc.oneof(fc.string(), fc.double(), fc.integer(), fc.boolean(), fc.constant(null), fc.constant(undefined),
      fc.string().map((source) => new RegExp(source.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&'), 'i')));
    // Not array-index names: an object puts those first whatever their order, which the reference's
    // Object.fromEntries then does too (configKey sorts them with the others, which is as stable).
    const name = fc.string().filter((text) => !/^(0|[1-9][0-9]*)$/.test(text));
    const { tree } = fc.letrec((tie) => ({
      tree: fc.oneof({ depthSize: 'small' }, leaf, fc.array(tie('tree')), fc.dictionary(name, tie('tree'))),
    }));
    fc.assert(fc.property(fc.dictionary(name, tree), (value) => assert.equal(configKey(value), reference(value))), { numRuns: 500 });
    // sameConfig walks both values instead of writing them out: it must agree with the keys.
    const reorder = (value: unknown): unknown => (Array.isArray(value) ? value.map(reorder)
      : value !== null && typeof value === 'object' && !(value instanceof RegExp)
        ? Object.fromEntries(Object.entries(value).reverse().map(([key, item]) => [key, reorder(item)])) : value);
    fc.assert(fc.property(fc.dictionary(name, tree), fc.dictionary(name, tree), (a, other) => {
      assert.equal(sameConfig(a, reorder(a)), true);
      assert.equal(sameConfig(a, other), configKey(a) === configKey(other));
      const mixed = { ...(reorder(a) as object), ...other };
      assert.equal(sameConfig(a, mixed), configKey(a) === configKey(mixed));
      assert.equal(sameConfig(mixed, a), configKey(a) === configKey(mixed));
    }), { numRuns: 500 });
    const config = service('command = "npm run dev"\nenv = { B = "2", A = "1" }\nready = { log = "ready" }');
    assert.equal(configKey(config), reference(config));
    assert.equal(configKey(config.services[0]), reference(config.services[0]));
    assert.ok(!sameConfig({ a: 1, b: undefined }, { a: 1, c: 2 }));
    assert.ok(sameConfig({ a: 1, b: undefined }, { a: 1 }));
    assert.ok(sameConfig([undefined], [null]));
  });

  test('any changed setting of a service makes another key', () => {
    const base = service('command = "npm run dev"');
    assert.ok(sameConfig(base, service('command = "npm run dev"')));
    assert.ok(!sameConfig(base, service('command = "npm start"')));
    assert.ok(!sameConfig(base.services[0], { ...base.services[0], cwd: '/elsewhere' }));
    assert.ok(!sameConfig(base, { ...base, listen: [{ host: '0.0.0.0', port: 80 }] }));
  });
});

describe('findConfigFile and loadConfig', () => {
  test('--config wins, then ./norikae.toml, then $XDG_CONFIG_HOME/norikae/config.toml', (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'norikae-config-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const project = join(dir, 'project');
    const xdg = join(dir, 'xdg');
    mkdirSync(project);
    mkdirSync(join(xdg, 'norikae'), { recursive: true });
    const env = { XDG_CONFIG_HOME: xdg };

    assert.throws(() => findConfigFile(undefined, project, env), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      // Not `…/norikae.toml: no config file found`: that reads as a position in a file that exists.
      assert.match(err.message, /^no config file found.*norikae\.toml.*config\.toml.*--config/);
      assert.equal(err.file, undefined);
      return true;
    });
    writeFileSync(join(xdg, 'norikae', 'config.toml'), '[service.a]\nport = 1\n');
    assert.equal(findConfigFile(undefined, project, env), join(xdg, 'norikae', 'config.toml'));
    writeFileSync(join(project, 'norikae.toml'), '[service.b]\nport = 2\n');
    assert.equal(findConfigFile(undefined, project, env), join(project, 'norikae.toml'));
    assert.equal(findConfigFile('other.toml', project, env), join(project, 'other.toml'));
    assert.equal(findConfigFile('~/n.toml', project, env), join(homedir(), 'n.toml'));
    assert.equal(loadConfig(join(project, 'norikae.toml')).services[0]!.name, 'b');
  });

  test('a file that is not UTF-8 is refused at its first bad byte, with its position; UTF-8 text is read as it is', (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'norikae-config-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'norikae.toml');
    writeFileSync(file, Buffer.concat([Buffer.from('[service.web]\nport = 3000\ncommand = "echo caf'), Buffer.from([0xe9]), Buffer.from('"\n')]));
    assert.throws(() => loadConfig(file), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.equal(err.message, `${file}:3:20: byte 0xe9 is not UTF-8: a config file is UTF-8 text (was it saved as Latin-1?)`);
      assert.match(err.codeFrame ?? '', /^3 \| command = "echo caf/m);
      return true;
    });
    // An overlong encoding of "/" and a lone surrogate are not UTF-8 either.
    for (const bad of [[0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xe2, 0x82]]) {
      writeFileSync(file, Buffer.concat([Buffer.from('[service.web]\nport = 3000\ncwd = "x'), Buffer.from(bad)]));
      assert.throws(() => loadConfig(file), /:3:9: byte 0x[0-9a-f]{2} is not UTF-8/, bad.join(','));
    }
    writeFileSync(file, '[service.web]\nport = 3000\ncommand = "echo café 🚆"\n');
    assert.equal(loadConfig(file).services[0]!.command, 'echo café 🚆');
  });

  test('a missing file is a ConfigError naming it', () => {
    assert.throws(() => loadConfig('/nonexistent/norikae.toml'), /\/nonexistent\/norikae\.toml: cannot read the config file: there is no such file$/);
    assert.throws(() => loadConfig(tmpdir()), /cannot read the config file: it is a folder, not a file$/);
  });
});

describe('HTTPS keys', () => {
  test('`https` takes addresses like `listen`; --https replaces it; a clash with `listen` is an error at its key', () => {
    const config = parseConfig('listen = 8080\nhttps = [8443, "[::1]:8443"]\n', FILE);
    assert.deepEqual(config.https, [{ host: '127.0.0.1', port: 8443 }, { host: '::1', port: 8443 }]);
    assert.deepEqual(parseConfig('listen = 8080\n', FILE).https, []);
    assert.deepEqual(loadConfigText('listen = 8080\nhttps = 8443\n', { https: [{ host: '127.0.0.1', port: 9443 }] }).https, [{ host: '127.0.0.1', port: 9443 }]);
    const clash = configError('listen = 8080\nhttps = "127.0.0.1:8080"\n');
    assert.match(clash.message, /:2:1: 127\.0\.0\.1:8080 is also the `listen` of norikae-splice/);
  });

  test('tls, https_redirect and forwarded_headers: their defaults, their values, and mistakes', () => {
    const [service] = parseConfig('[service.a]\nport = 1\ntls = "passthrough"\nhttps_redirect = true\nforwarded_headers = false\n', FILE).services;
    assert.equal(service!.tls, 'passthrough');
    assert.equal(service!.httpsRedirect, true);
    assert.equal(service!.forwardedHeaders, false);
    assert.match(configError('[service.a]\nport = 1\ntls = "on"\n').message, /:3:1: expected "terminate" \(norikae-splice terminates TLS\) or "passthrough"/);
    assert.match(configError('[service.a]\nport = 1\nhttps_redirect = "yes"\n').message, /:3:1: expected true or false, got string "yes"/);
  });
});

/** A config read from a real file with `options` (as the CLI's flags give them). */
function loadConfigText(text: string, options: Parameters<typeof loadConfig>[1]): ReturnType<typeof loadConfig> {
  const dir = mkdtempSync(join(tmpdir(), 'norikae-config-'));
  try {
    writeFileSync(join(dir, 'norikae.toml'), text);
    return loadConfig(join(dir, 'norikae.toml'), options);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
