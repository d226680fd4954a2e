// The CommonJS packages lib/ uses, loaded with require. An ESM `import` of a CommonJS file makes
// node lex its source for export names, with a lexer that is itself cold JavaScript: importing
// `debug` and llhttp's constants that way cost more CPU at start than the rest of them did.

import { createRequire } from 'node:module';
import type debugFactory from 'debug';
import type * as llhttpConstants from 'undici/lib/llhttp/constants.js';

const require = createRequire(import.meta.url);

/** What lib/ uses of a `debug` logger. */
export interface Debugger {
  (formatter: unknown, ...args: unknown[]): void;
  readonly enabled: boolean;
}

const silent: Debugger = Object.assign(() => {}, { enabled: false });

/**
 * `debug`'s factory: tracing for developers, DEBUG=norikae:*. `debug` reads DEBUG once, when it
 * is loaded, and loading it (with supports-color) took 6-10 ms of CPU at every start: without
 * DEBUG it would enable nothing, so then it is not loaded and every logger is a silent one.
 */
export const createDebug: (namespace: string) => Debugger = process.env.DEBUG
  ? require('debug') as typeof debugFactory
  : () => silent;

/** llhttp's enums (llhttp.h), as undici publishes them beside the wasm they belong to. */
export const { ERROR, METHODS, TYPE } = require('undici/lib/llhttp/constants.js') as typeof llhttpConstants;
