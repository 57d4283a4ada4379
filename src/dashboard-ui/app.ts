// The dashboard page: polls /api/v1/overview every 2 s and redraws the summary, the service
// graph and the tables from it. A failed poll leaves the last picture up and says so; a lost
// session goes back to the login page.

import { ago, bytes, el, millis, percent, rate, successClass, svg, until } from './format.js';
import { renderGraph } from './graph.js';
import type { Overview, OverviewNode, OverviewPolicy, OverviewService } from './overview-types.js';

const POLL_MS = 2000;

function byId(id: string): HTMLElement {
  const node = document.getElementById(id);
  if (node === null) throw new Error(`the page has no #${id}`);
  return node;
}

function tile(label: string, value: string, cls = ''): HTMLElement {
  return el(
    'div',
    { class: 'tile' },
    el('div', { class: `value ${cls}` }, value),
    el('div', { class: 'label' }, label),
  );
}

function header(...names: string[]): HTMLTableSectionElement {
  return el(
    'thead',
    {},
    el(
      'tr',
      {},
      ...names.map((n) =>
        n.startsWith('#') ? el('th', { class: 'num' }, n.slice(1)) : el('th', {}, n),
      ),
    ),
  );
}

function num(text: string, cls = ''): HTMLTableCellElement {
  return el('td', { class: `num ${cls}`.trim() }, text);
}

function renderTiles(o: Overview): void {
  const endpoints = o.services.flatMap((s) => s.endpoints);
  const ready = o.services.reduce((n, s) => n + s.ready, 0);
  const connected = o.nodes.filter((n) => n.state === 'connected').length;
  const rps = o.services.reduce((n, s) => n + (s.stats?.rps ?? 0), 0);
  byId('tiles').replaceChildren(
    tile('services', String(o.services.length)),
    tile(
      'endpoints ready',
      `${ready}/${endpoints.length}`,
      ready < endpoints.length ? 'warn' : 'ok',
    ),
    tile(
      'nodes connected',
      `${connected}/${o.nodes.length}`,
      connected < o.nodes.length ? 'warn' : 'ok',
    ),
    tile(`requests (last ${o.windowSeconds} s)`, rate(rps)),
    tile(
      `failed (last ${o.windowSeconds} s)`,
      String(o.erroredInWindow),
      o.erroredInWindow > 0 ? 'bad' : '',
    ),
    tile(
      `denied (last ${o.windowSeconds} s)`,
      String(o.deniedInWindow),
      o.deniedInWindow > 0 ? 'bad' : '',
    ),
    tile('policies and routes', String(o.policies.length)),
  );
}

function endpointPills(service: OverviewService): HTMLElement {
  const cell = el('td', {});
  if (service.endpoints.length === 0) cell.append(el('span', { class: 'muted' }, 'none'));
  for (const e of service.endpoints) {
    const state = e.stale ? 'stale' : e.health;
    cell.append(
      el('span', { class: `pill ${state}`, title: `${e.address}:${e.port} (${state})` }, e.node),
    );
  }
  return cell;
}

/** Each service's rate at the last polls, oldest first (2 min at one poll every 2 s). */
const rateHistory = new Map<string, number[]>();
const HISTORY_POINTS = 60;

function remember(services: OverviewService[]): void {
  for (const s of services) {
    const points = rateHistory.get(s.name) ?? [];
    points.push(s.stats?.rps ?? 0);
    if (points.length > HISTORY_POINTS) points.shift();
    rateHistory.set(s.name, points);
  }
}

/** A small line of the rate over the last polls: a trend reads faster than a column of numbers. */
function sparkline(points: number[]): SVGSVGElement {
  const width = 120;
  const height = 22;
  const top = Math.max(...points, 0.001);
  const step = width / (HISTORY_POINTS - 1);
  const start = HISTORY_POINTS - points.length;
  const coords = points
    .map(
      (p, i) =>
        `${((start + i) * step).toFixed(1)},${(height - 2 - (p / top) * (height - 4)).toFixed(1)}`,
    )
    .join(' ');
  return svg(
    'svg',
    {
      class: 'spark',
      width,
      height,
      viewBox: `0 0 ${width} ${height}`,
      role: 'img',
      'aria-label': 'rate, last 2 min',
    },
    svg('polyline', { points: coords }),
  );
}

function renderServices(services: OverviewService[]): void {
  remember(services);
  const body = el('tbody', {});
  for (const s of services) {
    const ports = s.ports.map((p) => `${p.port}/${p.protocol}`).join(', ');
    body.append(
      el(
        'tr',
        { 'data-service': s.name },
        el('td', {}, s.name),
        el('td', {}, s.vip ?? '-'),
        el('td', {}, ports),
        endpointPills(s),
        el('td', {}, sparkline(rateHistory.get(s.name) ?? [])),
        num(rate(s.stats?.rps)),
        num(percent(s.stats?.successRate), successClass(s.stats?.successRate)),
        num(millis(s.stats?.p50Ms)),
        num(millis(s.stats?.p99Ms)),
      ),
    );
  }
  byId('services').replaceChildren(
    header(
      'Service',
      'VIP',
      'Ports',
      'Endpoints',
      'Last 2 min',
      '#Rate',
      '#Success',
      '#p50',
      '#p99',
    ),
    body,
  );
}

