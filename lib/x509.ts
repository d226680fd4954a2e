// @peculiar/x509 and the ASN.1 pieces norikae uses with it, loaded on first use: they are about
// half of the CLI's module graph, and only a CA or a leaf needs them (a TLS handshake, `ca`,
// `trust`), not a start or a `check`. Its dependency injection (tsyringe) needs the Reflect
// metadata API before it loads, and it signs with node:crypto's WebCrypto. Load it from here,
// never directly. They are CommonJS, so they are required (see packages.ts): an import would make
// node lex their source first, more than doubling what the first handshake waits for them.

import { webcrypto } from 'node:crypto';
import { createRequire } from 'node:module';

export type X509 = typeof import('@peculiar/x509');
export type X509Certificate = import('@peculiar/x509').X509Certificate;
export type X509Extension = import('@peculiar/x509').Extension;

/** The libraries, ready to use. */
export interface X509Kit {
  x509: X509;
  asn1: typeof import('@peculiar/asn1-schema');
  asn1X509: typeof import('@peculiar/asn1-x509');
}

let loading: Promise<X509Kit> | undefined;

/** Loads the libraries once, for every caller. */
export function loadX509(): Promise<X509Kit> {
  loading ??= (async () => {
    const require = createRequire(import.meta.url);
    require('reflect-metadata');
    const x509 = require('@peculiar/x509') as X509;
    x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
    return { x509, asn1: require('@peculiar/asn1-schema') as X509Kit['asn1'], asn1X509: require('@peculiar/asn1-x509') as X509Kit['asn1X509'] };
  })();
  return loading;
}
