// The system tools some tests drive (systemd-socket-activate, systemd-analyze, tmux): Debian's
// packages, found at their usual paths. As with Chromium (test/chromium.ts), a developer's
// `npm test` skips those tests with the command that installs the tool; under CI=true a missing
// tool fails them, and `.ci/run` installs it.

import { accessSync, constants } from 'node:fs';
import type { TestContext } from 'node:test';
import { isCi } from './chromium.js';

export const SYSTEMD_INSTALL = 'apt-get install systemd';
export const TMUX_INSTALL = 'apt-get install tmux';

export const SYSTEMD_SOCKET_ACTIVATE = { path: '/usr/bin/systemd-socket-activate', install: SYSTEMD_INSTALL };
export const SYSTEMD_ANALYZE = { path: '/usr/bin/systemd-analyze', install: SYSTEMD_INSTALL };
export const TMUX = { path: '/usr/bin/tmux', install: TMUX_INSTALL };
export const PYTHON3 = { path: '/usr/bin/python3', install: 'apt-get install python3' };

/**
 * The tool's path when it can be run; else the test is skipped (saying how to install it), or,
 * under CI, fails. Returns undefined when the test was skipped: the caller returns.
 */
export function requireTool(t: TestContext, tool: { path: string; install: string }, env = process.env): string | undefined {
  try {
    accessSync(tool.path, constants.X_OK);
    return tool.path;
  } catch {
    const missing = `no ${tool.path}; install it with \`${tool.install}\``;
    if (isCi(env)) throw new Error(`${missing} (CI is set, so this is a failure, not a skip)`);
    t.skip(missing);
    return undefined;
  }
}
