// The shape of a results file (bench/results/*.json), and everything derived from it: medians,
// ratios and the issue's targets with a pass/miss mark. run.ts fills it, report.ts renders it;
// both read the verdicts from here so the console and docs/benchmarks.md never disagree.

/**
 * In round order. node-floor is the naive Node `net` + `pipe` splicer (bench/node-floor.ts) and
 * haproxy runs in `mode tcp`: splicers like norikae. portless, http-proxy and caddy are the tools a
 * user would pick instead (bench/peers.ts); they parse HTTP.
 */
export const TARGET_NAMES = ['direct', 'norikae', 'haproxy', 'node-floor', 'portless', 'http-proxy', 'caddy'] as const;
export type TargetName = (typeof TARGET_NAMES)[number];
/** The peers that parse every request: the ones norikae must beat by 2× on keep-alive. */
export const HTTP_PEERS = ['portless', 'http-proxy', 'caddy'] as const;
export type HttpPeer = (typeof HTTP_PEERS)[number];

export interface Machine {
  cpu: string;
  cores: number;
  node: string;
  kernel: string;
  haproxy: string | undefined;
  wrk: string | undefined;
  /** The hard limit on open files: it caps the idle-connection count (2 descriptors each). */
  fdHardLimit: number;
  /** Versions of the peers measured; a missing one was not installed (caddy) or not run. */
  peers?: Partial<Record<HttpPeer, string>>;
}

/** One load-generator run against one target. */
export interface RunSample {
  /** req/s, or MiB/s for the 1 MiB load. */
  value: number;
  requests: number;
  bytes: number;
  seconds: number;
  /** Connect/read/write/timeout errors and non-2xx answers together. */
  errors: number;
  latencyP50Us: number;
  latencyP99Us: number;
  /** Connections the upstream accepted during the run (how "new connection per request" is verified). */
  upstreamAccepts: number;
  /** CPU of the proxy process per request, from /proc/PID/stat (undefined for direct). */
  proxyUserUsPerRequest: number | undefined;
  proxySysUsPerRequest: number | undefined;
}

export interface ThroughputLoad {
  id: string;
  title: string;
  tool: 'wrk' | 'autocannon';
  connections: number;
  newConnectionPerRequest: boolean;
  unit: 'req/s' | 'MiB/s';
  /** Samples in round order, per target. */
  rounds: Partial<Record<TargetName, RunSample[]>>;
}

export interface LatencySample {
  p50Us: number;
  p99Us: number;
}

export interface IdleMemory {
  connections: number;
  rssBefore: number;
  rssAfter: number;
  /** RSS once the heap was collected (the Node processes only). */
  rssAfterGc: number | undefined;
  /** After a forced GC (the Node processes only; read through the probe). */
  heapUsedBefore: number | undefined;
  heapUsedAfter: number | undefined;
  fdsBefore: number;
  fdsAfter: number;
}

export interface ColdStartTiming {
  /** From the request (or, direct, the spawn) to the server accepting. */
  launchToListenMs: number;
  /** From the server accepting to the complete first response at the client. */
  overheadMs: number;
}

export interface BenchResults {
  /** 2: peers, `idle.byTarget` and `scale`. Files of version 1 still render. */
  version: 1 | 2;
  date: string;
  durationSeconds: number;
  machine: Machine;
  /** 1-minute load average at the start and the end: other work on the machine shows here. */
  loadAverage: [number, number];
  settings: { rounds: number; secondsPerRun: number; haproxyThreads: number; caddyMaxProcs?: number; quick?: boolean };
  targets: TargetName[];
  sniff: { headBytes: number; iterations: number; roundsUs: number[] };
  throughput: ThroughputLoad[];
  websocket: { messageBytes: number; messagesPerRound: number; rounds: Partial<Record<TargetName, LatencySample[]>> };
  idle: {
    requested: number;
    limitNote: string | undefined;
    norikae: IdleMemory;
    haproxy: IdleMemory | undefined;
    /** Absent in results from before node-floor was measured. */
    nodeFloor?: IdleMemory | undefined;
    /** Every proxy measured (version 2). */
    byTarget?: Partial<Record<TargetName, IdleMemory>>;
  };
  /** Through norikae (judged), and the same server started and polled by the bench itself (the floor). */
  coldStart: { trials: ColdStartTiming[]; direct: ColdStartTiming[]; concurrent?: ConcurrentColdStart };
  scale?: ScaleResults;
  /** What failed for a peer (a WebSocket it dropped, say): said on the page; its figures are missing. */
  failures?: Partial<Record<TargetName, string>>;
  /** HTTPS through norikae terminating TLS, haproxy terminating TLS and the Node TLS floor (bench/tls.ts). */
  tls?: TlsResults;
}

