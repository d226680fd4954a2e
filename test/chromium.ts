// Which Chromium the browser tests drive: Debian's package, never a downloaded browser. Without it
// a developer's `npm test` skips those tests and says how to install it; in CI it fails them, as a
// skip there would hide a broken install.

import { accessSync, constants } from 'node:fs';

/** The one command that installs what the browser tests need. */
export const CHROMIUM_INSTALL = 'apt-get install chromium';

/** What a headless Chromium needs in this sandbox: no network of its own, no GPU, no sandbox as root. */
export const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-proxy-server',
];

export type ChromiumChoice = { executable: string } | { skip: string } | { fail: string };

/** Debian's /usr/bin/chromium (or $CHROMIUM_PATH) when it can be run; else a skip, or a failure in CI. */
export function chooseChromium(env: NodeJS.ProcessEnv, path = env.CHROMIUM_PATH ?? '/usr/bin/chromium'): ChromiumChoice {
  if (isExecutable(path)) return { executable: path };
  const missing = `no Chromium at ${path}; install Debian's with \`${CHROMIUM_INSTALL}\``;
  return isCi(env) ? { fail: `${missing} (CI is set, so this is a failure, not a skip)` } : { skip: missing };
}

/** CI services set CI=true (or 1); CI=false or an empty CI is a developer's machine. */
export function isCi(env: NodeJS.ProcessEnv): boolean {
  return env.CI !== undefined && !['', '0', 'false'].includes(env.CI.toLowerCase());
}

/** A file this process may execute. */
function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** A command-line tool the tests need (`certutil`, `openssl`): found on PATH, else a skip, or a failure in CI. */
export function chooseTool(env: NodeJS.ProcessEnv, program: string, install: string): { skip: string | false; fail?: string } {
  const found = (env.PATH ?? '').split(':').some((folder) => folder !== '' && isExecutable(`${folder}/${program}`));
  if (found) return { skip: false };
  const missing = `no ${program} on PATH; install it with \`${install}\``;
  return isCi(env) ? { skip: false, fail: `${missing} (CI is set, so this is a failure, not a skip)` } : { skip: missing };
}
