// Each detector of `norikae-splice add` on a small fixture project, made in a temporary folder.

import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { detectProjects } from '../lib/project-detect.js';

/** A project folder holding `files` (path → text), removed after the test. */
function project(t: TestContext, files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'norikae-project-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
  return dir;
}

function packageJson(scripts: Record<string, string>, dependencies: Record<string, string> = {}, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ name: 'x', scripts, devDependencies: dependencies, ...extra });
}

/** The first detection: what `add` uses. */
function detect(dir: string, listenPort = 80): { kind: string; command: string; reason: string } {
  const [first] = detectProjects(dir, { listenPort });
  assert.ok(first !== undefined, `nothing detected in ${dir}`);
  return first;
}

describe('Node projects: the dev script, with the port flags of its framework, through the lockfile\'s package manager', () => {
  const cases: { name: string; files: Record<string, string>; kind: string; command: string }[] = [
    { name: 'Vite with npm', files: { 'package.json': packageJson({ dev: 'vite' }, { vite: '5' }), 'package-lock.json': '{}' }, kind: 'Vite', command: 'npm run dev -- --port {port} --strictPort' },
    { name: 'Next with pnpm', files: { 'package.json': packageJson({ dev: 'next dev --turbo' }, { next: '15' }), 'pnpm-lock.yaml': '' }, kind: 'Next.js', command: 'pnpm run dev -p {port}' },
    { name: 'Astro with yarn', files: { 'package.json': packageJson({ dev: 'astro dev' }, { astro: '4' }), 'yarn.lock': '' }, kind: 'Astro', command: 'yarn run dev --port {port}' },
    { name: 'Nuxt with bun', files: { 'package.json': packageJson({ dev: 'nuxt dev' }, { nuxt: '3' }), 'bun.lockb': '' }, kind: 'Nuxt', command: 'bun run dev --port {port}' },
    { name: 'Nuxt through nuxi, bun.lock', files: { 'package.json': packageJson({ dev: 'nuxi dev' }, { nuxt: '3' }), 'bun.lock': '' }, kind: 'Nuxt', command: 'bun run dev --port {port}' },
    { name: 'SvelteKit (vite dev)', files: { 'package.json': packageJson({ dev: 'vite dev' }, { vite: '5', '@sveltejs/kit': '2' }) }, kind: 'SvelteKit', command: 'npm run dev -- --port {port} --strictPort' },
    { name: 'Remix on Vite', files: { 'package.json': packageJson({ dev: 'remix vite:dev' }, { '@remix-run/dev': '2' }) }, kind: 'Remix', command: 'npm run dev -- --port {port} --strictPort' },
    { name: 'Remix classic (reads $PORT)', files: { 'package.json': packageJson({ dev: 'remix dev --manual' }, { '@remix-run/dev': '2' }) }, kind: 'Remix', command: 'npm run dev' },
    { name: 'Angular (the start script)', files: { 'package.json': packageJson({ start: 'ng serve', build: 'ng build' }, { '@angular/cli': '18' }) }, kind: 'Angular', command: 'npm run start -- --port {port}' },
    { name: 'webpack-dev-server', files: { 'package.json': packageJson({ dev: 'webpack serve --mode development' }, { 'webpack-dev-server': '5' }) }, kind: 'webpack-dev-server', command: 'npm run dev -- --port {port}' },
    { name: 'webpack-dev-server, the old binary', files: { 'package.json': packageJson({ start: 'webpack-dev-server' }) }, kind: 'webpack-dev-server', command: 'npm run start -- --port {port}' },
    { name: 'Parcel', files: { 'package.json': packageJson({ dev: 'parcel src/index.html' }, { parcel: '2' }) }, kind: 'Parcel', command: 'npm run dev -- --port {port}' },
    { name: 'the packageManager field without a lockfile', files: { 'package.json': packageJson({ dev: 'vite' }, { vite: '5' }, { packageManager: 'pnpm@9.1.0' }) }, kind: 'Vite', command: 'pnpm run dev --port {port} --strictPort' },
    // Arguments given to `npm run` reach the script's last command only: the framework is run directly.
    { name: 'a script that does more after the dev server', files: { 'package.json': packageJson({ dev: 'vite && echo done' }, { vite: '5' }) }, kind: 'Vite', command: 'npx vite --port {port} --strictPort' },
    { name: 'a dependency that no script runs', files: { 'package.json': packageJson({ dev: 'concurrently "next dev" "tsc -w"' }, { next: '15', concurrently: '8' }), 'pnpm-lock.yaml': '' }, kind: 'Next.js', command: 'pnpm exec next dev -p {port}' },
    { name: 'a dev script of no known framework (reads $PORT)', files: { 'package.json': packageJson({ dev: 'node server.js' }) }, kind: 'Node', command: 'npm run dev' },
  ];
  for (const { name, files, kind, command } of cases) {
    test(name, (t) => {
      const found = detect(project(t, files));
      assert.equal(found.kind, kind);
      assert.equal(found.command, command);
    });
  }

  test('a package.json with neither a dev script nor a known framework is no project', (t) => {
    assert.deepEqual(detectProjects(project(t, { 'package.json': packageJson({ build: 'tsc', test: 'node --test' }) }), { listenPort: 80 }), []);
  });

  test('a package.json that is not JSON is skipped, not fatal', (t) => {
    assert.deepEqual(detectProjects(project(t, { 'package.json': '{ nope' }), { listenPort: 80 }), []);
  });
});

