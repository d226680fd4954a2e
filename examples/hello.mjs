// Demo service "hello": a tiny HTTP page. Listens on $PORT (or the first argument; 0 picks a free
// port and prints it). The page opens a WebSocket to echo.localhost on the same norikae port, to
// show that upgrades pass through the splice.
import { createServer } from 'node:http';

const port = Number(process.argv[2] ?? process.env.PORT ?? 4001);
const started = new Date();

const page = (req) => `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>hello · norikae-splice demo</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem}
code{background:#f4f4f4;padding:0 .2em}#log{background:#f4f4f4;padding:1rem;min-height:4rem;white-space:pre-wrap}</style></head>
<body><h1>Hello from the <code>hello</code> service</h1>
<p>You reached <code>${escape(req.headers.host ?? '')}</code>; norikae-splice forwarded the bytes to this
server on port ${req.socket.localPort} (pid ${process.pid}, up since ${started.toISOString()}).</p>
<h2>WebSocket through the splice</h2>
<p><input id="text" value="ping"> <button id="send">send to echo.localhost</button></p>
<div id="log"></div>
<script>
const log = (line) => { document.getElementById('log').textContent += line + '\\n'; };
const ws = new WebSocket('ws://echo.localhost' + (location.port ? ':' + location.port : '') + '/');
ws.onopen = () => log('connected to ' + ws.url);
ws.onmessage = (event) => log('echo: ' + event.data);
ws.onclose = () => log('closed');
document.getElementById('send').onclick = () => ws.send(document.getElementById('text').value);
</script></body></html>
`;

const server = createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
  res.end(page(req));
});
server.listen(port, '127.0.0.1', () => console.log(`hello listening on 127.0.0.1:${server.address().port}`));

function escape(text) {
  return text.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
}
