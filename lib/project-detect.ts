// What dev server a project folder runs, and the command that starts it on a port norikae gives
// (`{port}`), for `norikae-splice add`. Read from the files a project has: package.json's scripts
// and dependencies (run through the package manager its lockfile names), manage.py, bin/rails,
// Flask in the Python dependencies, a Hugo config, a Procfile's `web:` line. Nothing is run.

import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

export interface Detection {
  /** What was found, as a person names it: "Vite", "Django". */
  kind: string;
  /** Why we think so, for the user to check: "package.json's dev script runs vite". */
  reason: string;
  /** The command for the config, with `{port}` (or `$PORT`) where the port goes. */
  command: string;
}

export interface DetectOptions {
  /** norikae's own HTTP port: Hugo's live-reload script connects to the page's host on it. */
  listenPort: number;
}

/** What `detectProjects` looks for, for the message when it finds nothing. */
export const LOOKED_FOR = 'bin/rails, manage.py, a Hugo config, package.json with a dev script or a known framework, Flask, a Procfile with a web: line';

/** Every dev server `dir` may run, the most likely first; empty when none is recognised. */
export function detectProjects(dir: string, options: DetectOptions): Detection[] {
  const pkg = readPackageJson(dir);
  const fromPackage = pkg === undefined ? undefined : detectNode(dir, pkg);
  return [
    detectRails(dir),
    detectDjango(dir),
    detectHugo(dir, options.listenPort),
    fromPackage?.framework === true ? fromPackage.detection : undefined,
    detectFlask(dir),
    fromPackage?.framework === false ? fromPackage.detection : undefined,
    detectProcfile(dir),
  ].filter((found): found is Detection => found !== undefined);
}

interface PackageJson {
  scripts: Record<string, string>;
  dependencies: Set<string>;
  packageManager: string | undefined;
}

type PackageManager = 'npm' | 'pnpm' | 'yarn' | 'bun';

interface Framework {
  kind: string;
  /** Matches one command of a script that starts this dev server. */
  script: RegExp;
  /** The package whose presence says the project uses it, and how to run it without a script. */
  dependency: string;
  direct: string;
  /** Appended to the command to give it the port; empty when it reads $PORT. */
  portArgs: string;
}

const VITE_ARGS = '--port {port} --strictPort';

/** Most specific first. Vite run by SvelteKit or Remix is named for them (refineKind). */
const FRAMEWORKS: Framework[] = [
  { kind: 'Next.js', script: /(^|\s)next\s+dev(\s|$)/, dependency: 'next', direct: 'next dev', portArgs: '-p {port}' },
  { kind: 'Astro', script: /(^|\s)astro\s+dev(\s|$)/, dependency: 'astro', direct: 'astro dev', portArgs: '--port {port}' },
  { kind: 'Nuxt', script: /(^|\s)nux[ti]\s+dev(\s|$)/, dependency: 'nuxt', direct: 'nuxt dev', portArgs: '--port {port}' },
  { kind: 'Remix', script: /(^|\s)(remix\s+vite:dev|react-router\s+dev)(\s|$)/, dependency: '@remix-run/dev', direct: 'remix vite:dev', portArgs: VITE_ARGS },
  // The classic compiler's `remix dev` starts the app server, which reads $PORT.
  { kind: 'Remix', script: /(^|\s)remix\s+dev(\s|$)/, dependency: '@remix-run/dev', direct: 'remix dev', portArgs: '' },
  { kind: 'Angular', script: /(^|\s)ng\s+serve(\s|$)/, dependency: '@angular/cli', direct: 'ng serve', portArgs: '--port {port}' },
  { kind: 'webpack-dev-server', script: /(^|\s)(webpack\s+serve|webpack-dev-server)(\s|$)/, dependency: 'webpack-dev-server', direct: 'webpack serve', portArgs: '--port {port}' },
  { kind: 'Parcel', script: /(^|\s)parcel(\s|$)/, dependency: 'parcel', direct: 'parcel', portArgs: '--port {port}' },
  { kind: 'Vite', script: /(^|\s)vite(\s+dev|\s+serve)?(\s|$)/, dependency: 'vite', direct: 'vite', portArgs: VITE_ARGS },
];

/** The scripts that start a dev server, in the order they are tried. */
const DEV_SCRIPTS = ['dev', 'start', 'serve'];

