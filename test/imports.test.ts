// The module graph of lib/: no file imports itself back through others. A cycle, even of types
// only, means two files are one concern split in two (or a wiring that belongs in bin/), and
// a value cycle can hand a module an export that is not initialised yet.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const LIB = fileURLToPath(new URL('../../lib/', import.meta.url));

/** Every `import … from './x.js'` and `export … from './x.js'` of a lib file, `import type` included, as `x.ts`. */
function localImports(source: string): string[] {
  const found = new Set<string>();
  const statement = /^\s*(?:import|export)\b[^;'"]*?\bfrom\s*['"]\.\/([^'"]+)\.js['"]|\bimport\s*\(\s*['"]\.\/([^'"]+)\.js['"]\s*\)/gm;
  for (const match of source.matchAll(statement)) found.add(`${match[1] ?? match[2]}.ts`);
  return [...found];
}

/** The first cycle found in `graph` (as a path that ends where it starts), or undefined. */
function findCycle(graph: ReadonlyMap<string, readonly string[]>): string[] | undefined {
  const done = new Set<string>();
  const path: string[] = [];
  const visit = (file: string): string[] | undefined => {
    const open = path.indexOf(file);
    if (open !== -1) return [...path.slice(open), file];
    if (done.has(file)) return undefined;
    path.push(file);
    for (const next of graph.get(file) ?? []) {
      const cycle = visit(next);
      if (cycle !== undefined) return cycle;
    }
    path.pop();
    done.add(file);
    return undefined;
  };
  for (const file of [...graph.keys()].sort()) {
    const cycle = visit(file);
    if (cycle !== undefined) return cycle;
  }
  return undefined;
}

test('localImports reads value, type-only, multi-line, re-export and dynamic imports', () => {
  const source = [
    "import { a } from './a.js';",
    "import type { B } from './b.js';",
    'import {',
    '  c,',
    '  type C,',
    "} from './c.js';",
    "export { d } from './d.js';",
    "const e = await import('./e.js');",
    "import { readFileSync } from 'node:fs';",
    "import createDebug from 'debug';",
    "// a comment that mentions from './f.js' is not an import",
  ].join('\n');
  assert.deepEqual(localImports(source).sort(), ['a.ts', 'b.ts', 'c.ts', 'd.ts', 'e.ts']);
});

test('findCycle finds a cycle of any length and none in a tree with shared leaves', () => {
  assert.deepEqual(findCycle(new Map([['a.ts', ['b.ts']], ['b.ts', ['c.ts']], ['c.ts', ['a.ts']]])), ['a.ts', 'b.ts', 'c.ts', 'a.ts']);
  assert.deepEqual(findCycle(new Map([['a.ts', ['a.ts']]])), ['a.ts', 'a.ts']);
  assert.equal(findCycle(new Map([['a.ts', ['b.ts', 'c.ts']], ['b.ts', ['c.ts']], ['c.ts', []]])), undefined);
});

test('lib/*.ts imports no file that imports it back, not even as a type', () => {
  const files = readdirSync(LIB).filter((name) => name.endsWith('.ts') && !name.endsWith('.d.ts'));
  assert.ok(files.includes('server.ts') && files.includes('supervisor.ts'), `read lib/ from ${LIB}`);
  const graph = new Map(files.map((file) => [file, localImports(readFileSync(`${LIB}${file}`, 'utf8'))]));
  for (const [file, imports] of graph) {
    for (const target of imports) assert.ok(graph.has(target), `${file} imports ./${target}, which is not in lib/`);
  }
  const cycle = findCycle(graph);
  assert.equal(cycle, undefined, `import cycle: ${cycle?.join(' → ')}`);
});
