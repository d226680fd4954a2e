// The dashboard page's script (index.html), served as /dashboard.js. A classic script, not a
// module: its functions and `rows` are the page's globals, which the browser test calls. It reads
// the JSON API and the event stream of the same origin, and writes everything it shows from data
// with textContent, never as markup.

/** A ServiceInfo as the API sends it, with the dashboard's `urls` (links on the port it was reached on). */
type ServiceView = import('../service-info.js').ServiceInfo & { urls: string[] };

type Action = 'start' | 'stop' | 'restart';

/** A service's table row and the nodes updateRow writes into. */
interface Row {
  info: ServiceView | null;
  /** The action whose request is in flight. */
  busy: Action | null;
  linksKey: string;
  tr: HTMLTableRowElement;
  open: HTMLButtonElement;
  command: HTMLElement;
  hosts: HTMLTableCellElement;
  port: HTMLTableCellElement;
  badge: HTMLSpanElement;
  notes: HTMLDivElement;
  pid: HTMLTableCellElement;
  uptime: HTMLTableCellElement;
  connections: HTMLTableCellElement;
  bytesIn: HTMLTableCellElement;
  bytesOut: HTMLTableCellElement;
  exit: HTMLTableCellElement;
  buttons: Record<Action, HTMLButtonElement>;
}

const MAX_LOG_LINES = 1000;
const LOG_FETCH_LINES = 200;
const ACTIONS: readonly Action[] = ['start', 'stop', 'restart'];

const rows = new Map<string, Row>();
/** The service whose log is open. */
let selected: string | null = null;
/** While the log's recent lines are being fetched: the lines that arrived meanwhile. */
let logLoad: { name: string; pending: string[] } | null = null;
let noticeTimer = 0;

document.addEventListener('DOMContentLoaded', main);

/** Wires the page up: initial list, event stream, clicks, and the uptime clock. */
function main(): void {
  tableBody().addEventListener('click', onTableClick);
  byId('log-close').addEventListener('click', closeLog);
  byId('notice').addEventListener('click', () => showNotice(''));
  document.addEventListener('keydown', (event) => { if (event.key === 'Escape' && selected !== null) closeLog(); });
  void openSession().then(() => {
    void loadServices();
    connectEvents(false);
  });
  setInterval(tickUptimes, 1000);
}

/**
 * Opened by `norikae-splice dashboard`, the page's URL carries the API key in its fragment
 * (`#key=…`), which no request and no Referer carries. It is taken off the address bar at once,
 * and traded for an HttpOnly cookie that the API calls and the event stream then send. Without
 * it, the API lets in only connections norikae-splice can tell are its user's (Linux).
 */
async function openSession(): Promise<void> {
  const key = new URLSearchParams(location.hash.slice(1)).get('key');
  if (key === null) return;
  history.replaceState(null, '', location.pathname + location.search);
  try {
    const response = await fetch('/api/session', { method: 'POST', headers: { authorization: 'Bearer ' + key }, cache: 'no-store' });
    if (!response.ok) showNotice('The key in this page\'s address was refused (' + response.status + '); open it again with: norikae-splice dashboard');
  } catch (error) {
    showNotice('Could not open a session: ' + errorMessage(error));
  }
}