describe('Python, Ruby, Hugo and Procfile projects', () => {
  test('Django: manage.py runserver, through uv run when uv.lock exists, else its .venv, else python3', (t) => {
    assert.equal(detect(project(t, { 'manage.py': '' })).command, 'python3 manage.py runserver {port}');
    assert.equal(detect(project(t, { 'manage.py': '', 'uv.lock': '' })).command, 'uv run manage.py runserver {port}');
    const venv = project(t, { 'manage.py': '', '.venv/bin/python': '' });
    chmodSync(join(venv, '.venv/bin/python'), 0o755);
    assert.equal(detect(venv).command, '.venv/bin/python manage.py runserver {port}');
    assert.equal(detect(project(t, { 'manage.py': '', 'poetry.lock': '' })).command, 'poetry run python manage.py runserver {port}');
    assert.equal(detect(project(t, { 'manage.py': '' })).kind, 'Django');
  });

  test('Rails: bin/rails server -p {port}; bundle exec rails when there is no bin/rails', (t) => {
    assert.deepEqual(detect(project(t, { 'bin/rails': '#!/usr/bin/env ruby\n', Gemfile: 'gem "rails"\n' })), { kind: 'Rails', reason: 'bin/rails', command: 'bin/rails server -p {port}' });
    assert.equal(detect(project(t, { Gemfile: "source 'https://rubygems.org'\ngem 'rails', '~> 7.1'\n" })).command, 'bundle exec rails server -p {port}');
  });

  test('Flask: flask run --port {port}, from requirements.txt or pyproject.toml, through uv when uv.lock exists', (t) => {
    const plain = detect(project(t, { 'requirements.txt': 'Flask==3.0.0\nrequests\n', 'app.py': '' }));
    assert.deepEqual([plain.kind, plain.command], ['Flask', 'flask run --port {port}']);
    assert.equal(detect(project(t, { 'pyproject.toml': '[project]\ndependencies = [\n  "flask>=3",\n]\n', 'uv.lock': '' })).command, 'uv run flask run --port {port}');
    // A package whose name only starts with "flask" is not Flask.
    assert.deepEqual(detectProjects(project(t, { 'requirements.txt': 'flask-cors\n' }), { listenPort: 80 }), []);
  });

  test('Hugo: live reload on norikae\'s own port, the port not appended to its URLs', (t) => {
    assert.equal(detect(project(t, { 'hugo.toml': 'baseURL = "/"\n' }), 8080).command, 'hugo server --port {port} --liveReloadPort 8080 --appendPort=false');
    assert.equal(detect(project(t, { 'config.toml': 'baseurl = "https://example.org/"\n', 'content/_index.md': '' })).command,
      'hugo server --port {port} --liveReloadPort 80 --appendPort=false');
    // A config.toml is not a Hugo site without a site's folders.
    assert.deepEqual(detectProjects(project(t, { 'config.toml': 'baseURL = "/"\n' }), { listenPort: 80 }), []);
  });

  test('Procfile: the web: line as it is, which reads $PORT; Procfile.dev first', (t) => {
    assert.deepEqual(detect(project(t, { Procfile: 'release: ./migrate\nweb: bundle exec puma -p $PORT\n' })),
      { kind: 'Procfile', reason: 'the web: line of Procfile; it gets the port as $PORT', command: 'bundle exec puma -p $PORT' });
    assert.equal(detect(project(t, { Procfile: 'web: gunicorn app:app\n', 'Procfile.dev': 'web: flask run -p $PORT\n' })).command, 'flask run -p $PORT');
  });

  test('a folder with several: the framework first, the others after it; an empty folder: nothing', (t) => {
    const both = detectProjects(project(t, { 'manage.py': '', 'package.json': packageJson({ dev: 'vite' }, { vite: '5' }), Procfile: 'web: gunicorn x\n' }), { listenPort: 80 });
    assert.deepEqual(both.map((found) => found.kind), ['Django', 'Vite', 'Procfile']);
    assert.deepEqual(detectProjects(project(t, {}), { listenPort: 80 }), []);
  });
});
