// The shape of a results file (bench/results/*.json), and everything derived from it: medians,
// ratios and the targets with a pass/miss mark. run.ts fills it, report.ts renders it;
// both read the verdicts from here so the console and docs/benchmarks.md never disagree.

/** In round order. node-floor is the naive Node `net` + `pipe` splicer (bench/node-floor.ts): shown for reference, never judged. */
export const TARGET_NAMES = ['direct', 'norikae', 'haproxy', 'node-floor'] as const;
export type TargetName = (typeof TARGET_NAMES)[number];

export interface Machine {
  cpu: string;
  cores: number;
  node: string;
  kernel: string;
  haproxy: string | undefined;
  wrk: string | undefined;
  /** The hard limit on open files: it caps the idle-connection count (2 descriptors each). */
  fdHardLimit: number;
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
  version: 1;
  date: string;
  durationSeconds: number;
  machine: Machine;
  /** 1-minute load average at the start and the end: other work on the machine shows here. */
  loadAverage: [number, number];
  settings: { rounds: number; secondsPerRun: number; haproxyThreads: number };
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
  };
  /** Through norikae (judged), and the same server started and polled by the bench itself (the floor). */
  coldStart: { trials: ColdStartTiming[]; direct: ColdStartTiming[] };
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
  return median(own.map((sample, i) => sample[key] - direct[i]![key]));
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
  /** Undefined when it could not be measured (haproxy missing) or does not apply to the target. */
  measured: number | undefined;
  shown: string;
  pass: boolean | undefined;
}

/** A proxy the targets can be taken of: norikae is judged, the other two are its references. */
export type Subject = 'norikae' | 'haproxy' | 'node-floor';

/**
 * The targets, each as this run measured it of `subject`. The list is the same for every
 * subject, in the same order, so the report can set haproxy's and node-floor's figures beside
 * norikae's; what does not apply to a subject (haproxy over itself, sniffing and cold starts,
 * which only norikae does) is shown as "—".
 */
export function checks(results: BenchResults, subject: Subject = 'norikae'): Check[] {
  const list: Check[] = [];
  const notApplicable = (what: string, goal: string): void => {
    list.push({ what, goal, measured: undefined, shown: '—', pass: undefined });
  };
  const atLeast = (what: string, goal: number, measured: number | undefined, note = ''): void => {
    list.push({ what, goal: `≥ ${goal.toFixed(1)}×`, measured, shown: measured === undefined ? `n/a${note}` : `${measured.toFixed(2)}×`, pass: measured === undefined ? undefined : measured >= goal });
  };
  const noHaproxy = results.targets.includes('haproxy') ? '' : ' (haproxy not installed)';
  const overHaproxy = (what: string, load: ThroughputLoad): void => {
    if (subject === 'haproxy') notApplicable(what, '≥ 1.0×');
    else atLeast(what, 1.0, ratio(load, subject, 'haproxy'), noHaproxy);
  };
  for (const kind of ['keepalive-1', 'keepalive-50']) {
    const load = primaryLoad(results, kind);
    if (load === undefined) continue;
    atLeast(`${load.title}: ${subject} / direct (${load.tool})`, 0.8, ratio(load, subject, 'direct'), subject === 'haproxy' ? noHaproxy : '');
    overHaproxy(`${load.title}: ${subject} / haproxy (${load.tool})`, load);
  }
  const fresh = primaryLoad(results, 'new-connection');
  if (fresh !== undefined) overHaproxy(`${fresh.title}: ${subject} / haproxy (${fresh.tool})`, fresh);
  const atMost = (what: string, goal: number, unit: string, measured: number | undefined, digits: number): void => {
    list.push({ what, goal: `≤ ${goal} ${unit}`, measured, shown: measured === undefined ? 'n/a' : `${measured.toFixed(digits)} ${unit}`, pass: measured === undefined ? undefined : measured <= goal });
  };
  atMost(`WebSocket 32 B echo: added round trip p50 (${subject} − direct)`, 30, 'µs', addedLatencyUs(results, subject, 'p50Us'), 1);
  const idle = subject === 'norikae' ? results.idle.norikae : subject === 'haproxy' ? results.idle.haproxy : results.idle.nodeFloor;
  atMost(`memory per idle spliced connection at ${results.idle.norikae.connections}`, 4, 'KiB', idle === undefined ? undefined : bytesPerConnection(idle) / 1024, 2);
  const sniffing = 'head sniffing per ~800-byte browser head';
  const coldStart = 'cold start: first response after the server accepts (median)';
  if (subject === 'norikae') {
    atMost(sniffing, 2, 'µs', median(results.sniff.roundsUs), 2);
    atMost(coldStart, 30, 'ms', median(results.coldStart.trials.map((t) => t.overheadMs)), 1);
  } else {
    notApplicable(sniffing, '≤ 2 µs');
    notApplicable(coldStart, '≤ 30 ms');
  }
  return list;
}