/**
 * A Node project's dev server: a script that runs a known framework (the port appended, when the
 * framework's command ends the script), else a known framework run directly, else a plain `dev`
 * script (which gets the port as $PORT). `framework`: whether a framework was recognised.
 */
function detectNode(dir: string, pkg: PackageJson): { detection: Detection; framework: boolean } | undefined {
  const pm = packageManager(dir, pkg);
  for (const script of DEV_SCRIPTS) {
    const text = pkg.scripts[script];
    if (text === undefined) continue;
    // Arguments given to `npm run` reach the last command of the script only.
    const commands = text.split(/&&|\|\||;/).map((part) => part.trim());
    for (const framework of FRAMEWORKS) {
      const at = commands.findIndex((command) => framework.script.test(command));
      if (at === -1) continue;
      const kind = refineKind(framework, pkg);
      // A pipe or `&` in that command would take the arguments away from it too.
      const last = at === commands.length - 1 && !/[|&]/.test(commands[at]!);
      const command = last
        ? runScript(pm, script, framework.portArgs)
        : `${execPrefix(pm)} ${framework.direct}${framework.portArgs ? ` ${framework.portArgs}` : ''}`;
      const how = last ? `, run with ${pm}` : `; it does more after ${framework.direct}, so that is run directly`;
      return { detection: { kind, reason: `the ${script} script of package.json${how}${portNote(framework)}`, command }, framework: true };
    }
  }
  for (const framework of FRAMEWORKS) {
    if (!pkg.dependencies.has(framework.dependency)) continue;
    const command = `${execPrefix(pm)} ${framework.direct}${framework.portArgs ? ` ${framework.portArgs}` : ''}`;
    return { detection: { kind: refineKind(framework, pkg), reason: `package.json depends on ${framework.dependency}, and no dev script runs it; run with ${pm}${portNote(framework)}`, command }, framework: true };
  }
  const script = DEV_SCRIPTS.find((name) => pkg.scripts[name] !== undefined);
  if (script === undefined) return undefined;
  return {
    detection: { kind: 'Node', reason: `the ${script} script of package.json, run with ${pm} (no framework recognised: it gets the port as $PORT)`, command: runScript(pm, script, '') },
    framework: false,
  };
}

/** Vite run by a SvelteKit or Remix project is named for what it is. */
function refineKind(framework: Framework, pkg: PackageJson): string {
  if (framework.kind !== 'Vite') return framework.kind;
  if (pkg.dependencies.has('@sveltejs/kit')) return 'SvelteKit';
  if (pkg.dependencies.has('@remix-run/dev') || pkg.dependencies.has('@react-router/dev')) return 'Remix';
  return 'Vite';
}

function portNote(framework: Framework): string {
  return framework.portArgs === '' ? ' (it gets the port as $PORT)' : '';
}

/** The package manager the lockfile names, else package.json's `packageManager`, else npm. */
function packageManager(dir: string, pkg: PackageJson): PackageManager {
  if (isFile(join(dir, 'pnpm-lock.yaml'))) return 'pnpm';
  if (isFile(join(dir, 'yarn.lock'))) return 'yarn';
  if (isFile(join(dir, 'bun.lock')) || isFile(join(dir, 'bun.lockb'))) return 'bun';
  if (isFile(join(dir, 'package-lock.json'))) return 'npm';
  const named = /^(npm|pnpm|yarn|bun)@/.exec(pkg.packageManager ?? '')?.[1];
  return (named as PackageManager | undefined) ?? 'npm';
}

/** `npm run dev -- ARGS`; pnpm, yarn and bun pass what follows the script's name to it without `--`. */
function runScript(pm: PackageManager, script: string, args: string): string {
  const run = `${pm} run ${script}`;
  if (args === '') return run;
  return pm === 'npm' ? `${run} -- ${args}` : `${run} ${args}`;
}

/** How the package manager runs a package's own binary. */
function execPrefix(pm: PackageManager): string {
  switch (pm) {
    case 'npm': return 'npx';
    case 'pnpm': return 'pnpm exec';
    case 'yarn': return 'yarn run';
    case 'bun': return 'bunx';
  }
}

