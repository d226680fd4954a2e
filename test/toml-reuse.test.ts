// Parsing an edit from the last document must give what parsing the whole text gives: the same
// document (keys in the same order), or the same error at the same line and column.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { parse, TomlError } from 'smol-toml';
import { TomlReuse } from '../lib/toml-reuse.js';

/** The document, or the error smol-toml gives, as something to compare (JSON keeps the keys' order). */
function outcome(read: () => unknown): { doc?: unknown; json?: string; error?: string } {
  try {
    const doc = read();
    return { doc, json: JSON.stringify(doc) };
  } catch (err) {
    assert.ok(err instanceof TomlError, `expected a TomlError, got ${err}`);
    return { error: `${err.line}:${err.column}: ${err.message}` };
  }
}

const services = (ports: number[]): string => `log_dir = "logs"\n${ports.map((port, i) => `\n[service.s${i}]\nhost = ["s${i}.localhost", "*.s${i}.localhost"]\nport = ${port}\ncwd = "/p/s${i}"\n`).join('')}`;

describe('TomlReuse', () => {
  test('an edit of one table is that table parsed again; every other table is the object it was', () => {
    const reuse = new TomlReuse();
    const first = reuse.parse(services([3000, 3001, 3002])) as { service: Record<string, unknown> };
    const text = services([3000, 4001, 3002]);
    const second = reuse.parse(text) as { service: Record<string, unknown> };
    assert.deepEqual(second, parse(text));
    assert.deepEqual(Object.keys(second.service), ['s0', 's1', 's2']);
    assert.equal(second.service.s0, first.service.s0);
    assert.equal(second.service.s2, first.service.s2);
    assert.notEqual(second.service.s1, first.service.s1);
    assert.equal(reuse.parse(text), second, 'the same text is the same document');
  });

  test('a table named __proto__ is copied as a key like any other', () => {
    const reuse = new TomlReuse();
    const text = (port: number): string => `[service.__proto__]\nport = ${port}\n[service.web]\nport = 1\n[__proto__]\nx = ${port}\n`;
    reuse.parse(text(1));
    for (const port of [2, 3]) {
      const doc = reuse.parse(text(port));
      assert.deepEqual(doc, parse(text(port)));
      assert.equal(JSON.stringify(doc), JSON.stringify(parse(text(port))));
    }
  });

  test('a syntax error in the edited table is the error of a whole parse, at its line and column', () => {
    const reuse = new TomlReuse();
    reuse.parse(services([3000, 3001]));
    const broken = services([3000, 3001]).replace('port = 3001', 'port = 30 01');
    assert.deepEqual(outcome(() => reuse.parse(broken)), outcome(() => parse(broken)));
    assert.match(outcome(() => reuse.parse(broken)).error!, /^10:/);
    // After the error, edits are parsed right again.
    const fixed = services([3000, 3002]);
    assert.deepEqual(reuse.parse(fixed), parse(fixed));
  });

  test('a table that other lines add to, or a header that a multi-line string only looks like, is parsed whole', () => {
    const reuse = new TomlReuse();
    const added = (port: number): string => `[service.web]\nport = ${port}\n[service.web.env]\nA = "1"\n`;
    reuse.parse(added(1));
    assert.deepEqual(reuse.parse(added(2)), parse(added(2)));
    const inString = (port: number): string => `service.api.port = 1\n[x]\ns = """\n[service.api]\nport = ${port}\n"""\n`;
    reuse.parse(inString(1));
    assert.deepEqual(reuse.parse(inString(2)), parse(inString(2)));
    // A table `fake` written above, and lines inside a string that read as its header and keys.
    const lookalike = (port: number): string => `fake.k = 1\nx = """\n[fake]\nk = ${port}\n[fake2]\n"""\n`;
    reuse.parse(lookalike(1));
    assert.deepEqual(reuse.parse(lookalike(2)), parse(lookalike(2)));
    const inArray = (port: number): string => `[x]\nlist = [\n[1],\n]\n[service.api]\nport = ${port}\n`;
    reuse.parse(inArray(1));
    assert.deepEqual(reuse.parse(inArray(2)), parse(inArray(2)));
  });

  test('runs of line edits parse as whole texts do', () => {
    const line = fc.oneof(
      { weight: 3, arbitrary: fc.constantFrom('[a]', '[b]', '[a.x]', '[b.c.d]', ' [ "q.k" ] # t', '[a] # c', '[[arr]]', '[a.x.y]', '["a"]', "['b'.c]", '[fake]') },
      { weight: 6, arbitrary: fc.tuple(fc.constantFrom('k', 'x.y', 'a.x', '"q k"', "'l'", 'p', 'a', 'x'), fc.nat(3), fc.constantFrom('1', '"v"', "'w'", '[1, 2]', '{ p = 1 }', '"a # b"', '"[x]"', '1979-05-27', 'true', '"""', "'''", '[', '{', '"\u2028"', '1 # c', '', '"\\"]"'))
        .map(([key, n, value]) => `${key}${n} = ${value}`) },
      { weight: 2, arbitrary: fc.constantFrom('', '# [c]', '"""', "'''", ']', '1,', '[1],', '  ', 'x = """', 'y = """a"""', 'z = [', '\r', 'w = 1\r') },
    );
    const edit = fc.record({ kind: fc.constantFrom('replace', 'insert', 'delete'), at: fc.nat(), line });
    let shared = 0;
    fc.assert(fc.property(fc.array(line, { minLength: 1, maxLength: 14 }), fc.array(edit, { minLength: 1, maxLength: 8 }), fc.boolean(), (lines, edits, crlf) => {
      const reuse = new TomlReuse();
      const join = (): string => lines.join(crlf ? '\r\n' : '\n') + '\n';
      let last = outcome(() => reuse.parse(join()));
      assert.deepEqual(last, outcome(() => parse(join())));
      for (const step of edits) {
        const index = step.at % (lines.length + 1);
        if (step.kind === 'insert') lines.splice(index, 0, step.line);
        else if (step.kind === 'delete') lines.splice(index, 1);
        else lines[Math.min(index, lines.length - 1)] = step.line;
        const text = join();
        const now = outcome(() => reuse.parse(text));
        assert.deepEqual(now, outcome(() => parse(text)), JSON.stringify(text));
        if (now.doc !== undefined && last.doc !== undefined) {
          for (const value of Object.values(now.doc as object)) if (typeof value === 'object' && Object.values(last.doc as object).includes(value)) shared++;
        }
        last = now;
      }
    }), { numRuns: 2000, endOnFailure: true });
    // The property is about edits parsed from the last document: enough of them must have been.
    assert.ok(shared > 50, `tables taken from the last document: ${shared}`);
  });

  test('runs of edits of a config of services parse as whole texts do', () => {
    fc.assert(fc.property(fc.array(fc.integer({ min: 1, max: 65535 }), { minLength: 1, maxLength: 30 }), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 65535 })), { maxLength: 10 }), (ports, edits) => {
      const reuse = new TomlReuse();
      reuse.parse(services(ports));
      for (const [index, port] of edits) {
        ports[index % ports.length] = port;
        const text = services(ports);
        const doc = reuse.parse(text);
        assert.deepEqual(doc, parse(text));
        assert.equal(JSON.stringify(doc), JSON.stringify(parse(text)));
      }
    }), { numRuns: 200, endOnFailure: true });
  });
});
