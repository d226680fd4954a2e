// A read that takes the last read's services again where their tables did not change: it must
// give what a read from scratch gives (changed cwd, defaults, env order), the same objects for
// unchanged services, the same errors at the same positions, and check tmux every time.

import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { parseConfig } from '../lib/config-file.js';
import { configReuse, type ConfigReuse } from '../lib/config-reuse.js';
import { ConfigError } from '../lib/errors.js';

const FILE = '/home/dev/norikae.toml';

/** The ConfigError that reading `source` with `reuse` throws. */
function refusal(source: string, reuse: ConfigReuse, file = FILE): ConfigError {
  try {
    parseConfig(source, file, {}, reuse);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${err}`);
    return err;
  }
  assert.fail('expected the config to be refused');
}

describe('ServiceReuse', () => {
  test('an unchanged service is the same object; a changed one is read again', () => {
    const reuse = configReuse();
    const text = (apiCwd: string): string => `[service.web]\nport = 3000\ncwd = "web"\ncommand = "npm run dev"\n\n[service.api]\nport = 3001\ncwd = "${apiCwd}"\ncommand = "npm start"\n`;
    const before = parseConfig(text('api'), FILE, {}, reuse);
    const after = parseConfig(text('api2'), FILE, {}, reuse);
    assert.equal(after.services[0], before.services[0], 'web is taken as it was');
    assert.notEqual(after.services[1], before.services[1]);
    assert.equal(after.services[1]!.cwd, '/home/dev/api2', 'the changed cwd is the new one');
    assert.deepEqual(after, parseConfig(text('api2'), FILE), 'the same as a read from scratch');
  });

  test('a changed default, another file, or another order of env keys is read again', () => {
    const reuse = configReuse();
    const service = '[service.web]\nport = 3000\ncwd = "web"\nenv = { A = "1", B = "2" }\n';
    const first = parseConfig(service, FILE, {}, reuse).services[0]!;
    const withDefault = parseConfig(`idle_timeout = 60\n${service}`, FILE, {}, reuse).services[0]!;
    assert.notEqual(withDefault, first);
    assert.equal(withDefault.idleTimeout, 60);
    const elsewhere = parseConfig(`idle_timeout = 60\n${service}`, '/srv/other/norikae.toml', {}, reuse).services[0]!;
    assert.equal(elsewhere.cwd, '/srv/other/web', 'a relative cwd is taken from the new file\'s folder');
    const reordered = parseConfig('idle_timeout = 60\n[service.web]\nport = 3000\ncwd = "web"\nenv = { B = "2", A = "1" }\n', '/srv/other/norikae.toml', {}, reuse).services[0]!;
    assert.notEqual(reordered, elsewhere);
    assert.deepEqual(Object.keys(reordered.env), ['B', 'A']);
    const grown = parseConfig('idle_timeout = 60\n[service.web]\nport = 3000\ncwd = "web"\nenv = { B = "2", A = "1", C = "3" }\n', '/srv/other/norikae.toml', {}, reuse).services[0]!;
    assert.deepEqual(grown.env, { B: '2', A: '1', C: '3' }, 'a key added to a table');
  });

  test('a list that grows or shrinks is read again', () => {
    const reuse = configReuse();
    const hosts = (list: string[]): string[] => parseConfig(`[service.web]\nport = 3000\nhost = ${JSON.stringify(list)}\n`, FILE, {}, reuse).services[0]!.hosts;
    assert.deepEqual(hosts(['web.localhost']), ['web.localhost']);
    assert.deepEqual(hosts(['web.localhost', '*.web.localhost']), ['web.localhost', '*.web.localhost']);
    assert.deepEqual(hosts(['web.localhost']), ['web.localhost']);
  });

  test('errors are the same, at the same positions, whether services are taken again or not', () => {
    const reuse = configReuse();
    const good = '[service.web]\nport = 3000\n\n[service.api]\nport = 3001\n';
    parseConfig(good, FILE, {}, reuse);
    const badPort = refusal('[service.web]\nport = 3000\n\n[service.api]\nport = "x"\n', reuse);
    assert.match(badPort.message, /:5:1: expected a whole number/);
    // A clash between an unchanged service and a changed one is still found.
    const clash = refusal('[service.web]\nport = 3000\n\n[service.api]\nport = 3001\nhost = "web.localhost"\n', reuse);
    assert.match(clash.message, /:6:1: host "web.localhost" is claimed by both "web" and "api"/);
    // A syntax error in the one table edited: smol-toml's error, explained, at its line and column.
    const syntax = refusal('[service.web]\nport = 3000\n\n[service.api]\nport = 30 01\n', reuse);
    assert.equal(syntax.message, (() => {
      try {
        parseConfig('[service.web]\nport = 3000\n\n[service.api]\nport = 30 01\n', FILE);
      } catch (err) {
        return (err as Error).message;
      }
      return 'no error';
    })());
    assert.match(syntax.message, /:5:\d+: /);
    // After refusals, the good config reads as before.
    assert.deepEqual(parseConfig(good, FILE, {}, reuse), parseConfig(good, FILE));
  });

  test('`terminal = true` asks for tmux on every read, not once', (t) => {
    const bin = mkdtempSync(join(tmpdir(), 'norikae-reuse-'));
    const path = process.env.PATH;
    t.after(() => {
      process.env.PATH = path;
      rmSync(bin, { recursive: true, force: true });
    });
    writeFileSync(join(bin, 'tmux'), '#!/bin/sh\n');
    chmodSync(join(bin, 'tmux'), 0o755);
    process.env.PATH = bin;
    const reuse = configReuse();
    const source = '[service.web]\nport = 3000\ncommand = "npm run dev"\nterminal = true\n';
    assert.equal(parseConfig(source, FILE, {}, reuse).services[0]!.terminal, true);
    rmSync(join(bin, 'tmux'));
    assert.match(refusal(source, reuse).message, /:4:1: terminal = true runs the command in tmux, which is not on PATH/);
  });

  test('a run of edits reads the same as reading each from scratch', () => {
    const values = {
      port: ['3000', '3001', '0'],
      cwd: ['"a"', '"b"', '"~/c"', '"/d"'],
      command: ['"npm run dev"', '"make"'],
      host: ['"x.localhost"', '["x.localhost"]', '["x.localhost", "*.x.localhost"]', '"y.localhost"'],
      env: ['{ A = "1" }', '{ A = "1", B = 2 }', '{ B = 2, A = "1" }'],
      ready: ['"tcp"', '{ log = "up" }', '{ log = "(" }'],
      stop_timeout: ['1', '2'],
    };
    const names = ['web', 'api', 'db'];
    type Config = { stopTimeout: string | undefined; services: Map<string, Map<string, string>> };
    // One change at a time, as a person edits: most services stay as they were, so most are taken again.
    const edit = fc.oneof(
      fc.record({ kind: fc.constant('set' as const), name: fc.constantFrom(...names), key: fc.constantFrom(...Object.keys(values)), pick: fc.nat(), unset: fc.boolean() }),
      fc.record({ kind: fc.constant('default' as const), value: fc.constantFrom(undefined, '1', '5') }),
      fc.record({ kind: fc.constant('remove' as const), name: fc.constantFrom(...names) }),
    );
    const text = ({ stopTimeout, services }: Config): string => [
      stopTimeout === undefined ? '' : `stop_timeout = ${stopTimeout}`,
      ...[...services].map(([name, keys]) => [`[service.${name}]`, ...[...keys].map(([key, value]) => `${key} = ${value}`)].join('\n')),
    ].join('\n\n');
    /** The config, or the error's message (its position included). */
    const outcome = (source: string, reuse?: ConfigReuse): unknown => {
      try {
        return parseConfig(source, FILE, {}, reuse);
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        return err.message;
      }
    };
    let reused = 0;
    fc.assert(fc.property(fc.array(edit, { minLength: 1, maxLength: 12 }), (edits) => {
      const reuse = configReuse();
      const config: Config = { stopTimeout: undefined, services: new Map(names.map((name) => [name, new Map([['port', '3000'], ['command', '"make"']])])) };
      let previous = outcome(text(config), reuse);
      for (const step of edits) {
        if (step.kind === 'default') config.stopTimeout = step.value;
        else if (step.kind === 'remove') config.services.delete(step.name);
        else {
          const keys = config.services.get(step.name) ?? new Map<string, string>();
          config.services.set(step.name, keys);
          const choices = values[step.key as keyof typeof values];
          if (step.unset) keys.delete(step.key);
          else keys.set(step.key, choices[step.pick % choices.length]!);
        }
        const now = outcome(text(config), reuse);
        assert.deepEqual(now, outcome(text(config)));
        if (typeof now === 'object' && typeof previous === 'object') {
          reused += (now as { services: unknown[] }).services.filter((service) => (previous as { services: unknown[] }).services.includes(service)).length;
        }
        previous = now;
      }
    }), { numRuns: 300 });
    assert.ok(reused > 300, `services were taken again ${reused} times`);
  });
});