/** Follows /api/events; EventSource reconnects by itself, and we resync the list each time it does. */
function connectEvents(wasConnected: boolean): void {
  const source = new EventSource('/api/events');
  let reconnecting = wasConnected;
  source.addEventListener('open', () => {
    setLive(true);
    if (reconnecting) {
      void loadServices();
      if (selected !== null) void openLog(selected);
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
  // A reload added or removed services (the full list says which), or was refused.
  source.addEventListener('config', (event) => {
    const message = parseJson(event.data);
    if (message && 'reloadError' in message) showReloadError(message.reloadError);
    void loadServices();
  });
  source.addEventListener('log', (event) => {
    const message = parseJson(event.data);
    if (message && typeof message.name === 'string') onLogLine(message.name, String(message.line));
  });
  // The page fell behind (a frozen tab) and norikae-splice dropped lines rather than buffer them.
  source.addEventListener('dropped', (event) => {
    const message = parseJson(event.data);
    if (message && typeof message.name === 'string') onLogLine(message.name, '… ' + plural(Number(message.lines), 'line') + ' dropped: this page fell behind …');
  });
}

/** Shows whether the event stream is connected. */
function setLive(live: boolean): void {
  const node = byId('live');
  node.dataset.state = live ? 'live' : 'reconnecting';
  node.textContent = live ? 'live' : 'reconnecting';
}

/** Replaces the table's contents with the full list from the API. */
async function loadServices(): Promise<void> {
  let body;
  try {
    body = await api('GET', '/api/services');
  } catch (error) {
    showNotice('Could not load the services: ' + errorMessage(error));
    return;
  }
  showReloadError(body.reloadError);
  const services = body.services as ServiceView[];
  for (const info of services) upsertService(info, true);
  const names = new Set(services.map((info) => info.name));
  for (const name of Array.from(rows.keys())) if (!names.has(name)) removeService(name);
  orderRows(services.map((info) => info.name));
  byId('empty').textContent = 'No services are configured. Add a [service.NAME] table to the config file.';
  renderSummary();
}

/**
 * Adds a row for a service, or updates the one it has. An older state than the row shows is
 * dropped, unless resync is set (the full list, after a reconnect: a restarted norikae counts anew).
 */
function upsertService(info: ServiceView, resync = false): void {
  let row = rows.get(info.name);
  // A POST's answer can arrive after an event that is newer than it (a service that crashed at once).
  if (!resync && row && row.info && info.instance === row.info.instance && info.sequence < row.info.sequence) return;
  if (!row) {
    row = createRow(info.name);
    rows.set(info.name, row);
    tableBody().append(row.tr);  // the next full list puts it in its place
  }
  row.info = info;
  updateRow(row, info);
  renderSummary();
}

/** Drops the row of a service that is no longer configured. */
function removeService(name: string): void {
  const row = rows.get(name);
  if (!row) return;
  row.tr.remove();
  rows.delete(name);
  if (selected === name) closeLog();
  renderSummary();
}

/** Builds the (still empty) row of one service; updateRow fills it. */
function createRow(name: string): Row {
  const button = (action: Action): HTMLButtonElement => el('button', { type: 'button', textContent: capitalize(action), 'data-action': action });
  const row: Row = {
    info: null,
    busy: null,
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
    buttons: { start: button('start'), stop: button('stop'), restart: button('restart') },
  };
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
function updateRow(row: Row, info: ServiceView): void {
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
function updateButtons(row: Row): void {
  if (!row.info) return;
  const enabled = buttonStates(row.info, row.busy);
  for (const action of ACTIONS) row.buttons[action].disabled = !enabled[action];
}

/** Which actions make sense: start what is not up, stop or restart what is; never one twice at once. */
function buttonStates(info: Pick<ServiceView, 'state'>, busy: Action | null): Record<Action, boolean> {
  const up = info.state === 'running' || info.state === 'starting';
  return { start: busy !== 'start' && !up, stop: busy !== 'stop' && up, restart: busy !== 'restart' && up };
}

/** A link per URL, then the hosts no URL covers (wildcards), as plain text. */
function hostNodes(info: ServiceView): HTMLElement[] {
  const nodes: HTMLElement[] = [];
  const linked = new Set<string>();
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
function portNodes(info: ServiceView): HTMLElement[] {
  const nodes = [el('span', { textContent: info.port === null ? '—' : String(info.port), title: 'upstream port' })];
  for (const address of info.listen) nodes.push(el('span', { className: 'listen mono', textContent: 'tcp ' + address, title: 'raw TCP listener' }));
  return nodes;
}

/** The small lines under the state badge. */
function noteNodes(info: ServiceView): HTMLElement[] {
  const nodes: HTMLElement[] = [];
  if (typeof info.lastError === 'string' && info.lastError !== '') {
    nodes.push(el('span', { className: 'error', textContent: info.lastError, title: 'Why the last launch failed' }));
  }
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
function tickUptimes(): void {
  const now = Date.now();
  for (const row of rows.values()) if (row.info) row.uptime.textContent = uptimeText(row.info, now);
}

/** Orders the rows as the API lists the services (the config's order), moving only those out of place. */
function orderRows(names: string[]): void {
  const body = tableBody();
  names.forEach((name, index) => {
    const tr = rows.get(name)!.tr;
    if (body.children[index] !== tr) body.insertBefore(tr, body.children[index] ?? null);
  });
}

/** The banner shown while an edit of the config file stands refused; null (or no text) hides it. */
function showReloadError(reloadError: unknown): void {
  const text = typeof reloadError === 'string' ? reloadError : '';
  byId('reload-error-text').textContent = text;
  byId('reload-error').hidden = text === '';
}

/** "3 services · 1 running", and the empty-table message. */
function renderSummary(): void {
  let running = 0;
  for (const row of rows.values()) if (row.info && row.info.state === 'running') running++;
  byId('summary').textContent = rows.size === 0 ? '' : plural(rows.size, 'service') + ' · ' + running + ' running';
  byId('empty').hidden = rows.size > 0;
}

/** Row clicks: an action button, or a service name that opens its log. */
function onTableClick(event: Event): void {
  const target = event.target instanceof Element ? event.target : null;
  const tr = target && target.closest<HTMLElement>('tr[data-service]');
  if (!target || !tr) return;
  const name = tr.dataset.service!;
  const button = target.closest<HTMLElement>('button[data-action]');
  if (button) void runAction(name, button.dataset.action as Action);
  else if (target.closest('[data-open-log]')) void openLog(name);
}

/** POSTs start/stop/restart; the answer (and the event stream) update the row. */
async function runAction(name: string, action: Action): Promise<void> {
  const row = rows.get(name);
  if (!row || row.busy === action) return;
  row.busy = action;
  updateButtons(row);
  try {
    const body = await api('POST', servicePath(name) + '/' + action);
    if (body && body.service) upsertService(body.service);
  } catch (error) {
    showNotice(capitalize(action) + ' ' + name + ': ' + errorMessage(error));
  } finally {
    if (row.busy === action) row.busy = null;
    if (rows.get(name) === row) updateButtons(row);
  }
}

/** Opens the log panel on a service: its recent lines, then live ones. */
async function openLog(name: string): Promise<void> {
  selected = name;
  markSelected();
  const panel = byId('log');
  panel.hidden = false;
  byId('log-name').textContent = name;
  byId('log-status').textContent = 'loading…';
  logLines().replaceChildren();
  const load = { name, pending: [] as string[] };
  logLoad = load;
  let lines: string[] = [];
  try {
    const body = await api('GET', servicePath(name) + '/logs?lines=' + LOG_FETCH_LINES);
    lines = body.lines;
  } catch (error) {
    if (logLoad === load) showNotice('Could not load the log of ' + name + ': ' + errorMessage(error));
  }
  if (logLoad !== load) return;  // closed, or another service opened meanwhile
  logLoad = null;
  byId('log-status').textContent = '';
  // Lines that arrived during the fetch may already be in its answer; append only the rest.
  appendLines(lines.concat(unseenLines(lines, load.pending)), true);
  panel.scrollIntoView({ block: 'nearest' });
}

/** Closes the log panel. */
function closeLog(): void {
  selected = null;
  logLoad = null;
  byId('log').hidden = true;
  logLines().replaceChildren();
  markSelected();
}

/** A live output line: shown if its service's log is open. */
function onLogLine(name: string, line: string): void {
  if (name !== selected) return;
  if (logLoad && logLoad.name === name) logLoad.pending.push(line);
  else appendLines([line], false);
}

/** Appends lines, drops the oldest past the cap, and follows the end unless the user scrolled up. */
function appendLines(lines: string[], toEnd: boolean): void {
  if (lines.length === 0) return;
  const pre = logLines();
  const follow = toEnd || pre.scrollHeight - pre.scrollTop - pre.clientHeight < 24;
  pre.append(...lines.map((line) => cleanLine(line) + '\n'));
  for (let extra = pre.childNodes.length - MAX_LOG_LINES; extra > 0; extra--) pre.firstChild!.remove();
  if (follow) pre.scrollTop = pre.scrollHeight;
}

/** The buffered lines not already at the end of the fetched ones. */
function unseenLines(fetched: string[], buffered: string[]): string[] {
  for (let overlap = Math.min(fetched.length, buffered.length); overlap > 0; overlap--) {
    let same = true;
    for (let i = 0; i < overlap && same; i++) same = fetched[fetched.length - overlap + i] === buffered[i];
    if (same) return buffered.slice(overlap);
  }
  return buffered.slice();
}

/** Highlights the selected row and tells assistive tech which log is open. */
function markSelected(): void {
  for (const [name, row] of rows) {
    row.tr.classList.toggle('selected', name === selected);
    row.open.setAttribute('aria-expanded', String(name === selected));
  }
}

/** Shows a message in the notice area for a while; an empty text clears it. */
function showNotice(text: string): void {
  clearTimeout(noticeTimer);
  byId('notice').textContent = text;
  if (text) noticeTimer = setTimeout(() => { byId('notice').textContent = ''; }, 10000);
}

/** A JSON request to the API; a non-2xx answer throws with its { error } message. */
async function api(method: string, path: string): Promise<any> {
  const response = await fetch(path, { method, headers: { accept: 'application/json' }, cache: 'no-store' });
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const reason = body && typeof body.error === 'string' ? body.error : response.statusText;
    throw new Error(reason + ' (' + response.status + ')');
  }
  return body;
}

/** The API path of one service. */
function servicePath(name: string): string {
  return '/api/services/' + encodeURIComponent(name);
}

/** The URL itself if it is http(s), else null: data never becomes a javascript: link. */
function safeHref(url: string): string | null {
  try {
    const parsed = new URL(url);
    return parsed.protocol === 'http:' || parsed.protocol === 'https:' ? parsed.href : null;
  } catch {
    return null;
  }
}

/** A link's text: the URL without the scheme and a bare trailing slash. */
function displayUrl(href: string): string {
  return href.replace(/^https?:\/\//, '').replace(/\/$/, '');
}

/** Terminal colours and cursor moves out, and only what a carriage return left visible. */
function cleanLine(line: string): string {
  const plain = line.replace(/\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b\[[0-?]*[ -\/]*[@-~]|\x1b[@-_]/g, '').replace(/\r+$/, '');
  return plain.slice(plain.lastIndexOf('\r') + 1);
}

/** 1536 → "1.5 KiB". */
function formatBytes(bytes: number): string {
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
function formatDuration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return s + 's';
  if (s < 3600) return Math.floor(s / 60) + 'm ' + pad2(s % 60) + 's';
  if (s < 86400) return Math.floor(s / 3600) + 'h ' + pad2(Math.floor(s / 60) % 60) + 'm';
  return Math.floor(s / 86400) + 'd ' + Math.floor(s / 3600) % 24 + 'h';
}

/** How long the current process has been up, or a dash when there is none. */
function uptimeText(info: Pick<ServiceView, 'state' | 'startedAt'>, now: number): string {
  const up = info.state === 'running' || info.state === 'starting';
  return up && info.startedAt ? formatDuration(now - info.startedAt) : '—';
}

/** "exit 1", "SIGTERM", or a dash when it never exited. */
function exitText(lastExit: ServiceView['lastExit']): string {
  if (!lastExit) return '—';
  if (lastExit.signal) return lastExit.signal;
  return lastExit.code === null ? 'exited' : 'exit ' + lastExit.code;
}

/** A non-zero exit code is worth a colour; a signal is usually a stop. */
function isBadExit(lastExit: ServiceView['lastExit']): boolean {
  return Boolean(lastExit && !lastExit.signal && lastExit.code !== null && lastExit.code !== 0);
}

/** A new element with properties (data-* and aria-* as attributes) and children. */
function el<K extends keyof HTMLElementTagNameMap>(tag: K, props: Record<string, string>, children?: (Node | string)[]): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key.startsWith('data-') || key.startsWith('aria-')) node.setAttribute(key, value);
    else (node as unknown as Record<string, string>)[key] = value;
  }
  if (children) node.append(...children);
  return node;
}

/** An element of the page; index.html has every id this script asks for. */
function byId(id: string): HTMLElement {
  return document.getElementById(id)!;
}

function tableBody(): HTMLTableSectionElement {
  return document.querySelector<HTMLTableSectionElement>('#services tbody')!;
}

function logLines(): HTMLPreElement {
  return document.querySelector<HTMLPreElement>('#log pre')!;
}

function parseJson(text: string): any {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function capitalize(word: string): string {
  return word.charAt(0).toUpperCase() + word.slice(1);
}

function pad2(n: number): string {
  return n < 10 ? '0' + n : String(n);
}

function plural(n: number, word: string): string {
  return n + ' ' + word + (n === 1 ? '' : 's');
}
