// A private mount namespace in which this machine's Debian/Ubuntu trust store is a throwaway copy:
// /etc/ssl/certs and /usr/local/share/ca-certificates are copied to a tmpfs and bind-mounted over
// the real folders, so `update-ca-certificates` run inside changes only the copies. Its hooks folder
// (/etc/ca-certificates/update.d) is an empty folder inside: the hooks write outside those folders
// (Java's runs dpkg triggers that rewrite /var/lib/dpkg), and they are not ours to test. The
// namespace is held by a `sleep` (ended by PID after the test, or by itself within HOLD_SECONDS);
// the steps of a test run in it through `nsenter`, and the tmpfs goes with it.

import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';

/** The folders `update-ca-certificates` writes (its bundle, links and the local roots it reads). */
export const STORE_FOLDERS = ['/etc/ssl/certs', '/usr/local/share/ca-certificates'];
const HOOKS = '/etc/ca-certificates/update.d';
const HOLD_SECONDS = 300;
const READY_MS = 20_000;

export interface StoreNamespace {
  /** Runs `command` inside the namespace, in `cwd`, bounded by `timeout` ms. */
  run(command: string[], options: { cwd: string; env?: NodeJS.ProcessEnv; timeout?: number; input?: string }): SpawnSyncReturns<string>;
  /** A file as the namespace sees it, or undefined when it has none. */
  read(path: string): string | undefined;
}

/**
 * Why a private mount namespace cannot be made here (not root, or `unshare` refused), or undefined
 * when it can: the caller skips the test with this reason.
 */
export function namespaceRefusal(): string | undefined {
  const how = 'run it as root on a machine that allows `unshare -m` (e.g. `sudo node --test dist/test/trust.test.js`)';
  if (process.getuid?.() !== 0) return `a private mount namespace needs root; ${how}`;
  const probe = spawnSync('unshare', ['-m', '--propagation', 'private', 'true'], { encoding: 'utf8', timeout: 10_000 });
  if (probe.status !== 0) return `\`unshare -m\` is refused here (${(probe.error?.message ?? probe.stderr).trim()}); ${how}`;
  return undefined;
}

/** Makes the namespace (after `namespaceRefusal` said it can be), ended after the test. */
export async function storeNamespace(t: TestContext): Promise<StoreNamespace> {
  const scratch = mkdtempSync(join(tmpdir(), 'norikae-store-'));
  t.after(() => rmSync(scratch, { recursive: true, force: true }));
  const copies = STORE_FOLDERS.map((folder, index) => `cp -a ${folder} "$1/${index}" && mount --bind "$1/${index}" ${folder}`);
  const script = [
    'set -e',
    'mount -t tmpfs -o size=64m,mode=700 norikae-store "$1"',
    ...copies,
    `if [ -d ${HOOKS} ]; then mkdir "$1/hooks" && mount --bind "$1/hooks" ${HOOKS}; fi`,
    'echo ready',
    `exec sleep ${HOLD_SECONDS}`,
  ].join('\n');
  const holder = spawn('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script, 'sh', scratch], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => {
    if (holder.exitCode === null && holder.signalCode === null) holder.kill('SIGKILL');
  });
  let output = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the namespace was not ready within ${READY_MS} ms: ${output}`)), READY_MS);
    const take = (chunk: Buffer): void => {
      output = (output + chunk.toString('utf8')).slice(-4096);
      if (output.includes('ready\n')) {
        clearTimeout(timer);
        resolve();
      }
    };
    holder.stdout.on('data', take);
    holder.stderr.on('data', take);
    holder.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the namespace could not be set up (exit ${code}): ${output}`));
    });
  });
  const pid = String(holder.pid);
  return {
    run: (command, options) => spawnSync('nsenter', ['-t', pid, '-m', `--wd=${options.cwd}`, '--', ...command], {
      env: options.env ?? process.env, encoding: 'utf8', timeout: options.timeout ?? 60_000, maxBuffer: 1 << 20, input: options.input,
    }),
    read: (path) => {
      try {
        // /proc/PID/root resolves paths in the holder's mount namespace.
        return readFileSync(`/proc/${pid}/root${path}`, 'latin1');
      } catch {
        return undefined;
      }
    },
  };
}
