// How a connection we do not splice is answered, by what it spoke: HTTP with a page (over TLS too,
// when we terminated it), a TLS ClientHello we route by SNI with an alert, raw TCP with a reset.
// server.ts picks one per connection; every refusal goes through one of these.

import type { Socket } from 'node:net';
import { createDebug } from './packages.js';
import { type AnswerPage, internalErrorPage, TlsAlert, upstreamErrorPage, writeAnswer, writeTlsAlert } from './answers.js';
import type { ServiceConfig } from './config.js';
import { messageOf } from './errors.js';
import type { Log } from './log.js';

const debug = createDebug('norikae:server');

/** How a connection we do not splice is answered: HTTP with a page, TLS with an alert, raw TCP with a reset. */
export interface Refusal {
  /** No service has `host` (undefined: a ClientHello without SNI). */
  noService(client: Socket, host: string | undefined, accept: string): void;
  /** `err` kept the connection from `service`; undefined when we failed before we had one. */
  unreachable(client: Socket, service: ServiceConfig | undefined, err: unknown, accept: string): void;
}

export interface Refusals {
  http: Refusal;
  tls: Refusal;
  tcp: Refusal;
}

export function refusals(context: { log: Log; notFound: (client: Socket, host: string) => AnswerPage }): Refusals {
  const { log } = context;
  return {
    /** HTTP is answered with a page: 404 for an unknown host, the connector's error (502, 503, 504) or 500. */
    http: {
      noService: (client, host, accept) => {
        debug('no service for %s', host);
        // An HTTP head always names a host (sniff.ts refuses one without).
        writeAnswer(client, context.notFound(client, host!), accept);
      },
      unreachable: (client, service, err, accept) => {
        debug('upstream of %s: %s', service?.name, messageOf(err));
        writeAnswer(client, service === undefined ? internalErrorPage() : upstreamErrorPage(service, err), accept);
      },
    },
    /** TLS before a certificate (an unknown name, or passed through to the upstream): all we can answer is an alert. */
    tls: {
      noService: (client, host) => {
        debug('TLS for %s: no service', host ?? '(no SNI)');
        writeTlsAlert(client, TlsAlert.UNRECOGNIZED_NAME);
      },
      unreachable: (client, service, err) => {
        // An alert says little: the log says why.
        log.warn(`${service === undefined ? '' : `${service.name}: `}a TLS connection was dropped: ${messageOf(err)}`);
        writeTlsAlert(client, TlsAlert.INTERNAL_ERROR);
      },
    },
    /** A raw TCP connection cannot read an answer: the log says why, and it is reset (noService: never, it has its service). */
    tcp: {
      noService: (client) => client.resetAndDestroy(),
      unreachable: (client, service, err) => {
        log.warn(`${service?.name ?? 'norikae-splice'}: a TCP connection was dropped: ${messageOf(err)}`);
        client.resetAndDestroy();
      },
    },
  };
}
