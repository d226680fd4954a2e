// A splicer with a supervisor over TOML service tables, for launch tests: `{server}` stands for
// the dev-server fixture, `{trickle}` for the trickle-server fixture, `{record}` for a file where
// each launch of either writes "pid port".

import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type Config } from '../lib/config.js';
import { parseConfig } from '../lib/config-file.js';
import { LaunchRecord } from '../lib/launch-record.js';
import { memoryLog } from '../lib/log.js';
import { isLiveProcess } from '../lib/process-group.js';
import { SpliceServer } from '../lib/server.js';
import { ServiceSupervisor } from '../lib/supervisor.js';
import { DEV_SERVER, exchange, getHead, parseResponse, type ParsedResponse } from './helpers.js';

/** An HTTP server that never finishes its response head (fixtures/trickle-server.ts). */
export const TRICKLE_SERVER = fileURLToPath(new URL('./fixtures/trickle-server.js', import.meta.url));

export interface Harness {
  port: number;
  supervisor: ServiceSupervisor;
  log: ReturnType<typeof memoryLog>;
  dir: string;
  /** The "pid port" lines the fixture recorded, one per launch. */
  launches: () => { pid: number; port: number }[];
  get: (host: string, path?: string) => Promise<ParsedResponse>;
  /** Reloads with other service tables (same placeholders), as a config edit does: router, listeners and supervisor. */
  reconfigure: (services: string) => Promise<void>;
}

/** A splicer + supervisor over `services` (TOML); `{record}`, `{server}` and `{trickle}` are filled in. */
export async function start(t: TestContext, services: string): Promise<Harness> {
  const dir = mkdtempSync(join(tmpdir(), 'norikae-supervisor-'));
  const recordFile = join(dir, 'launches.txt');
  const configOf = (tables: string): Config => parseConfig(`listen = "127.0.0.1:0"\nlog_dir = "${dir}/logs"\n${tables}`
    .replaceAll('{server}', `node ${DEV_SERVER}`)
    .replaceAll('{trickle}', `node ${TRICKLE_SERVER}`)
    .replaceAll('{record}', recordFile), join(dir, 'norikae.toml'));
  const config = configOf(services);
  const log = memoryLog();
  const supervisor = new ServiceSupervisor(config, { log, record: new LaunchRecord(join(dir, 'state', 'launched.json')) });
  const server = new SpliceServer(config, { log, connector: supervisor });
  const [address] = await server.listen();
  const launches = (): { pid: number; port: number }[] => (existsSync(recordFile) ? readFileSync(recordFile, 'utf8') : '')
    .trim().split('\n').filter(Boolean).map((line) => ({ pid: Number(line.split(' ')[0]), port: Number(line.split(' ')[1]) }));
  t.after(async () => {
    await server.close();
    await supervisor.stopAll();
    // A process the supervisor no longer knows of (a bug, say: launched for a service a reload
    // removed) would outlive the test: every recorded launch still alive is killed.
    for (const { pid } of launches()) {
      try {
        if (isLiveProcess(pid)) process.kill(pid, 'SIGKILL');
      } catch {
        // Gone in the meantime.
      }
    }
    rmSync(dir, { recursive: true, force: true });
  });
  const port = address!.port;
  return {
    port,
    supervisor,
    log,
    dir,
    launches,
    get: async (host, path = '/') => parseResponse(await exchange(t, port, [getHead(host, path)])),
    reconfigure: (tables) => server.reconfigure(configOf(tables)),
  };
}