/** The HTTPS section's servers, in round order: norikae and haproxy terminate TLS, tls-floor is bench/tls-floor.ts. */
export const TLS_TARGETS = ['norikae', 'haproxy', 'tls-floor'] as const;
export type TlsTarget = (typeof TLS_TARGETS)[number];

export interface TlsLoad {
  kind: 'tls-keepalive-50' | 'tls-new-connection';
  title: string;
  tool: 'wrk' | 'autocannon';
  connections: number;
  rounds: Partial<Record<TlsTarget, RunSample[]>>;
}

export interface TlsResults {
  /** Who measured, and how the SNI name got to the servers. */
  client: string;
  haproxyMode: string;
  targets: TlsTarget[];
  loads: TlsLoad[];
  /** ForwardedHeaders over a stream of typical request heads, µs per request, per round. */
  forwarded: { heads: number; headBytes: number; roundsUs: number[] };
}

/** `a` over `b` on an HTTPS load, as ratio() does it: the median of per-round ratios. */
export function tlsRatio(load: TlsLoad, a: TlsTarget, b: TlsTarget): number | undefined {
  const as = load.rounds[a];
  const bs = load.rounds[b];
  if (as === undefined || bs === undefined) return undefined;
  return median(as.map((sample, i) => sample.value / bs[i]!.value));
}

/** `count` cold services asked for at once through norikae, and the same servers started at once by the bench. */
export interface ConcurrentColdStart {
  count: number;
  trials: ColdStartTiming[];
  direct: ColdStartTiming[];
}

/** One generated config size (bench/scale.ts). */
export interface ScalePoint {
  services: number;
  /** Spawn of the CLI → its "listening on" line, per run. */
  startMs: number[];
  /** Wall time of `norikae-splice check`, per run. */
  checkMs: number[];
  /** An edit of one service: the write → the edit answering, less the watcher's settle delay, per run. */
  reloadMs: number[];
  /** norikae's RSS with these services configured and none running, after a GC and a few requests. */
  rssBytes: number;
  heapUsedBytes: number;
  /** HeadSniffer + Router.route per head, µs, per round. */
  sniffRouteUs: number[];
}

export interface ScaleResults {
  /** Half of the services have a wildcard host besides their exact one. */
  points: ScalePoint[];
  /** `node` on an empty script, spawn → exit: the part of every start that is Node's own. */
  nodeStartMs: number[];
  /** The config watcher's quiet time before it reloads (lib/config-watcher.ts), taken off reloadMs. */
  settleMs: number;
}