function detectRails(dir: string): Detection | undefined {
  if (isFile(join(dir, 'bin', 'rails'))) return { kind: 'Rails', reason: 'bin/rails', command: 'bin/rails server -p {port}' };
  if (/^\s*gem\s+["']rails["']/m.test(readText(join(dir, 'Gemfile')) ?? '')) {
    return { kind: 'Rails', reason: 'the Gemfile names rails (no bin/rails)', command: 'bundle exec rails server -p {port}' };
  }
  return undefined;
}

function detectDjango(dir: string): Detection | undefined {
  if (!isFile(join(dir, 'manage.py'))) return undefined;
  const python = pythonEnv(dir);
  const manage = { uv: 'uv run manage.py', poetry: 'poetry run python manage.py', venv: '.venv/bin/python manage.py', system: 'python3 manage.py' }[python.runner];
  return { kind: 'Django', reason: `manage.py${python.reason}`, command: `${manage} runserver {port}` };
}

function detectFlask(dir: string): Detection | undefined {
  const files = ['requirements.txt', 'requirements-dev.txt', 'pyproject.toml', 'Pipfile'];
  const named = files.find((file) => /(^|["'\s])flask\s*($|[<>=~!\[;,"'])/im.test(readText(join(dir, file)) ?? ''));
  if (named === undefined) return undefined;
  const python = pythonEnv(dir);
  const flask = { uv: 'uv run flask', poetry: 'poetry run flask', venv: '.venv/bin/flask', system: 'flask' }[python.runner];
  return { kind: 'Flask', reason: `${named} names flask${python.reason}`, command: `${flask} run --port {port}` };
}

/** How the project's Python runs: through uv or poetry when their lockfile is there, else its .venv, else the system's. */
function pythonEnv(dir: string): { runner: 'uv' | 'poetry' | 'venv' | 'system'; reason: string } {
  if (isFile(join(dir, 'uv.lock'))) return { runner: 'uv', reason: ', run through uv (uv.lock)' };
  if (isFile(join(dir, 'poetry.lock'))) return { runner: 'poetry', reason: ', run through poetry (poetry.lock)' };
  if (isFile(join(dir, '.venv', 'bin', 'python'))) return { runner: 'venv', reason: ', with its .venv' };
  return { runner: 'system', reason: '' };
}

function detectHugo(dir: string, listenPort: number): Detection | undefined {
  const own = ['hugo.toml', 'hugo.yaml', 'hugo.yml', 'hugo.json'].find((file) => isFile(join(dir, file)));
  // Before hugo.toml (Hugo 0.110), a site's config was config.toml: told apart by a site's folders.
  const legacy = own ?? ['config.toml', 'config.yaml', 'config.yml', 'config.json'].find((file) =>
    /baseurl/i.test(readText(join(dir, file)) ?? '') && ['archetypes', 'layouts', 'content', 'themes'].some((folder) => isFolder(join(dir, folder))));
  if (legacy === undefined) return undefined;
  // The page's live-reload script connects to its own host on this port: norikae's.
  return { kind: 'Hugo', reason: legacy, command: `hugo server --port {port} --liveReloadPort ${listenPort} --appendPort=false` };
}

function detectProcfile(dir: string): Detection | undefined {
  for (const file of ['Procfile.dev', 'Procfile']) {
    const web = /^web:[ \t]*(\S.*?)\s*$/m.exec(readText(join(dir, file)) ?? '')?.[1];
    if (web !== undefined) return { kind: 'Procfile', reason: `the web: line of ${file}; it gets the port as $PORT`, command: web };
  }
  return undefined;
}

function readPackageJson(dir: string): PackageJson | undefined {
  const text = readText(join(dir, 'package.json'));
  if (text === undefined) return undefined;
  let data: Record<string, unknown>;
  try {
    data = JSON.parse(text) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  const record = (value: unknown): Record<string, unknown> => (value !== null && typeof value === 'object' && !Array.isArray(value) ? value as Record<string, unknown> : {});
  const scripts = Object.fromEntries(Object.entries(record(data.scripts)).filter((entry): entry is [string, string] => typeof entry[1] === 'string'));
  const dependencies = new Set([...Object.keys(record(data.dependencies)), ...Object.keys(record(data.devDependencies))]);
  return { scripts, dependencies, packageManager: typeof data.packageManager === 'string' ? data.packageManager : undefined };
}

/** A file's text; undefined when it cannot be read (missing, a folder). Project files are small: 1 MiB at most is read. */
function readText(file: string): string | undefined {
  try {
    if (!statSync(file).isFile() || statSync(file).size > 1024 * 1024) return undefined;
    return readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

function isFolder(path: string): boolean {
  return existsSync(path) && statSync(path).isDirectory();
}
