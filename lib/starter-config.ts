// `norikae-splice init`: a commented starter config, written where norikae looks for one
// ($XDG_CONFIG_HOME/norikae/config.toml, or ./norikae.toml with --here), and never over a file
// that exists. The text is checked by a test to be a valid config.

import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { formatAddress, type ListenAddress } from './address.js';
import { DEFAULT_LISTEN } from './config.js';
import { userConfigFile } from './config-file.js';
import { setupErrors } from './errors.js';

/** Where `init` writes: ./norikae.toml with `here`, else the user's config file (the last place findConfigFile looks). */
export function starterConfigFile(options: { here?: boolean; cwd?: string; env?: NodeJS.ProcessEnv } = {}): string {
  const cwd = options.cwd ?? process.cwd();
  if (options.here === true) return join(cwd, 'norikae.toml');
  return userConfigFile(options.env);
}

/** The starter config's text, listening on `listen`. */
export function starterConfig(listen: ListenAddress = DEFAULT_LISTEN): string {
  const port = listen.port === 80 ? '' : `:${listen.port}`;
  return `# norikae-splice: every project at http://NAME.localhost${port}, its dev server started on the
# first request and stopped when idle. Every key is described in docs/config.md.
#
#   norikae-splice add ~/Projects/shop   # adds a [service.shop] block for that project
#   norikae-splice doctor                # checks this file and the machine, says what to fix
#   norikae-splice                       # runs it (edits to this file apply while it runs)

# Where the proxy listens. Port 80 gives URLs without a port; on Linux it needs, once,
#   sudo sysctl -w net.ipv4.ip_unprivileged_port_start=80
# or the startup service (see docs/setup.md). Or use another port: listen = "127.0.0.1:8080".
listen = "${formatAddress(listen)}"

# Stop a dev server nobody used for 15 minutes; the next request starts it again.
idle_timeout = 900

# The dashboard: what runs, logs, start and stop, at http://norikae.localhost${port}
# dashboard = "norikae.localhost"

# One block per project. \`norikae-splice add\` writes them; by hand they look like this:
#
# [service.shop]
# host = "shop.localhost"                  # or a list: ["shop.localhost", "*.shop.localhost"]
# cwd = "~/Projects/shop"
# command = "npm run dev -- --port {port} --strictPort"   # {port}: a free port norikae chooses
`;
}

/**
 * Writes the starter config to `file`, creating its folder; throws when a file is already there
 * (created exclusively: not even a race overwrites one).
 */
export function writeStarterConfig(file: string, listen?: ListenAddress): void {
  mkdirSync(dirname(file), { recursive: true });
  try {
    writeFileSync(file, starterConfig(listen), { flag: 'wx', mode: 0o644 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw setupErrors.configExists(file);
    throw err;
  }
}
