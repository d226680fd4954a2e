// The CLI's side of the dashboard API: `status`, `logs`, `start`, `stop` and `restart` talk to the
// running norikae-splice found through the same config (where its launch record says it listens,
// else the config's first listen address, with the dashboard host in the Host header).

import { request } from 'node:http';
import { hostToDial, type ListenAddress } from './address.js';
import type { Config } from './config.js';
import { ApiError, NoDashboardError, NotRunningError } from './errors.js';
import type { ServiceInfo } from './supervisor.js';

export class ControlClient {
  private readonly host: string;
  /** The port the running instance is asked on: its URLs are on this port too. */
  readonly port: number;
  /** What every request carries: the dashboard host, and the API key when we could read it. */
  private readonly headers: Record<string, string>;

  /**
   * `listening`: where the running instance said it listens; default: the config's first `listen`.
   * `key`: the API key from its state folder (see api-access.ts); without it, only a connection
   * the running instance can tell is ours (Linux) is let in.
   */
  constructor(private readonly config: Config, listening: ListenAddress = config.listen[0]!, key?: string) {
    if (config.dashboardHost === undefined) {
      throw new NoDashboardError(config.file);
    }
    this.host = hostToDial(listening.host);
    this.port = listening.port;
    this.headers = { host: `${config.dashboardHost}:${listening.port}`, ...(key === undefined ? {} : { authorization: `Bearer ${key}` }) };
  }

  services(): Promise<ServiceInfo[]> {
    return this.json('GET', '/api/services').then((body) => (body as { services: ServiceInfo[] }).services);
  }

  logs(name: string, lines: number): Promise<string[]> {
    return this.json('GET', `/api/services/${encodeURIComponent(name)}/logs?lines=${lines}`).then((body) => (body as { lines: string[] }).lines);
  }

  control(name: string, action: 'start' | 'stop' | 'restart'): Promise<ServiceInfo> {
    return this.json('POST', `/api/services/${encodeURIComponent(name)}/${action}`).then((body) => (body as { service: ServiceInfo }).service);
  }

  /**
   * Calls `onEvent` for every server-sent event until the connection ends; resolves then, also
   * when norikae-splice went away without ending it (it was stopped). With `tail`, the stream
   * starts with that service's last lines.
   */
  events(onEvent: (event: string, data: unknown) => void, tail?: { name: string; lines: number }): Promise<void> {
    const path = tail === undefined ? '/api/events' : `/api/events?service=${encodeURIComponent(tail.name)}&lines=${tail.lines}`;
    return new Promise((resolve, reject) => {
      const req = request({ host: this.host, port: this.port, path, headers: this.headers }, (res) => {
        if ((res.statusCode ?? 500) >= 400) {
          res.resume();
          reject(new ApiError(res.statusCode ?? 500, `HTTP ${res.statusCode} for ${path}`));
          return;
        }
        let buffered = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          buffered += chunk;
          for (let end = buffered.indexOf('\n\n'); end !== -1; end = buffered.indexOf('\n\n')) {
            const block = buffered.slice(0, end);
            buffered = buffered.slice(end + 2);
            const event = /^event: (.*)$/m.exec(block)?.[1];
            const data = /^data: (.*)$/m.exec(block)?.[1];
            if (event !== undefined && data !== undefined) onEvent(event, JSON.parse(data));
          }
        });
        // 'close', not 'end': a norikae that stops destroys the connection, and 'end' never comes.
        res.on('error', () => {});
        res.on('close', () => resolve());
      });
      req.on('error', (err) => reject(this.explain(err)));
      req.end();
    });
  }

  private json(method: string, path: string): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const req = request({ host: this.host, port: this.port, method, path, headers: this.headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let body: unknown;
          try {
            body = JSON.parse(text);
          } catch {
            reject(new NotRunningError(`something else answers on ${this.where()}: it is not a norikae-splice dashboard (${res.statusCode})`));
            return;
          }
          if ((res.statusCode ?? 500) >= 400) reject(new ApiError(res.statusCode ?? 500, (body as { error?: string }).error ?? `HTTP ${res.statusCode}`));
          else resolve(body);
        });
      });
      req.on('error', (err) => reject(this.explain(err)));
      req.end();
    });
  }

  private explain(err: NodeJS.ErrnoException): Error {
    if (err.code === 'ECONNREFUSED') {
      return new NotRunningError(`no norikae-splice is running for ${this.config.file} (nothing listens on ${this.where()})`);
    }
    return err;
  }

  private where(): string {
    return this.host.includes(':') ? `[${this.host}]:${this.port}` : `${this.host}:${this.port}`;
  }
}
