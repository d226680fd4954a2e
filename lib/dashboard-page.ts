// The dashboard page served at `/` on the dashboard host: one self-contained HTML document (inline
// CSS and JavaScript, no external URL, no build step) that reads the JSON API and the event stream
// of the same origin. Everything it shows from data is written with textContent, never innerHTML.

export interface DashboardPageOptions {
  /** The page title and heading; `norikae-splice` by default. */
  title?: string;
}

/** The complete dashboard document. */
export function renderDashboardPage(options: DashboardPageOptions = {}): string {
  const title = escapeHtml(options.title ?? 'norikae-splice');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>${title}</title>
<link rel="icon" href="data:,">
<style>${STYLE}</style>
</head>
<body>
<header>
<h1>${title}</h1>
<span id="summary"></span>
<span id="live" role="status" aria-live="polite"></span>
</header>
<div id="notice" role="alert" title="Click to dismiss"></div>
<main>
<div class="table-wrap">
<table id="services">
<thead><tr>
<th scope="col">Service</th><th scope="col">Hosts</th><th scope="col">Port</th><th scope="col">State</th>
<th scope="col" class="num">PID</th><th scope="col" class="num">Uptime</th><th scope="col" class="num" title="Open connections">Conns</th>
<th scope="col" class="num" title="Bytes from clients to the service">In</th><th scope="col" class="num" title="Bytes from the service to clients">Out</th>
<th scope="col">Last exit</th><th scope="col"><span class="sr-only">Actions</span></th>
</tr></thead>
<tbody></tbody>
</table>
</div>
<p id="empty">Loading services…</p>
<section id="log" hidden aria-labelledby="log-title">
<div class="log-head">
<h2 id="log-title">Log · <span id="log-name"></span></h2>
<span id="log-status"></span>
<button type="button" id="log-close" title="Close (Esc)">Close</button>
</div>
<pre class="lines" tabindex="0"></pre>
</section>
</main>
<script>${SCRIPT}</script>
</body>
</html>
`;
}

const STYLE = `
:root{--bg:#fff;--fg:#222;--muted:#6b6b6b;--line:#e4e4e4;--soft:#f5f5f5;--link:#0645ad;--hover:#eef2f8;--sel:#f0f5ff;
--stopped-bg:#eceff1;--stopped:#455a64;--starting-bg:#fff1cc;--starting:#7a5200;--running-bg:#ddf4e3;--running:#1b6e34;
--failed-bg:#fde4e2;--failed:#b3261e;--crashed-bg:#fde6d4;--crashed:#a03c00;--hint:#7a5200;--bad:#b3261e}
@media (prefers-color-scheme:dark){:root{--bg:#17181a;--fg:#e4e4e4;--muted:#9a9a9a;--line:#2e3034;--soft:#202226;--link:#8ab4f8;--hover:#24272c;--sel:#1d2633;
--stopped-bg:#2a2d31;--stopped:#b0bec5;--starting-bg:#3a3014;--starting:#ffd479;--running-bg:#173321;--running:#8fdc9c;
--failed-bg:#3d1c1a;--failed:#ff9a92;--crashed-bg:#3d2414;--crashed:#ffb38a;--hint:#ffd479;--bad:#ff9a92}}
*{box-sizing:border-box}
[hidden]{display:none!important}
body{margin:0;padding:1.25rem 1.25rem 3rem;font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;background:var(--bg);color:var(--fg)}
a{color:var(--link);text-decoration:none}a:hover{text-decoration:underline}
code,pre,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px}
header{display:flex;align-items:baseline;gap:1rem;margin-bottom:1rem}
h1{font-size:1.25rem;margin:0}
#summary{color:var(--muted)}
#live{margin-left:auto;color:var(--muted);font-size:13px}
#live:empty{display:none}
#live::before{content:"";display:inline-block;width:.55rem;height:.55rem;border-radius:50%;margin-right:.4rem;background:var(--starting)}
#live[data-state=live]::before{background:var(--running)}
#notice{margin:0 0 1rem;padding:.5rem .75rem;border-radius:6px;background:var(--failed-bg);color:var(--failed);cursor:pointer}
#notice::after{content:"×";float:right;margin-left:1rem}
#notice:empty{display:none}
.table-wrap{overflow-x:auto;position:relative}
table{border-collapse:collapse;width:100%}
th{font-size:12px;font-weight:600;color:var(--muted);text-align:left;padding:.4rem .5rem;border-bottom:1px solid var(--line);white-space:nowrap}
td{padding:.55rem .5rem;border-bottom:1px solid var(--line);vertical-align:top}
tbody tr:hover{background:var(--hover)}
tbody tr.selected{background:var(--sel)}
.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.service{max-width:14rem}
button.name{all:unset;cursor:pointer;font-weight:600;color:var(--link)}
button.name:hover{text-decoration:underline}
button.name:focus-visible{outline:2px solid var(--link);outline-offset:2px}
.command{display:block;max-width:14rem;overflow:hidden;text-overflow:ellipsis;white-space:nowrap;color:var(--muted);margin-top:.15rem}
.hosts a,.hosts span,.port span{display:block;white-space:nowrap}
.hosts span,.port .listen{color:var(--muted)}
.port .listen{font-size:12px}
.state{display:inline-block;padding:.05rem .5rem;border-radius:999px;font-size:12px;font-weight:600;background:var(--stopped-bg);color:var(--stopped)}
.state-starting{background:var(--starting-bg);color:var(--starting)}
.state-running{background:var(--running-bg);color:var(--running)}
.state-failed{background:var(--failed-bg);color:var(--failed)}
.state-crashed{background:var(--crashed-bg);color:var(--crashed)}
.state-cell{min-width:7rem}
.notes span{display:block;font-size:12px;line-height:1.3;color:var(--muted);margin-top:.25rem}
.notes .hint{color:var(--hint)}
.exit{white-space:nowrap}.exit.bad{color:var(--bad)}
.muted{color:var(--muted)}
.actions{white-space:nowrap;text-align:right}
button{font:inherit;font-size:12.5px;color:inherit;background:transparent;border:1px solid var(--line);border-radius:6px;padding:.15rem .5rem;cursor:pointer}
button:hover:not(:disabled){background:var(--soft);border-color:var(--muted)}
button:disabled{opacity:.4;cursor:default}
.actions button+button{margin-left:.25rem}
#empty{color:var(--muted);padding:.5rem .6rem}
#log{margin-top:1.5rem}
.log-head{display:flex;align-items:baseline;gap:.75rem;margin-bottom:.5rem}
h2{font-size:1rem;margin:0}
#log-status{color:var(--muted);font-size:12.5px}
#log-close{margin-left:auto}
#log pre{margin:0;padding:.75rem 1rem;background:var(--soft);border:1px solid var(--line);border-radius:6px;min-height:6rem;max-height:55vh;overflow:auto;white-space:pre-wrap;overflow-wrap:anywhere}
#log pre:empty::before{content:"No output yet.";color:var(--muted)}
.sr-only{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}
`;

// Plain ES2020 for the browser. String.raw keeps its escapes as written; it must contain no
// backtick and no dollar-brace, and no closing script tag.
const SCRIPT = String.raw`
'use strict';
const MAX_LOG_LINES = 1000;
const LOG_FETCH_LINES = 200;
const ACTIONS = ['start', 'stop', 'restart'];

const rows = new Map();   // service name -> { tr, info, busy, cells… }
let selected = null;      // the service whose log is open
let logLoad = null;       // { name, pending } while the log's recent lines are being fetched
let noticeTimer = 0;

document.addEventListener('DOMContentLoaded', main);

/** Wires the page up: initial list, event stream, clicks, and the uptime clock. */
function main() {
  document.querySelector('#services tbody').addEventListener('click', onTableClick);
  byId('log-close').addEventListener('click', closeLog);
  byId('notice').addEventListener('click', () => showNotice(''));
  document.addEventListener('keydown', (event) => { if (event.key === 'Escape' && selected !== null) closeLog(); });
  loadServices();
  connectEvents(false);
  setInterval(tickUptimes, 1000);
}

/** Follows /api/events; EventSource reconnects by itself, and we resync the list each time it does. */
function connectEvents(wasConnected) {
  const source = new EventSource('/api/events');
  let reconnecting = wasConnected;
  source.addEventListener('open', () => {
    setLive(true);
    if (reconnecting) {
      loadServices();
      if (selected !== null) openLog(selected);
    }
    reconnecting = true;
  });
  source.addEventListener('error', () => {
    setLive(false);
    // A non-stream answer closes an EventSource for good; keep trying, gently.
    if (source.readyState === EventSource.CLOSED) setTimeout(() => connectEvents(true), 3000);
  });
  source.addEventListener('service', (event) => {
    const info = parseJson(event.data);
    if (info && typeof info.name === 'string') upsertService(info);
  });
  // A reload added or removed services: the full list says which.
  source.addEventListener('config', () => loadServices());
  source.addEventListener('log', (event) => {
    const message = parseJson(event.data);
    if (message && typeof message.name === 'string') onLogLine(message.name, String(message.line));
  });
}

/** Shows whether the event stream is connected. */
function setLive(live) {
  const node = byId('live');
  node.dataset.state = live ? 'live' : 'reconnecting';
  node.textContent = live ? 'live' : 'reconnecting';
}

/** Replaces the table's contents with the full list from the API. */
async function loadServices() {
  let body;
  try {
    body = await api('GET', '/api/services');
  } catch (error) {
    showNotice('Could not load the services: ' + error.message);
    return;
  }
  const names = new Set();
  const tbody = document.querySelector('#services tbody');
  for (const info of body.services) {
    names.add(info.name);
    upsertService(info, true);
    // Config order, as the API lists them and the CLI status prints them: append moves a row to the end.
    tbody.append(rows.get(info.name).tr);
  }
  for (const name of Array.from(rows.keys())) if (!names.has(name)) removeService(name);
  byId('empty').textContent = 'No services are configured. Add a [service.NAME] table to the config file.';
  renderSummary();
}

/**
 * Adds a row for a service, or updates the one it has. An older state than the row shows is
 * dropped, unless resync is set (the full list, after a reconnect: a restarted norikae counts anew).
 */
function upsertService(info, resync) {
  let row = rows.get(info.name);
  // A POST's answer can arrive after an event that is newer than it (a service that crashed at once).
  if (!resync && row && row.info && info.instance === row.info.instance && info.sequence < row.info.sequence) return;
  if (!row) {
    row = createRow(info.name);
    rows.set(info.name, row);
    document.querySelector('#services tbody').append(row.tr);
  }
  row.info = info;
  updateRow(row);
  renderSummary();
}

/** Drops the row of a service that is no longer configured. */
function removeService(name) {
  const row = rows.get(name);
  if (!row) return;
  row.tr.remove();
  rows.delete(name);
  if (selected === name) closeLog();
  renderSummary();
}

/** Builds the (still empty) row of one service; updateRow fills it. */
function createRow(name) {
  const row = {
    info: null,
    busy: null,             // the action whose request is in flight
    linksKey: '',
    tr: el('tr', { 'data-service': name }),
    open: el('button', { type: 'button', className: 'name', textContent: name, title: 'Show the log of ' + name,
      'data-open-log': '', 'aria-controls': 'log', 'aria-expanded': 'false' }),
    command: el('code', { className: 'command' }),
    hosts: el('td', { className: 'hosts' }),
    port: el('td', { className: 'port' }),
    badge: el('span', { className: 'state' }),
    notes: el('div', { className: 'notes' }),
    pid: el('td', { className: 'num' }),
    uptime: el('td', { className: 'num' }),
    connections: el('td', { className: 'num' }),
    bytesIn: el('td', { className: 'num' }),
    bytesOut: el('td', { className: 'num' }),
    exit: el('td', { className: 'exit' }),
    buttons: {},
  };
  for (const action of ACTIONS) {
    row.buttons[action] = el('button', { type: 'button', textContent: capitalize(action), 'data-action': action });
  }
  row.tr.append(
    el('td', { className: 'service' }, [row.open, row.command]),
    row.hosts, row.port,
    el('td', { className: 'state-cell' }, [row.badge, row.notes]),
    row.pid, row.uptime, row.connections, row.bytesIn, row.bytesOut, row.exit,
    el('td', { className: 'actions' }, ACTIONS.map((action) => row.buttons[action])),
  );
  return row;
}

/** Writes a service's current info into its row. */
function updateRow(row) {
  const info = row.info;
  row.command.textContent = info.command || 'no command';
  row.command.title = info.command || 'Not launched by norikae-splice: start its dev server yourself.';
  const linksKey = JSON.stringify([info.urls, info.hosts, info.port, info.listen]);
  if (linksKey !== row.linksKey) {
    // Rebuilt only when they change, so a hovered or focused link survives byte counters ticking.
    row.linksKey = linksKey;
    row.hosts.replaceChildren(...hostNodes(info));
    row.port.replaceChildren(...portNodes(info));
  }
  row.badge.textContent = info.state;
  row.badge.className = 'state state-' + info.state;
  row.notes.replaceChildren(...noteNodes(info));
  row.pid.textContent = info.pid === null ? '—' : String(info.pid);
  row.connections.textContent = String(info.connections);
  row.bytesIn.textContent = formatBytes(info.bytesIn);
  row.bytesIn.title = info.bytesIn.toLocaleString() + ' bytes';
  row.bytesOut.textContent = formatBytes(info.bytesOut);
  row.bytesOut.title = info.bytesOut.toLocaleString() + ' bytes';
  row.exit.textContent = exitText(info.lastExit);
  row.exit.title = info.lastExit ? 'at ' + new Date(info.lastExit.at).toLocaleString() : '';
  row.exit.classList.toggle('bad', isBadExit(info.lastExit));
  row.uptime.title = info.startedAt ? 'since ' + new Date(info.startedAt).toLocaleString() : '';
  row.uptime.textContent = uptimeText(info, Date.now());
  updateButtons(row);
}

/** Enables the buttons that make sense in the service's state. */
function updateButtons(row) {
  const enabled = buttonStates(row.info, row.busy);
  for (const action of ACTIONS) row.buttons[action].disabled = !enabled[action];
}

/** Which actions make sense: start what is not up, stop or restart what is; never one twice at once. */
function buttonStates(info, busy) {
  const up = info.state === 'running' || info.state === 'starting';
  return { start: busy !== 'start' && !up, stop: busy !== 'stop' && up, restart: busy !== 'restart' && up };
}

/** A link per URL, then the hosts no URL covers (wildcards), as plain text. */
function hostNodes(info) {
  const nodes = [];
  const linked = new Set();
  for (const url of info.urls) {
    const href = safeHref(url);
    if (href === null) continue;
    linked.add(new URL(href).hostname);
    nodes.push(el('a', { href, target: '_blank', rel: 'noopener', textContent: displayUrl(href) }));
  }
  for (const host of info.hosts) if (!linked.has(host)) nodes.push(el('span', { textContent: host }));
  return nodes.length ? nodes : [el('span', { textContent: '—' })];
}

/** The upstream port, then the raw TCP listeners. */
function portNodes(info) {
  const nodes = [el('span', { textContent: info.port === null ? '—' : String(info.port), title: 'upstream port' })];
  for (const address of info.listen) nodes.push(el('span', { className: 'listen mono', textContent: 'tcp ' + address, title: 'raw TCP listener' }));
  return nodes;
}

/** The small lines under the state badge. */
function noteNodes(info) {
  const nodes = [];
  if (info.pendingRestart) {
    nodes.push(el('span', { className: 'hint', textContent: 'restart to apply config',
      title: 'The config changed its command, env or cwd; the next launch uses the new one.' }));
  }
  if (info.stoppedByUser && (info.state === 'stopped' || info.state === 'crashed' || info.state === 'failed')) {
    nodes.push(el('span', { textContent: 'stopped by user', title: 'Requests do not launch it again until you press Start.' }));
  }
  if (info.portHeldBy && info.state !== 'running') {
    nodes.push(el('span', { className: 'hint', textContent: 'port held by pid ' + info.portHeldBy.pid,
      title: info.portHeldBy.command + ' holds the port; norikae-splice did not start it.' }));
  }
  return nodes;
}

/** Advances every running service's uptime. */
function tickUptimes() {
  const now = Date.now();
  for (const row of rows.values()) if (row.info) row.uptime.textContent = uptimeText(row.info, now);
}

/** "3 services · 1 running", and the empty-table message. */
function renderSummary() {
  let running = 0;
  for (const row of rows.values()) if (row.info && row.info.state === 'running') running++;
  byId('summary').textContent = rows.size === 0 ? '' : plural(rows.size, 'service') + ' · ' + running + ' running';
  byId('empty').hidden = rows.size > 0;
}

/** Row clicks: an action button, or a service name that opens its log. */
function onTableClick(event) {
  const target = event.target instanceof Element ? event.target : null;
  const tr = target && target.closest('tr[data-service]');
  if (!tr) return;
  const button = target.closest('button[data-action]');
  if (button) runAction(tr.dataset.service, button.dataset.action);
  else if (target.closest('[data-open-log]')) openLog(tr.dataset.service);
}

/** POSTs start/stop/restart; the answer (and the event stream) update the row. */
async function runAction(name, action) {
  const row = rows.get(name);
  if (!row || row.busy === action) return;
  row.busy = action;
  updateButtons(row);
  try {
    const body = await api('POST', servicePath(name) + '/' + action);
    if (body && body.service) upsertService(body.service);
  } catch (error) {
    showNotice(capitalize(action) + ' ' + name + ': ' + error.message);
  } finally {
    if (row.busy === action) row.busy = null;
    if (rows.get(name) === row) updateButtons(row);
  }
}

/** Opens the log panel on a service: its recent lines, then live ones. */
async function openLog(name) {
  selected = name;
  markSelected();
  const panel = byId('log');
  panel.hidden = false;
  byId('log-name').textContent = name;
  byId('log-status').textContent = 'loading…';
  logLines().replaceChildren();
  const load = { name, pending: [] };
  logLoad = load;
  let lines = [];
  try {
    const body = await api('GET', servicePath(name) + '/logs?lines=' + LOG_FETCH_LINES);
    lines = body.lines;
  } catch (error) {
    if (logLoad === load) showNotice('Could not load the log of ' + name + ': ' + error.message);
  }
  if (logLoad !== load) return;  // closed, or another service opened meanwhile
  logLoad = null;
  byId('log-status').textContent = '';
  // Lines that arrived during the fetch may already be in its answer; append only the rest.
  appendLines(lines.concat(unseenLines(lines, load.pending)), true);
  panel.scrollIntoView({ block: 'nearest' });
}

/** Closes the log panel. */
function closeLog() {
  selected = null;
  logLoad = null;
  byId('log').hidden = true;
  logLines().replaceChildren();
  markSelected();
}

/** A live output line: shown if its service's log is open. */
function onLogLine(name, line) {
  if (name !== selected) return;
  if (logLoad && logLoad.name === name) logLoad.pending.push(line);
  else appendLines([line], false);
}

/** Appends lines, drops the oldest past the cap, and follows the end unless the user scrolled up. */
function appendLines(lines, toEnd) {
  if (lines.length === 0) return;
  const pre = logLines();
  const follow = toEnd || pre.scrollHeight - pre.scrollTop - pre.clientHeight < 24;
  pre.append(...lines.map((line) => cleanLine(line) + '\n'));
  for (let extra = pre.childNodes.length - MAX_LOG_LINES; extra > 0; extra--) pre.firstChild.remove();
  if (follow) pre.scrollTop = pre.scrollHeight;
}

/** The buffered lines not already at the end of the fetched ones. */
function unseenLines(fetched, buffered) {
  for (let overlap = Math.min(fetched.length, buffered.length); overlap > 0; overlap--) {
    let same = true;
    for (let i = 0; i < overlap && same; i++) same = fetched[fetched.length - overlap + i] === buffered[i];
    if (same) return buffered.slice(overlap);
  }
  return buffered.slice();
}

/** Highlights the selected row and tells assistive tech which log is open. */
function markSelected() {
  for (const [name, row] of rows) {
    row.tr.classList.toggle('selected', name === selected);
    row.open.setAttribute('aria-expanded', String(name === selected));
  }
}

/** Shows a message in the notice area for a while; an empty text clears it. */
function showNotice(text) {
  clearTimeout(noticeTimer);
  byId('notice').textContent = text;
  if (text) noticeTimer = setTimeout(() => { byId('notice').textContent = ''; }, 10000);
}

/** A JSON request to the API; a non-2xx answer throws with its { error } message. */
async function api(method, path) {
  const response = await fetch(path, { method, headers: { accept: 'application/json' }, cache: 'no-store' });
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const reason = body && typeof body.error === 'string' ? body.error : response.statusText;
    throw new Error(reason + ' (' + response.status + ')');
  }
  return body;
}

/** The API path of one service. */
function servicePath(name) {
  return '/api/services/' + encodeURIComponent(name);
}

/** The URL itself if it is http(s), else null: data never becomes a javascript: link. */
function safeHref(url) {
  try {
    const parsed = new URL(url);
    return parsed.protocol === 'http:' || parsed.protocol === 'https:' ? parsed.href : null;
  } catch {
    return null;
  }
}

/** A link's text: the URL without the scheme and a bare trailing slash. */
function displayUrl(href) {
  return href.replace(/^https?:\/\//, '').replace(/\/$/, '');
}

/** Terminal colours and cursor moves out, and only what a carriage return left visible. */
function cleanLine(line) {
  const plain = line.replace(/\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b\[[0-?]*[ -\/]*[@-~]|\x1b[@-_]/g, '').replace(/\r+$/, '');
  return plain.slice(plain.lastIndexOf('\r') + 1);
}

/** 1536 → "1.5 KiB". */
function formatBytes(bytes) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  if (unit === 0) return value + ' B';
  return (value < 10 ? value.toFixed(1) : String(Math.round(value))) + ' ' + units[unit];
}

/** 3725000 → "1h 02m". */
function formatDuration(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return s + 's';
  if (s < 3600) return Math.floor(s / 60) + 'm ' + pad2(s % 60) + 's';
  if (s < 86400) return Math.floor(s / 3600) + 'h ' + pad2(Math.floor(s / 60) % 60) + 'm';
  return Math.floor(s / 86400) + 'd ' + Math.floor(s / 3600) % 24 + 'h';
}

/** How long the current process has been up, or a dash when there is none. */
function uptimeText(info, now) {
  const up = info.state === 'running' || info.state === 'starting';
  return up && info.startedAt ? formatDuration(now - info.startedAt) : '—';
}

/** "exit 1", "SIGTERM", or a dash when it never exited. */
function exitText(lastExit) {
  if (!lastExit) return '—';
  if (lastExit.signal) return lastExit.signal;
  return lastExit.code === null ? 'exited' : 'exit ' + lastExit.code;
}

/** A non-zero exit code is worth a colour; a signal is usually a stop. */
function isBadExit(lastExit) {
  return Boolean(lastExit && !lastExit.signal && lastExit.code !== null && lastExit.code !== 0);
}

/** A new element with properties (data-* and aria-* as attributes) and children. */
function el(tag, props, children) {
  const node = document.createElement(tag);
  for (const key of Object.keys(props)) {
    if (key.startsWith('data-') || key.startsWith('aria-')) node.setAttribute(key, props[key]);
    else node[key] = props[key];
  }
  if (children) node.append(...children);
  return node;
}

function byId(id) {
  return document.getElementById(id);
}

function logLines() {
  return document.querySelector('#log pre');
}

function parseJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

function capitalize(word) {
  return word.charAt(0).toUpperCase() + word.slice(1);
}

function pad2(n) {
  return n < 10 ? '0' + n : String(n);
}

function plural(n, word) {
  return n + ' ' + word + (n === 1 ? '' : 's');
}
`;

/** Text made safe for HTML content and attribute values. */
function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
}
