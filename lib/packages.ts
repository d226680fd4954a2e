// The CommonJS packages lib/ uses, loaded with require. An ESM `import` of a CommonJS file makes
// node lex its source for export names, with a lexer that is itself cold JavaScript: importing
// `debug` and llhttp's constants that way cost more CPU at start than the rest of them did.

import { createRequire } from 'node:module';
import type debugFactory from 'debug';
import type * as llhttpConstants from 'undici/lib/llhttp/constants.js';

const require = createRequire(import.meta.url);

/** `debug`'s factory: tracing for developers, DEBUG=norikae:*. */
export const createDebug = require('debug') as typeof debugFactory;

/** llhttp's enums (llhttp.h), as undici publishes them beside the wasm they belong to. */
export const { ERROR, METHODS, TYPE } = require('undici/lib/llhttp/constants.js') as typeof llhttpConstants;
