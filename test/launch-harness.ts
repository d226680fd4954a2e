// A splicer with a supervisor over TOML service tables, for launch tests: `{server}` stands for
// the dev-server fixture, `{record}` for a file where each launch of it writes "pid port".

import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { parseConfig } from '../lib/config.js';
import { LaunchRecord } from '../lib/launch-record.js';
import { memoryLog } from '../lib/log.js';
import { SpliceServer } from '../lib/server.js';
import { ServiceSupervisor } from '../lib/supervisor.js';
import { DEV_SERVER, exchange, getHead, parseResponse, type ParsedResponse } from './helpers.js';

export interface Harness {
  port: number;
  supervisor: ServiceSupervisor;
  log: ReturnType<typeof memoryLog>;
  dir: string;
  /** The "pid port" lines the fixture recorded, one per launch. */
  launches: () => { pid: number; port: number }[];
  get: (host: string, path?: string) => Promise<ParsedResponse>;
}

/** A splicer + supervisor over `services` (TOML); `{record}` and `{server}` are filled in. */
export async function start(t: TestContext, services: string): Promise<Harness> {
  const dir = mkdtempSync(join(tmpdir(), 'norikae-supervisor-'));
  const recordFile = join(dir, 'launches.txt');
  const toml = `listen = "127.0.0.1:0"\nlog_dir = "${dir}/logs"\n${services}`
    .replaceAll('{server}', `node ${DEV_SERVER}`)
    .replaceAll('{record}', recordFile);
  const config = parseConfig(toml, join(dir, 'norikae.toml'));
  const log = memoryLog();
  const supervisor = new ServiceSupervisor(config, { log, record: new LaunchRecord(join(dir, 'state', 'launched.json')) });
  const server = new SpliceServer(config, { log, connector: supervisor });
  const [address] = await server.listen();
  t.after(async () => {
    await server.close();
    await supervisor.stopAll();
    rmSync(dir, { recursive: true, force: true });
  });
  const port = address!.port;
  return {
    port,
    supervisor,
    log,
    dir,
    launches: () => (existsSync(recordFile) ? readFileSync(recordFile, 'utf8') : '').trim().split('\n').filter(Boolean)
      .map((line) => ({ pid: Number(line.split(' ')[0]), port: Number(line.split(' ')[1]) })),
    get: async (host, path = '/') => parseResponse(await exchange(t, port, [getHead(host, path)])),
  };
}
