// Installing the local CA's root where this machine looks for trusted roots, and removing it: the
// system store (Debian/Ubuntu's update-ca-certificates, Fedora/Arch's p11-kit `trust`, macOS's
// `security`), and the NSS databases browsers read (~/.pki/nssdb for Chrome/Chromium, every
// Firefox profile) with `certutil`. Each step is a command, printed before it runs; the system
// store's need root, and are run through sudo (which asks) when we are not root.

import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { shellWord } from './errors.js';

/** The nickname of the root in NSS databases, and its file name in the Debian store. */
export const NSS_NICKNAME = 'norikae-splice local CA';
const DEBIAN_FILE = '/usr/local/share/ca-certificates/norikae-splice.crt';
/** What update-ca-certificates builds from the store (Arch's p11-kit writes the same file). */
const DEBIAN_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';
/** The system bundles programs read: Debian/Ubuntu/Arch's, Fedora's. */
const SYSTEM_BUNDLES = [DEBIAN_BUNDLE, '/etc/pki/tls/certs/ca-bundle.crt'];
const MAC_KEYCHAIN = '/Library/Keychains/System.keychain';

export interface TrustStep {
  /** What it does, for a person. */
  what: string;
  command: string[];
  /** Runs as root (through sudo unless we are root). */
  root: boolean;
  /** A failure does not matter (removing what may not be there). */
  mayFail?: boolean;
}

export interface TrustOptions {
  /** Also the system store (default); false: only the NSS databases (no root needed). */
  system: boolean;
  env?: NodeJS.ProcessEnv;
  platform?: NodeJS.Platform;
}

/** The NSS databases of this user: Chrome/Chromium's (made when missing) and each Firefox profile's. */
export function nssDatabases(home: string): { dir: string; what: string; exists: boolean }[] {
  const found = [{ dir: join(home, '.pki', 'nssdb'), what: 'Chrome/Chromium (~/.pki/nssdb)', exists: existsSync(join(home, '.pki', 'nssdb', 'cert9.db')) }];
  for (const profiles of [join(home, '.mozilla', 'firefox'), join(home, 'snap', 'firefox', 'common', '.mozilla', 'firefox')]) {
    let entries: string[] = [];
    try {
      entries = readdirSync(profiles);
    } catch {
      continue;
    }
    for (const entry of entries) {
      const dir = join(profiles, entry);
      if (existsSync(join(dir, 'cert9.db'))) found.push({ dir, what: `Firefox profile ${entry}`, exists: true });
    }
  }
  return found;
}

/** The steps that install the root at `rootPath`. */
export function trustSteps(rootPath: string, options: TrustOptions): TrustStep[] {
  const env = options.env ?? process.env;
  const steps: TrustStep[] = [];
  if (options.system) steps.push(...systemSteps(rootPath, 'add', env, options.platform ?? process.platform));
  if (onPath('certutil', env)) {
    for (const db of nssDatabases(home(env))) {
      if (!db.exists) {
        steps.push({ what: `make the folder of ${db.what}`, command: ['mkdir', '-p', '-m', '700', db.dir], root: false });
        steps.push({ what: `create the NSS database of ${db.what}`, command: ['certutil', '-N', '-d', `sql:${db.dir}`, '--empty-password'], root: false });
      }
      // A root of an earlier CA under the same nickname goes first: NSS would keep both.
      steps.push({ what: `remove an older root from ${db.what}`, command: ['certutil', '-D', '-d', `sql:${db.dir}`, '-n', NSS_NICKNAME], root: false, mayFail: true });
      steps.push({ what: `trust the root in ${db.what}`, command: ['certutil', '-A', '-d', `sql:${db.dir}`, '-t', 'C,,', '-n', NSS_NICKNAME, '-i', rootPath], root: false });
    }
  }
  return steps;
}

/** The steps that remove the root at `rootPath` from everywhere `trustSteps` puts it. */
export function untrustSteps(rootPath: string, options: TrustOptions): TrustStep[] {
  const env = options.env ?? process.env;
  const steps: TrustStep[] = [];
  if (options.system) steps.push(...systemSteps(rootPath, 'remove', env, options.platform ?? process.platform));
  if (onPath('certutil', env)) {
    for (const db of nssDatabases(home(env)).filter((candidate) => candidate.exists)) {
      steps.push({ what: `remove the root from ${db.what}`, command: ['certutil', '-D', '-d', `sql:${db.dir}`, '-n', NSS_NICKNAME], root: false, mayFail: true });
    }
  }
  return steps;
}

export interface Trusted {
  /** Where the root is trusted: the system store's bundle, NSS databases. */
  places: string[];
  /** Set when the root was copied into the Debian store but the bundle was not rebuilt since. */
  notRebuilt?: string;
}

/**
 * Where the root `rootPem` is trusted now, of the places `trust` puts it that can be read without
 * root: the system store's bundle (the file OpenSSL, curl and most programs read) and each NSS
 * database of this user (with certutil).
 */
