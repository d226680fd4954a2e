// Demo service "echo": a WebSocket echo server with no dependencies (RFC 6455, just enough to
// echo frames back). Listens on $PORT (or the first argument; 0 picks a free port and prints it).
import { createHash } from 'node:crypto';
import { createServer } from 'node:http';

const port = Number(process.argv[2] ?? process.env.PORT ?? 4002);
const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

const server = createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
  res.end('echo: connect with a WebSocket and every message comes back.\n');
});

server.on('upgrade', (req, socket) => {
  const key = req.headers['sec-websocket-key'];
  if (req.headers.upgrade?.toLowerCase() !== 'websocket' || !key) {
    socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    return;
  }
  const accept = createHash('sha1').update(key + GUID).digest('base64');
  socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
  let pending = Buffer.alloc(0);
  socket.on('data', (chunk) => {
    pending = Buffer.concat([pending, chunk]);
    for (let frame; (frame = readFrame(pending)); ) {
      pending = pending.subarray(frame.length);
      if (frame.opcode === 0x8) { socket.end(writeFrame(0x8, true, frame.payload)); return; }
      if (frame.opcode === 0x9) socket.write(writeFrame(0xa, true, frame.payload));
      else if (frame.opcode !== 0xa) socket.write(writeFrame(frame.opcode, frame.fin, frame.payload));
    }
  });
  // node:http's sockets are half-open, and an upgraded one is ours alone: without this a client's
  // FIN left ours unsent and the socket in CLOSE-WAIT. A client that ended has said all it will.
  socket.on('end', () => socket.end());
  socket.on('error', () => socket.destroy());
});

/** One complete client frame at the start of `buf` (unmasked), or undefined if more bytes are needed. */
function readFrame(buf) {
  if (buf.length < 2) return undefined;
  let length = buf[1] & 0x7f;
  let offset = 2;
  if (length === 126) { if (buf.length < 4) return undefined; length = buf.readUInt16BE(2); offset = 4; }
  else if (length === 127) { if (buf.length < 10) return undefined; length = Number(buf.readBigUInt64BE(2)); offset = 10; }
  const masked = (buf[1] & 0x80) !== 0;
  const start = offset + (masked ? 4 : 0);
  if (buf.length < start + length) return undefined;
  const payload = Buffer.from(buf.subarray(start, start + length));
  if (masked) for (let i = 0; i < payload.length; i++) payload[i] ^= buf[offset + (i & 3)];
  return { fin: (buf[0] & 0x80) !== 0, opcode: buf[0] & 0x0f, payload, length: start + length };
}

function writeFrame(opcode, fin, payload) {
  const size = payload.length;
  const head = size < 126 ? Buffer.alloc(2) : size < 65536 ? Buffer.alloc(4) : Buffer.alloc(10);
  head[0] = (fin ? 0x80 : 0) | opcode;
  if (size < 126) head[1] = size;
  else if (size < 65536) { head[1] = 126; head.writeUInt16BE(size, 2); }
  else { head[1] = 127; head.writeBigUInt64BE(BigInt(size), 2); }
  return Buffer.concat([head, payload]);
}

server.listen(port, '127.0.0.1', () => console.log(`echo listening on 127.0.0.1:${server.address().port}`));
