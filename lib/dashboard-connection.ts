// The limits of one connection to the dashboard host. Its node:http server is never listen()ed
// (the listener hands it sockets), so Node's own headersTimeout and requestTimeout never run: their
// checks belong to a listening server. Here every head after the first (which the listener's
// sniffer read under `head_timeout`) and every body get the same limit as a first head: a head must
// be complete within `head_timeout` of the previous answer (else 408, or a silent close when the
// connection sent nothing: an idle keep-alive one), a body within `head_timeout` of its head (else
// 408), and a body is at most MAX_BODY_SIZE bytes (else 413: the API takes no bodies). A client
// that pipelines requests behind one not answered yet (an event stream) is closed past a few.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { headErrorPage, writeAnswer } from './answers.js';
import { controlErrors, headErrors } from './errors.js';

/** The API takes no request bodies: anything larger is refused with 413. */
export const MAX_BODY_SIZE = 4096;
/** Requests a connection may have in flight (pipelined behind an unfinished answer). */
const MAX_IN_FLIGHT = 4;

export class DashboardConnection {
  /** The head or body deadline now running, if any. */
  private timer: NodeJS.Timeout | undefined;
  /** Bytes came in since the last answer was finished: an overdue head gets 408, not a silent close. */
  private sawBytes = false;
  private inFlight = 0;

  /**
   * `routedHost`: what routing read from the first head. `headTimeout`: seconds, read at each
   * deadline (a reload may change it).
   */
  constructor(
    readonly socket: Socket,
    readonly routedHost: string,
    private readonly headTimeout: () => number,
  ) {
    socket.on('data', this.onData);
    socket.on('close', () => clearTimeout(this.timer));
  }

  /**
   * A request's head was read. Resolves once its body (if any) is read and dropped; rejects with
   * a ControlError (408, 413) for the answer, after which the connection closes. False: the
   * connection was closed instead (too many requests in flight).
   */
  async request(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (++this.inFlight > MAX_IN_FLIGHT) {
      this.socket.destroy();
      return false;
    }
    res.once('close', () => {
      if (--this.inFlight === 0 && !this.socket.destroyed) this.waitForHead();
    });
    try {
      await this.readBody(req);
    } catch (err) {
      // What is left of the body is not read: the answer closes the connection.
      res.setHeader('connection', 'close');
      throw err;
    }
    return true;
  }

  /** Reads and drops a body, within MAX_BODY_SIZE and `head_timeout`. */
  private readBody(req: IncomingMessage): Promise<void> {
    const seconds = this.headTimeout();
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > MAX_BODY_SIZE) return Promise.reject(controlErrors.bodyTooLarge(MAX_BODY_SIZE));
    if (req.complete) return Promise.resolve();
    return new Promise((resolve, reject) => {
      let received = 0;
      const timer = setTimeout(() => {
        done();
        reject(controlErrors.bodyTimeout(seconds));
      }, seconds * 1000);
      timer.unref();
      const onData = (chunk: Buffer): void => {
        received += chunk.length;
        if (received <= MAX_BODY_SIZE) return;
        done();
        reject(controlErrors.bodyTooLarge(MAX_BODY_SIZE));
      };
      const onEnd = (): void => {
        done();
        resolve();
      };
      // A client gone before its body was complete: nobody reads the answer, and nothing is done.
      const onClose = (): void => {
        done();
        reject(controlErrors.bodyIncomplete());
      };
      const done = (): void => {
        clearTimeout(timer);
        req.off('data', onData);
        req.off('end', onEnd);
        req.off('close', onClose);
        req.pause();
      };
      req.on('data', onData);
      req.on('end', onEnd);
      req.on('close', onClose);
    });
  }

  /** The previous answer is finished: the next head must be complete within `head_timeout`. */
  private waitForHead(): void {
    this.sawBytes = false;
    const seconds = this.headTimeout();
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      if (this.sawBytes) writeAnswer(this.socket, headErrorPage(headErrors.timeout(seconds)), '');
      else this.socket.destroy();
    }, seconds * 1000);
    this.timer.unref();
  }

  private readonly onData = (): void => {
    this.sawBytes = true;
  };
}
