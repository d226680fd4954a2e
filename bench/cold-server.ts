// The "dev server" of the cold-start measurement: launched by norikae through a service's
// `command`, it writes the moment it starts accepting to a file (wall clock with sub-millisecond
// precision, comparable across processes), then answers every request.
// Usage: node cold-server.js PORT STAMP_FILE

import { writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { performance } from 'node:perf_hooks';

const [port, stampFile] = process.argv.slice(2);
const server = createServer((_req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 5 });
  res.end('cold\n');
});
server.listen(Number(port), '127.0.0.1', () => {
  writeFileSync(stampFile!, String(performance.timeOrigin + performance.now()));
});
// Bounded even if nobody stops it.
setTimeout(() => process.exit(0), 60_000).unref();
