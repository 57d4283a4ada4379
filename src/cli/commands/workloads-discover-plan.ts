// `weft workloads discover`, the decision: from the host's listening TCP sockets and their
// processes, which are candidate workloads (weft's own and loopback-only sockets are skipped
// unless asked: a mesh peer cannot reach an app bound to loopback, and weft is not its own
// workload), what each would be called, and the Service documents and agent.yaml `workloads`
// entries that would onboard them. Pure: the command gathers the facts and prints the result.

export interface ListeningSocket {
  address: string;
  port: number;
  pid?: number;
}

export interface ProcessFacts {
  pid: number;
  /** The executable's name (nginx, redis-server). */
  name: string;
  command: string;
  user: string;
  /** The systemd unit, from /proc/<pid>/cgroup (nginx.service), when it runs in one. */
  unit?: string;
}

export type SkipReason = 'loopback' | 'weft';

/** One listening port of one process (its IPv4 and IPv6 sockets together). */
export interface Candidate {
  /** The proposed Service (and `--register` name): from the unit, else the process. */
  service: string;
  port: number;
  addresses: string[];
  pid?: number;
  process?: string;
  user?: string;
  unit?: string;
  protocol: 'http' | 'tcp';
  skipped?: SkipReason;
}

export interface DiscoverOptions {
  /** Also propose loopback-only sockets and weft's own. */
  all: boolean;
  /** The agent's own ports (15000-15053 by default): weft's, whoever listens. */
  agentPorts: readonly number[];
}

/** Ports whose protocol is not HTTP, or whose server speaks first (Linkerd's opaque ports). */
const OPAQUE_PORTS = new Set([22, 25, 443, 587, 3306, 5432, 6379, 9300, 11211, 27017]);
const HTTP_PORTS = new Set([80, 3000, 5000, 8000, 8008, 8080, 8081, 8888, 9000]);
const HTTP_SERVERS = new Set(['nginx', 'httpd', 'apache2', 'caddy', 'lighttpd', 'envoy']);

const WILDCARDS = new Set(['0.0.0.0', '::', '*', '']);

export function isLoopback(address: string): boolean {
  return address.startsWith('127.') || address === '::1' || address === '::ffff:127.0.0.1';
}

export function discoverCandidates(
  sockets: readonly ListeningSocket[],
  processes: ReadonlyMap<number, ProcessFacts>,
  options: DiscoverOptions,
): Candidate[] {
  const byKey = new Map<string, Candidate>();
  for (const s of sockets) {
    const proc = s.pid === undefined ? undefined : processes.get(s.pid);
    const key = `${proc?.pid ?? `?${s.address}`}:${s.port}`;
    const found = byKey.get(key);
    if (found) {
      if (!found.addresses.includes(s.address)) found.addresses.push(s.address);
      continue;
    }
    byKey.set(key, {
      service: serviceName(proc, s.port),
      port: s.port,
      addresses: [s.address],
      ...(proc ? { pid: proc.pid, process: proc.name, user: proc.user } : {}),
      ...(proc?.unit ? { unit: proc.unit } : {}),
      protocol: guessProtocol(s.port, proc?.name),
    });
  }
  const out: Candidate[] = [];
  for (const c of byKey.values()) {
    const skipped = skipReason(c, options);
    out.push(skipped && !options.all ? { ...c, skipped } : c);
  }
  return out.sort((a, b) => a.service.localeCompare(b.service) || a.port - b.port);
}

function skipReason(c: Candidate, options: DiscoverOptions): SkipReason | undefined {
  const weft =
    options.agentPorts.includes(c.port) ||
    c.user === 'weft' ||
    c.user === 'weft-cp' ||
    /(^|\/)weft(\s|$)/.test(c.process ?? '');
  if (weft) return 'weft';
  if (c.addresses.every(isLoopback)) return 'loopback';
  return undefined;
}

/** A DNS label from the unit (without .service), else the process name, else port-N. */
export function serviceName(proc: ProcessFacts | undefined, port: number): string {
  const base = proc?.unit?.endsWith('.service')
    ? proc.unit.slice(0, -'.service'.length)
    : proc?.name;
  const label = (base ?? '')
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 63)
    .replace(/-+$/, '');
  return label === '' ? `port-${port}` : label;
}

function guessProtocol(port: number, process: string | undefined): 'http' | 'tcp' {
  if (OPAQUE_PORTS.has(port)) return 'tcp';
  if (HTTP_PORTS.has(port) || (process !== undefined && HTTP_SERVERS.has(process))) return 'http';
  return 'tcp';
}

export interface ServiceDocument {
  apiVersion: 'weft/v1';
  kind: 'Service';
  metadata: { name: string };
  spec: { ports: { name: string; port: number; protocol: string }[] };
}

/** An agent.yaml `workloads` entry (src/agent/config.ts's schema). */
export interface WorkloadEntry {
  service: string;
  name: string;
  port: number;
  address?: string;
  unit?: string;
  user?: string;
}

/** The Service documents and workload entries that onboard the candidates not skipped. */
export function proposals(candidates: readonly Candidate[]): {
  services: ServiceDocument[];
  workloads: WorkloadEntry[];
} {
  const chosen = candidates.filter((c) => c.skipped === undefined);
  const services = new Map<string, ServiceDocument>();
  const workloads: WorkloadEntry[] = [];
  for (const c of chosen) {
    let doc = services.get(c.service);
    if (doc === undefined) {
      doc = {
        apiVersion: 'weft/v1',
        kind: 'Service',
        metadata: { name: c.service },
        spec: { ports: [] },
      };
      services.set(c.service, doc);
    }
    if (!doc.spec.ports.some((p) => p.port === c.port))
      doc.spec.ports.push({ name: `${c.protocol}-${c.port}`, port: c.port, protocol: c.protocol });
    const specific = c.addresses.filter((a) => !WILDCARDS.has(a) && !isLoopback(a));
    workloads.push({
      service: c.service,
      name: `${c.service}-${c.port}`,
      port: c.port,
      // Bound to one address: register that one (else the host's first address, the default).
      ...(specific.length === 1 && !c.addresses.some((a) => WILDCARDS.has(a))
        ? { address: specific[0]! }
        : {}),
      // Its outbound calls get its identity: by unit when it has one; by user unless root
      // (every root process would then call as this service).
      ...(c.unit?.endsWith('.service')
        ? { unit: c.unit }
        : c.user && c.user !== 'root'
          ? { user: c.user }
          : {}),
    });
  }
  return { services: [...services.values()], workloads };
}
