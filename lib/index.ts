// The package's public API: what `import … from 'norikae-splice'` offers. Everything else in lib/
// is internal and may change between versions; a name is added here only when a caller needs it.

import { findConfigFile, loadConfig } from './config-file.js';
import type { Config } from './config.js';

export { App, startApp, type ReloadOutcome, type StartAppOptions } from './app.js';
export { findConfigFile, loadConfig, parseConfig } from './config-file.js';
export type { ListenAddress } from './address.js';
export type { Config, ConfigOptions, ReadyChecks, ServiceConfig } from './config.js';
export type { ServiceInfo } from './supervisor.js';
export { ConfigError, ErrorCode, NorikaeError, statusOf } from './errors.js';
export { InheritedListeners, inheritedSockets, type InheritedSocket } from './socket-activation.js';

/**
 * What `norikae-splice check` does: finds the config like the CLI (`file`, else ./norikae.toml
 * under `cwd`, else $XDG_CONFIG_HOME/norikae/config.toml), reads and validates it, listen
 * addresses included. Throws a ConfigError (with file, line, column and a code frame when known).
 */
export function checkConfig(file?: string, cwd = process.cwd()): Config {
  return loadConfig(findConfigFile(file, cwd));
}