function renderNodes(nodes: OverviewNode[], now: number): void {
  const body = el('tbody', {});
  for (const n of nodes) {
    body.append(
      el(
        'tr',
        { 'data-node': n.name },
        el('td', {}, n.name),
        el('td', { class: n.state === 'connected' ? 'ok' : 'warn' }, n.state),
        el('td', {}, n.addresses.join(', ')),
        el('td', {}, n.agentVersion || '-'),
        el('td', {}, n.host ? `${n.host.os}, ${n.host.kernel}` : '-'),
        num(n.host ? `${n.host.cpus}` : '-'),
        num(n.host ? bytes(n.host.memoryBytes) : '-'),
        num(String(n.syncVersion)),
        el('td', {}, until(n.certNotAfterUnixMs, now)),
        el('td', {}, ago(n.lastSeenUnixMs, now)),
        el('td', { class: n.lastNack ? 'bad' : 'muted' }, n.lastNack || '-'),
      ),
    );
  }
  byId('nodes').replaceChildren(
    header(
      'Node',
      'State',
      'Addresses',
      'Agent',
      'Host',
      '#CPUs',
      '#Memory',
      '#Sync version',
      'Certificate',
      'Last seen',
      'Last refusal',
    ),
    body,
  );
}

function renderPolicies(policies: OverviewPolicy[]): void {
  const body = el('tbody', {});
  for (const p of policies) {
    body.append(
      el(
        'tr',
        {},
        el('td', {}, p.kind),
        el('td', {}, p.name),
        el('td', {}, p.targets.join(', ') || '-'),
        el('td', {}, p.summary),
      ),
    );
  }
  byId('policies').replaceChildren(header('Kind', 'Name', 'Applies to', 'What'), body);
}

/** "spiffe://td/svc/web" -> "web"; other IDs as they are. */
function callerOf(source: string): string {
  return /\/svc\/([^/]+)$/.exec(source)?.[1] ?? source;
}

function renderDenials(o: Overview): void {
  const body = el('tbody', {});
  for (const d of o.denials) {
    const request = d.method ? `${d.method} ${d.path}` : 'connection';
    body.append(
      el(
        'tr',
        { 'data-destination': d.destination },
        el('td', {}, new Date(d.atUnixMs).toLocaleTimeString()),
        el('td', {}, d.node),
        el('td', { title: d.source }, callerOf(d.source)),
        el('td', {}, d.destination),
        el('td', {}, request),
        el('td', { class: 'bad' }, d.reason),
      ),
    );
  }
  byId('denials').replaceChildren(
    header('Time', 'Node', 'Caller', 'Service', 'Request', 'Why'),
    body,
  );
  byId('denials-note').textContent =
    o.deniedInWindow === 0
      ? `No request was denied in the last ${o.windowSeconds} s.`
      : `${o.deniedInWindow} denied in the last ${o.windowSeconds} s; the newest are listed.`;
}

function answerOf(e: Overview['errors'][number]): string {
  if (e.grpcStatus > 0) return `gRPC ${e.grpcStatus}`;
  return e.status === 0 ? 'no answer' : String(e.status);
}

function renderErrors(o: Overview): void {
  const body = el('tbody', {});
  for (const e of o.errors) {
    body.append(
      el(
        'tr',
        { 'data-destination': e.destination },
        el('td', {}, new Date(e.atUnixMs).toLocaleTimeString()),
        el('td', {}, e.node),
        el('td', {}, e.source),
        el('td', {}, e.destination),
        el('td', {}, `${e.method} ${e.path}`),
        el('td', { class: 'bad' }, answerOf(e)),
        el('td', { title: e.detail }, e.endpoint || e.reason),
      ),
    );
  }
  byId('errors').replaceChildren(
    header('Time', 'Node', 'Caller', 'Service', 'Request', 'Answer', 'Endpoint'),
    body,
  );
  byId('errors-note').textContent =
    o.erroredInWindow === 0
      ? `No request failed in the last ${o.windowSeconds} s.`
      : `${o.erroredInWindow} failed in the last ${o.windowSeconds} s (a 5xx, a gRPC error or no answer, as the caller saw it); the newest are listed.`;
}

function render(o: Overview): void {
  renderTiles(o);
  renderGraph(byId('graph'), o.services, o.edges);
  renderServices(o.services);
  renderNodes(o.nodes, o.generatedAtUnixMs);
  renderErrors(o);
  renderDenials(o);
  renderPolicies(o.policies);
  const updated = byId('updated');
  updated.className = 'muted';
  updated.textContent = `updated ${new Date(o.generatedAtUnixMs).toLocaleTimeString()}`;
}

async function poll(): Promise<void> {
  try {
    const res = await fetch('/api/v1/overview', { credentials: 'same-origin' });
    if (res.status === 401) {
      window.location.assign('/login');
      return;
    }
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    render((await res.json()) as Overview);
  } catch (err) {
    const updated = byId('updated');
    updated.className = 'bad';
    updated.textContent = `cannot reach the control plane (${String(err)}): retrying`;
  }
  setTimeout(() => void poll(), POLL_MS);
}

void poll();
