// What a person reads about a reload: which services an edit added, removed and changed.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { parseConfig } from '../lib/config-file.js';
import { describeChanges } from '../lib/config-summary.js';

const FILE = '/home/dev/norikae.toml';
const config = (services: [string, number][]) => parseConfig(services.map(([name, port]) => `[service.${name}]\nport = ${port}\n`).join(''), FILE);

describe('describeChanges', () => {
  test('added, removed and changed, each in config order', () => {
    assert.equal(describeChanges(config([['a', 1], ['b', 2]]), config([['a', 1], ['b', 2]])), '');
    assert.equal(describeChanges(config([['a', 1], ['b', 2], ['c', 3]]), config([['a', 1], ['b', 5], ['c', 6]])), 'changed b, c');
    assert.equal(describeChanges(config([['a', 1], ['b', 2]]), config([['b', 3], ['a', 1]])), 'changed b');
    assert.equal(describeChanges(config([['a', 1], ['b', 2]]), config([['c', 1], ['b', 3], ['d', 4]])), 'added c, d; removed a; changed b');
  });

  test('services in the same places or not, the summary is the one a Map of each side gives', () => {
    const side = fc.uniqueArray(fc.tuple(fc.constantFrom('a', 'b', 'c', 'd', 'e'), fc.integer({ min: 1, max: 3 })), { selector: ([name]) => name, maxLength: 5 });
    fc.assert(fc.property(side, side, (left, right) => {
      const before = new Map(left);
      const after = new Map(right);
      const expected = [
        ['added', right.filter(([name]) => !before.has(name)).map(([name]) => name)],
        ['removed', left.filter(([name]) => !after.has(name)).map(([name]) => name)],
        ['changed', right.filter(([name, port]) => before.has(name) && before.get(name) !== port).map(([name]) => name)],
      ].filter(([, names]) => names.length > 0).map(([what, names]) => `${what} ${(names as string[]).join(', ')}`).join('; ');
      assert.equal(describeChanges(config(left), config(right)), expected);
    }), { numRuns: 300 });
  });
});
