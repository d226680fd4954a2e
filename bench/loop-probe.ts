// Preloaded into norikae (`node --import`) by bench/cold-concurrent.ts: measures how long the
// main thread's event loop is blocked while something runs. "loop-start" begins a window: a 1 ms
// interval records the longest gap between its ticks, and a monitorEventLoopDelay histogram the
// delays; "loop-stop" ends it and answers with both. It touches nothing else of the process.

import { spawn } from 'node:child_process';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';

let histogram: ReturnType<typeof monitorEventLoopDelay> | undefined;
let ticker: NodeJS.Timeout | undefined;
let last = 0;
let maxGapMs = 0;
let gapsOver5 = 0;
let started = 0;
/** The longest gaps: [ms since the window began, length], for finding what blocked. */
let gaps: [number, number][] = [];

process.on('message', (message) => {
  if (message === 'loop-start') {
    histogram = monitorEventLoopDelay({ resolution: 1 });
    histogram.enable();
    maxGapMs = 0;
    gapsOver5 = 0;
    gaps = [];
    last = started = performance.now();
    ticker = setInterval(() => {
      const now = performance.now();
      const gap = now - last;
      if (gap > maxGapMs) maxGapMs = gap;
      if (gap > 5) {
        gapsOver5++;
        if (gaps.length < 100) gaps.push([Math.round(last - started), Math.round(gap * 10) / 10]);
      }
      last = now;
    }, 1);
    ticker.unref();
    if (process.env.LOOP_STRACE) {
      const tracer = spawn('strace', ['-tt', '-T', '-p', String(process.pid), '-o', process.env.LOOP_STRACE], { stdio: 'ignore' });
      setTimeout(() => process.send!({ type: 'loop-started' }), 500);
      process.once('beforeExit', () => tracer.kill());
      return;
    }
    process.send!({ type: 'loop-started' });
  } else if (message === 'loop-stop' && histogram !== undefined) {
    histogram.disable();
    clearInterval(ticker);
    process.send!({
      type: 'loop', gaps, maxGapMs, gapsOver5, delayMaxMs: histogram.max / 1e6, delayP99Ms: histogram.percentile(99) / 1e6,
    });
    histogram = undefined;
  }
});
