import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { loadConfig } from '../lib/config-file.js';
import { configWarnings, formatWarning } from '../lib/config-warnings.js';

/** A temporary folder with `bin/tool` (executable), `bin/plain` (not executable), `run.sh` and `file`; removed after the test. */
function workspace(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'norikae-warnings-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'bin'));
  writeFileSync(join(dir, 'bin', 'tool'), '#!/bin/sh\n');
  chmodSync(join(dir, 'bin', 'tool'), 0o755);
  writeFileSync(join(dir, 'bin', 'plain'), '#!/bin/sh\n');
  chmodSync(join(dir, 'bin', 'plain'), 0o644);
  writeFileSync(join(dir, 'run.sh'), '#!/bin/sh\n');
  chmodSync(join(dir, 'run.sh'), 0o755);
  writeFileSync(join(dir, 'file'), '');
  return dir;
}

/** The warnings for `toml` written as dir/norikae.toml, with PATH = `path` (null: no PATH at all). */
function warningsFor(dir: string, toml: string, path: string | null = join(dir, 'bin')) {
  const file = join(dir, 'norikae.toml');
  writeFileSync(file, toml);
  return configWarnings(loadConfig(file), { env: path === null ? {} : { PATH: path } });
}

describe('configWarnings', () => {
  test('a cwd that does not exist or is not a folder, at its line', (t) => {
    const dir = workspace(t);
    const warnings = warningsFor(dir, '[service.web]\nport = 3000\ncommand = "tool"\ncwd = "nowhere"\n\n[service.api]\nport = 3001\ncommand = "tool"\ncwd = "file"\n');
    assert.deepEqual(warnings, [
      { service: 'web', key: 'cwd', message: `cwd ${join(dir, 'nowhere')} does not exist, so its command cannot start`, line: 4, column: 1 },
      { service: 'api', key: 'cwd', message: `cwd ${join(dir, 'file')} is not a folder, so its command cannot start`, line: 9, column: 1 },
    ]);
    assert.equal(formatWarning(join(dir, 'norikae.toml'), warnings[0]!), `${join(dir, 'norikae.toml')}:4:1: web: ${warnings[0]!.message}`);
  });

  test('a program not on PATH, found past VAR=value and exec, and up to an operator', (t) => {
    const dir = workspace(t);
    const toml = (command: string) => `[service.web]\nport = 3000\ncommand = ${JSON.stringify(command)}\ncwd = "."\n`;
    for (const command of ['tool --port {port}', 'NODE_ENV=development A=1 exec tool', 'tool&&x']) {
      assert.deepEqual(warningsFor(dir, toml(command)), [], command);
    }
    for (const [command, program] of [['nosuch-program --port {port}', 'nosuch-program'], ['A=1 exec missing', 'missing'], ['plain', 'plain'], ['missing;tool', 'missing']]) {
      assert.deepEqual(warningsFor(dir, toml(command!)), [{
        service: 'web', key: 'command', message: `"${program}" (the program of its command) is not on PATH, so the launch will fail with "not found"`, line: 3, column: 1,
      }], command);
    }
    // Every folder of PATH is searched; a service's own env PATH is the one its shell gets.
    assert.deepEqual(warningsFor(dir, toml('tool'), ['/nonexistent', join(dir, 'bin')].join(':')), []);
    assert.equal(warningsFor(dir, toml('tool'), '/nonexistent').length, 1);
    assert.deepEqual(warningsFor(dir, `${toml('tool')}env = { PATH = ${JSON.stringify(join(dir, 'bin'))} }\n`, '/nonexistent'), []);
  });

  test('./x is taken from cwd', (t) => {
    const dir = workspace(t);
    const toml = (command: string) => `[service.web]\nport = 3000\ncommand = ${JSON.stringify(command)}\ncwd = "${dir}"\n`;
    assert.deepEqual(warningsFor(dir, toml('./run.sh {port}')), []);
    assert.deepEqual(warningsFor(dir, toml('./bin/tool')), []);
    assert.deepEqual(warningsFor(dir, toml(`${dir}/bin/tool`)), []);
    assert.deepEqual(warningsFor(dir, toml('./missing.sh')).map((w) => w.message), [`"./missing.sh" (the program of its command) does not exist in ${dir}`]);
    assert.deepEqual(warningsFor(dir, toml('./bin/plain')).map((w) => w.message), ['"./bin/plain" (the program of its command) is not an executable file']);
    assert.deepEqual(warningsFor(dir, toml('./bin')).map((w) => w.message), ['"./bin" (the program of its command) is not an executable file']);
  });

  test('a lookup made once serves every service alike, but a relative PATH entry is looked up in each service\'s own cwd', (t) => {
    const dir = workspace(t);
    mkdirSync(join(dir, 'a', 'bin'), { recursive: true });
    mkdirSync(join(dir, 'b'));
    writeFileSync(join(dir, 'a', 'bin', 'mine'), '#!/bin/sh\n');
    chmodSync(join(dir, 'a', 'bin', 'mine'), 0o755);
    const service = (name: string, command: string, cwd: string) => `[service.${name}]\nport = ${3000 + name.length}\ncommand = "${command}"\ncwd = "${cwd}"\n\n`;
    // `bin` (relative) is a/bin for a and b/bin for b: the same program, found for one only.
    const toml = service('a', 'mine', join(dir, 'a')) + service('bb', 'mine', join(dir, 'b')) + service('ccc', 'tool', join(dir, 'a')) + service('dddd', 'tool', join(dir, 'b'));
    const warnings = warningsFor(dir, toml, `bin${':'}${join(dir, 'bin')}`);
    assert.deepEqual(warnings.map((w) => `${w.service}: ${w.message}`), ['bb: "mine" (the program of its command) is not on PATH, so the launch will fail with "not found"']);
    // The same with absolute entries only: the answer for one cwd is every cwd's.
    assert.deepEqual(warningsFor(dir, toml, join(dir, 'bin')).map((w) => w.service), ['a', 'bb']);
  });

  test('when in doubt, nothing: builtins, keywords, quotes, expansions, subshells, PATH set by the command, no PATH at all', (t) => {
    const dir = workspace(t);
    const toml = (command: string) => `[service.web]\nport = 3000\ncommand = ${JSON.stringify(command)}\n`;
    for (const command of [
      'cd web && nosuch', '. ./env.sh; nosuch', 'if true; then nosuch; fi', '"nosuch" run', '$HOME/nosuch', '$(nosuch)', '`nosuch`', '(nosuch)',
      '{ nosuch; }', '~/bin/nosuch', 'exec -a name nosuch', 'PATH=/opt/bin nosuch', 'PATH=./bin:$PATH nosuch', 'A="x y" nosuch', 'nosu*',
      'test -f x && nosuch', 'exec', 'A=1',
    ]) {
      assert.deepEqual(warningsFor(dir, toml(command)), [], command);
    }
    assert.deepEqual(warningsFor(dir, toml('nosuch'), null), []);
    // A service without a command is never launched: its cwd is not looked at.
    assert.deepEqual(warningsFor(dir, '[service.web]\nport = 3000\ncwd = "nowhere"\n'), []);
  });
});
