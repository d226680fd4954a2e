// Preloaded into the norikae process (`node --import`) by targets.ts: answers the bench's
// "memory?" over IPC with process.memoryUsage() after a full GC, so the heap can be reported
// next to the RSS read from /proc. It touches nothing else of the process.

process.on('message', (message) => {
  if (message !== 'memory') return;
  (globalThis as { gc?: () => void }).gc?.();
  process.send!({ type: 'memory', ...process.memoryUsage() });
});
// The bench is gone (even SIGKILLed): shut down the normal way, which stops launched services.
process.on('disconnect', () => process.kill(process.pid, 'SIGTERM'));
