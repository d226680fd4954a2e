// The tools a user would pick instead of norikae, each routing BENCH_HOST to the same upstream:
// portless (npm: its proxy in the foreground, plain HTTP, one static alias), http-proxy (npm: the
// short reverse proxy of bench/http-proxy.ts) and Caddy (Debian: `reverse_proxy`, when installed).
// Every one parses HTTP, unlike norikae, haproxy `mode tcp` and node-floor, which splice bytes.
// Started through targets.ts's tracked spawns, so stopAll() ends them by PID.

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { BENCH_HOST, accepts, exited, freePort, reply, spawnNode, spawnTracked, type NodeTarget } from './targets.js';

const here = fileURLToPath(new URL('.', import.meta.url));

/** A running peer: where it listens, its PID for /proc, and its heap when it is a Node process. */
export interface PeerTarget {
  port: number;
  pid: number;
  memory?: NodeTarget['memory'];
}

/** The version of an npm package as installed here. */
export function npmVersion(name: string): string {
  return (JSON.parse(readFileSync(packageJson(name), 'utf8')) as { version: string }).version;
}

/** A dev dependency's package.json, in the project's node_modules (portless exports no `require` entry to resolve from). */
function packageJson(name: string): string {
  return fileURLToPath(new URL(`../../node_modules/${name}/package.json`, import.meta.url));
}

/** `http-proxy` with `ws: true` and a keep-alive agent (bench/http-proxy.ts), with the probe. */
export async function startHttpProxy(upstreamPort: number): Promise<PeerTarget> {
  const nodeArgs = ['--expose-gc', '--import', pathToFileURL(join(here, 'probe.js')).href];
  const child = spawnNode(join(here, 'http-proxy.js'), [String(upstreamPort)], nodeArgs);
  const { port } = await reply<{ port: number }>(child, undefined, 'listening', 10_000).catch((err: Error) => {
    throw new Error(`http-proxy did not start: ${err.message}\n${child.output()}`);
  });
  return { port, pid: child.pid!, memory: () => reply<NodeJS.MemoryUsage>(child, 'memory', 'memory', 10_000) };
}

/**
 * portless's proxy in the foreground, without TLS, on a free port, with its state (routes, pid
 * file) in `dir`, the /etc/hosts sync off, and one static route (`portless alias`) from
 * BENCH_HOST to the upstream: nothing is launched. The probe is preloaded for its heap figure.
 */
export async function startPortless(upstreamPort: number, dir: string): Promise<PeerTarget> {
  const cli = join(dirname(packageJson('portless')), 'dist', 'cli.js');
  const stateDir = join(dir, 'portless');
  mkdirSync(join(stateDir, 'home'), { recursive: true });
  const env = {
    HOME: join(stateDir, 'home'),
    PORTLESS_STATE_DIR: stateDir,
    PORTLESS_SYNC_HOSTS: '0',
    PORTLESS_HTTPS: '0',
    // Its update check would reach the network.
    NO_UPDATE_NOTIFIER: '1',
  };
  const alias = spawnTracked(process.execPath, [cli, 'alias', BENCH_HOST.replace(/\.localhost$/, ''), String(upstreamPort)], { env: { ...process.env, ...env } });
  if (await exited(alias, 20_000) !== 0) throw new Error(`portless alias failed:\n${alias.output()}`);
  const port = await freePort();
  const nodeArgs = ['--expose-gc', '--import', pathToFileURL(join(here, 'probe.js')).href];
  const child = spawnNode(cli, ['proxy', 'start', '--foreground', '--no-tls', '-p', String(port)], nodeArgs, env);
  await waitAccepting(port, child, 'portless');
  return { port, pid: child.pid!, memory: () => reply<NodeJS.MemoryUsage>(child, 'memory', 'memory', 10_000) };
}

/**
 * Caddy `reverse_proxy` for http://BENCH_HOST, foreground (`caddy run`) on a Caddyfile in `dir`
 * with its data there too: no admin endpoint, no automatic HTTPS, nothing persisted. GOMAXPROCS
 * is a setting for the reason haproxy's thread count is (norikae has one event loop).
 */
export async function startCaddy(upstreamPort: number, dir: string, options: { maxProcs: number }): Promise<PeerTarget> {
  const port = await freePort();
  const caddyDir = join(dir, 'caddy');
  mkdirSync(caddyDir, { recursive: true });
  const caddyfile = join(caddyDir, 'Caddyfile');
  writeFileSync(caddyfile, [
    '{',
    '\tadmin off',
    '\tauto_https off',
    '\tskip_install_trust',
    // Long enough for the idle-connection measurement.
    '\tservers {',
    '\t\ttimeouts {',
    '\t\t\tidle 10m',
    '\t\t}',
    '\t}',
    '}',
    `http://${BENCH_HOST}:${port} {`,
    '\tbind 127.0.0.1',
    `\treverse_proxy 127.0.0.1:${upstreamPort}`,
    '}',
    '',
  ].join('\n'));
  const env = { ...process.env, HOME: caddyDir, XDG_DATA_HOME: join(caddyDir, 'data'), XDG_CONFIG_HOME: join(caddyDir, 'config'), GOMAXPROCS: String(options.maxProcs) };
  // Under the raised descriptor limit, like the Node targets: it holds the idle connections too.
  const child = spawnTracked('sh', ['-c', 'ulimit -n "$(ulimit -Hn)" && exec "$@"', 'sh', 'caddy', 'run', '--config', caddyfile, '--adapter', 'caddyfile'], { env });
  await waitAccepting(port, child, 'caddy');
  return { port, pid: child.pid! };
}

async function waitAccepting(port: number, child: ReturnType<typeof spawnTracked>, name: string): Promise<void> {
  const deadline = performance.now() + 15_000;
  while (!(await accepts(port))) {
    if (child.exitCode !== null || performance.now() > deadline) throw new Error(`${name} did not start:\n${child.output()}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
