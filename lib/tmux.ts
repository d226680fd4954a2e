// Where tmux is, and what installs it. Its own file so that reading a config (`terminal = true` is
// refused where tmux is missing) does not load terminal.ts, which runs the sessions.

import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

/** What installs tmux, said where it is missing. */
export const TMUX_INSTALL = process.platform === 'darwin' ? 'brew install tmux' : 'sudo apt-get install tmux';

/** tmux on PATH, or undefined. */
export function findTmux(path = process.env.PATH ?? ''): string | undefined {
  for (const dir of path.split(delimiter)) {
    if (dir === '') continue;
    try {
      accessSync(join(dir, 'tmux'), constants.X_OK);
      return join(dir, 'tmux');
    } catch {
      // not here
    }
  }
  return undefined;
}