export function trustedIn(rootPem: string, env: NodeJS.ProcessEnv = process.env): Trusted {
  const trusted: Trusted = { places: [] };
  // The first that holds it: on some systems one bundle is a link to the other.
  const bundle = SYSTEM_BUNDLES.find((candidate) => holds(readOrUndefined(candidate), rootPem));
  if (bundle !== undefined) trusted.places.push(`the system store (${bundle})`);
  if (same(readOrUndefined(DEBIAN_FILE), rootPem) && !holds(readOrUndefined(DEBIAN_BUNDLE), rootPem)) {
    trusted.notRebuilt = `the root is in ${DEBIAN_FILE}, but not in ${DEBIAN_BUNDLE}: the system store was not rebuilt since`;
  }
  if (onPath('certutil', env)) {
    for (const db of nssDatabases(home(env)).filter((candidate) => candidate.exists)) {
      const listed = spawnSync('certutil', ['-L', '-d', `sql:${db.dir}`, '-n', NSS_NICKNAME, '-a'], { encoding: 'utf8', env, timeout: 10_000 });
      if (listed.status === 0 && same(listed.stdout, rootPem)) trusted.places.push(db.what);
    }
  }
  return trusted;
}

/** What is missing for the browsers' stores, if anything: said instead of steps that cannot run. */
export function missingTools(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (onPath('certutil', env)) return undefined;
  return 'certutil is not installed, so browsers\' NSS databases (Chrome/Chromium on Linux, Firefox) are left alone: install it with '
    + '`sudo apt-get install libnss3-tools` (Debian/Ubuntu), `sudo dnf install nss-tools` (Fedora) or `sudo pacman -S nss` (Arch), then run this again';
}

function systemSteps(rootPath: string, action: 'add' | 'remove', env: NodeJS.ProcessEnv, platform: NodeJS.Platform): TrustStep[] {
  if (platform === 'darwin') {
    return action === 'add'
      ? [{ what: 'trust the root in the macOS System keychain', command: ['security', 'add-trusted-cert', '-d', '-r', 'trustRoot', '-k', MAC_KEYCHAIN, rootPath], root: true }]
      : [{ what: 'remove the root from the macOS System keychain', command: ['security', 'remove-trusted-cert', '-d', rootPath], root: true, mayFail: true }];
  }
  if (onPath('update-ca-certificates', env)) {
    return action === 'add'
      ? [
        // Mode 644 whatever the umask (sudo keeps a user's 077): programs read it through the
        // hashed links in /etc/ssl/certs, as any user.
        { what: 'copy the root into the system store (Debian/Ubuntu)', command: ['install', '-m', '644', rootPath, DEBIAN_FILE], root: true },
        { what: 'rebuild the system store', command: ['update-ca-certificates'], root: true },
      ]
      : [
        { what: 'remove the root from the system store (Debian/Ubuntu)', command: ['rm', '-f', DEBIAN_FILE], root: true },
        { what: 'rebuild the system store', command: ['update-ca-certificates', '--fresh'], root: true },
      ];
  }
  // After update-ca-certificates: Debian's p11-kit reads only the bundle, and has no writable
  // place for `trust anchor --store` ("no configured writable location to store anchors").
  if (onPath('trust', env)) {
    return action === 'add'
      ? [{ what: 'trust the root in the system store (p11-kit: Fedora, Arch)', command: ['trust', 'anchor', '--store', rootPath], root: true }]
      : [{ what: 'remove the root from the system store (p11-kit)', command: ['trust', 'anchor', '--remove', rootPath], root: true, mayFail: true }];
  }
  return [];
}

/**
 * Runs `steps` in order, each printed first (`print`); a root step through sudo when we are not
 * root (sudo asks for the password on the terminal), none when sudo is not installed. Stops at the
 * first failure that matters and returns false; true when all went through.
 */
export function runSteps(steps: readonly TrustStep[], print: (line: string) => void, env: NodeJS.ProcessEnv = process.env): boolean {
  const asRoot = process.getuid?.() === 0;
  if (!asRoot && steps.some((step) => step.root) && !onPath('sudo', env)) {
    print('the system store needs root, and sudo is not installed: run this again as root, or with --no-system to leave the system store alone');
    return false;
  }
  for (const step of steps) {
    const command = step.root && !asRoot ? ['sudo', ...step.command] : step.command;
    print(`${step.what}${step.root && !asRoot ? ' (needs sudo)' : ''}:\n  ${command.map(shellWord).join(' ')}`);
    const result = spawnSync(command[0]!, command.slice(1), { stdio: ['inherit', 'pipe', 'pipe'], encoding: 'utf8', env });
    if (result.status === 0 || step.mayFail) continue;
    print(`  failed${result.error ? `: ${result.error.message}` : ` (exit ${result.status})`}${result.stderr ? `: ${result.stderr.trim()}` : ''}`);
    return false;
  }
  return true;
}

/** Whether `program` is on PATH (or one of the system folders sudo's PATH has). */
function onPath(program: string, env: NodeJS.ProcessEnv): boolean {
  const folders = [...(env.PATH ?? '').split(delimiter), '/usr/sbin', '/sbin'];
  return folders.some((folder) => folder !== '' && existsSync(join(folder, program)));
}

/** The file's text, or undefined when it cannot be read (not there, not this system). */
function readOrUndefined(file: string): string | undefined {
  try {
    return readFileSync(file, 'latin1');
  } catch {
    return undefined;
  }
}

/** Whether `text` is the certificate `pem`, whitespace aside. */
function same(text: string | undefined, pem: string): boolean {
  return text !== undefined && text.replace(/\s+/g, '') === pem.replace(/\s+/g, '');
}

/** Whether the PEM bundle `bundle` holds the certificate `pem`. */
function holds(bundle: string | undefined, pem: string): boolean {
  return bundle !== undefined && bundle.replace(/\s+/g, '').includes(pem.replace(/\s+/g, ''));
}

function home(env: NodeJS.ProcessEnv): string {
  return env.HOME ?? '/';
}