export function idleOf(results: BenchResults, target: TargetName): IdleMemory | undefined {
  return results.idle.byTarget?.[target]
    ?? (target === 'norikae' ? results.idle.norikae : target === 'haproxy' ? results.idle.haproxy : target === 'node-floor' ? results.idle.nodeFloor : undefined);
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Nearest-rank percentile of unsorted values. */
export function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/**
 * `a` over `b` as the median of per-round ratios: each round pairs runs made seconds apart, so
 * slow drift of the machine cancels out instead of leaking into the ratio.
 */
export function ratio(load: ThroughputLoad, a: TargetName, b: TargetName): number | undefined {
  const as = load.rounds[a];
  const bs = load.rounds[b];
  if (as === undefined || bs === undefined) return undefined;
  return median(as.map((sample, i) => sample.value / bs[i]!.value));
}

export function medianOf(load: ThroughputLoad, target: TargetName, pick: (s: RunSample) => number | undefined = (s) => s.value): number | undefined {
  const samples = load.rounds[target];
  if (samples === undefined) return undefined;
  const values = samples.map(pick).filter((v): v is number => v !== undefined);
  return values.length === 0 ? undefined : median(values);
}

/** Upstream accepts per request, median over the rounds: ≈ 1 when each request really had its own connection. */
export function acceptsPerRequest(load: ThroughputLoad, target: TargetName): number | undefined {
  return medianOf(load, target, (s) => (s.requests === 0 ? undefined : s.upstreamAccepts / s.requests));
}

/** WebSocket latency `target` adds over direct, per round then median; `key` picks p50 or p99. */
export function addedLatencyUs(results: BenchResults, target: TargetName, key: keyof LatencySample): number | undefined {
  const rounds = results.websocket.rounds;
  const own = rounds[target];
  const direct = rounds.direct;
  if (own === undefined || direct === undefined) return undefined;
  // A failed round is stored as null (NaN in the run): left out.
  const added = own.map((sample, i) => (sample[key] ?? Number.NaN) - (direct[i]?.[key] ?? Number.NaN)).filter(Number.isFinite);
  return added.length === 0 ? undefined : median(added);
}

export function bytesPerConnection(idle: IdleMemory): number {
  return (idle.rssAfter - idle.rssBefore) / idle.connections;
}

/** The load whose numbers the targets are judged on: wrk when it ran (it is not the bottleneck), else autocannon. */
export function primaryLoad(results: BenchResults, kind: string): ThroughputLoad | undefined {
  const loads = results.throughput.filter((load) => load.id.startsWith(`${kind}/`));
  return loads.find((load) => load.tool === 'wrk') ?? loads[0];
}

export interface Check {
  what: string;
  goal: string;
  /** Undefined when it could not be measured (a peer missing). */
  measured: number | undefined;
  shown: string;
  /** Undefined when unmeasured, or for a reference figure that has no goal. */
  pass: boolean | undefined;
}

/** The scale point of `services`, when the run measured it. */
export function scalePoint(results: BenchResults, services: number): ScalePoint | undefined {
  return results.scale?.points.find((point) => point.services === services);
}

/** Cold-start overhead over the floor, trial by trial after sorting both: the k-th fastest against the k-th fastest. */
export function overheadOverFloor(trials: readonly ColdStartTiming[], direct: readonly ColdStartTiming[]): number[] {
  const own = trials.map((t) => t.overheadMs).sort((a, b) => a - b);
  const floor = direct.map((t) => t.overheadMs).sort((a, b) => a - b);
  return own.slice(0, floor.length).map((ms, i) => ms - floor[i]!);
}

/**
 * The targets of the issue "bench against the tools people would pick instead, and at scale",
 * judged on norikae as this run measured it. Figures with no goal (norikae over Caddy and haproxy
 * on new connections) are listed as references.
 */
export function checks(results: BenchResults): Check[] {
  const list: Check[] = [];
  const has = (target: TargetName): boolean => results.targets.includes(target);
  const push = (what: string, goal: string, measured: number | undefined, shown: string, pass: boolean | undefined): void => {
    list.push({ what, goal, measured, shown: measured === undefined ? 'n/a' : shown, pass: measured === undefined ? undefined : pass });
  };
  const atLeast = (what: string, goal: number, measured: number | undefined): void =>
    push(what, `≥ ${goal.toFixed(1)}×`, measured, `${measured?.toFixed(2)}×`, measured === undefined ? undefined : measured >= goal);
  const reference = (what: string, measured: number | undefined): void =>
    push(what, 'reference', measured, `${measured?.toFixed(2)}×`, undefined);
  const atMost = (what: string, goal: number, unit: string, measured: number | undefined, digits: number, goalText = `≤ ${goal} ${unit}`): void =>
    push(what, goalText, measured, `${measured?.toFixed(digits)} ${unit}`, measured === undefined ? undefined : measured <= goal);
  const missing = (peer: TargetName): string => (has(peer) ? '' : ` (${peer} not installed)`);

  for (const kind of ['keepalive-1', 'keepalive-50', 'new-connection', '1mib']) {
    const load = primaryLoad(results, kind);
    if (load !== undefined) atLeast(`${load.title}: norikae / node-floor (${load.tool})`, 1.0, ratio(load, 'norikae', 'node-floor'));
  }
  for (const kind of ['keepalive-1', 'keepalive-50']) {
    const load = primaryLoad(results, kind);
    if (load === undefined) continue;
    for (const peer of HTTP_PEERS) atLeast(`${load.title}: norikae / ${peer} (${load.tool})${missing(peer)}`, 2.0, ratio(load, 'norikae', peer));
  }
  const fresh = primaryLoad(results, 'new-connection');
  if (fresh !== undefined) {
    for (const peer of ['portless', 'http-proxy'] as const) atLeast(`${fresh.title}: norikae / ${peer} (${fresh.tool})${missing(peer)}`, 1.0, ratio(fresh, 'norikae', peer));
    for (const peer of ['caddy', 'haproxy'] as const) reference(`${fresh.title}: norikae / ${peer} (${fresh.tool})${missing(peer)}`, ratio(fresh, 'norikae', peer));
  }
  const idle = idleOf(results, 'norikae');
  const floorIdle = idleOf(results, 'node-floor');
  const kib = (memory: IdleMemory | undefined): number | undefined => (memory === undefined ? undefined : bytesPerConnection(memory) / 1024);
  const floorKib = kib(floorIdle);
  atMost(`memory per idle spliced connection at ${idle?.connections}`, floorKib ?? Number.NaN, 'KiB', kib(idle), 2,
    `≤ node-floor's (${floorKib === undefined ? 'n/a' : `${floorKib.toFixed(2)} KiB`})`);
  const added = addedLatencyUs(results, 'norikae', 'p50Us');
  const floorAdded = addedLatencyUs(results, 'node-floor', 'p50Us');
  atMost('WebSocket 32 B echo: added p50, norikae − node-floor', 5, 'µs',
    added === undefined || floorAdded === undefined ? undefined : added - floorAdded, 1);

  const large = results.scale?.points.at(-1);
  const small = results.scale?.points[0];
  const n = large?.services ?? 1000;
  atMost(`${n} services: start → listening (median)`, 300, 'ms', large && median(large.startMs), 0);
  atMost(`${n} services: \`check\` (median)`, 300, 'ms', large && median(large.checkMs), 0);
  atMost(`${n} services: reload of one changed service, after the write is seen (median)`, 50, 'ms', large && median(large.reloadMs), 1);
  atMost(`${n} services: sniff + route per head (median)`, 2, 'µs', large && median(large.sniffRouteUs), 2);
  atMost(`${n} services, none running: RSS / RSS with ${small?.services ?? 10}`, 1.5, '×', large && small && large.rssBytes / small.rssBytes, 2, '≤ 1.5×');
  const coldOver = results.coldStart.direct.length === 0 ? undefined
    : median(results.coldStart.trials.map((t) => t.overheadMs)) - median(results.coldStart.direct.map((t) => t.overheadMs));
  atMost('cold start: first response after the server accepts, over the floor (medians)', 1.5, 'ms', coldOver, 2);
  const concurrent = results.coldStart.concurrent;
  atMost(`${concurrent?.count ?? 20} cold services at once: the worst over its floor (rank-paired)`, 5, 'ms',
    concurrent && Math.max(...overheadOverFloor(concurrent.trials, concurrent.direct)), 1);
  for (const load of results.tls?.loads ?? []) {
    atLeast(`${load.title}: norikae / tls-floor (${load.tool})`, 1.0, tlsRatio(load, 'norikae', 'tls-floor'));
    reference(`${load.title}: norikae / haproxy (${load.tool})${results.tls!.targets.includes('haproxy') ? '' : ' (haproxy not installed)'}`, tlsRatio(load, 'norikae', 'haproxy'));
  }
  if (results.tls !== undefined) {
    atMost('forwarded-header rewriter per HTTPS request (fastest round)', 2, 'µs', Math.min(...results.tls.forwarded.roundsUs), 2);
  }
  return list;
}
