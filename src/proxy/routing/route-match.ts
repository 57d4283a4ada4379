// Which route entry a request matches, as a pure function over a port's sorted entries: the
// first entry (in precedence order) whose path, method, headers and query parameters (or gRPC
// service and method) all match. With hostnames, a route whose hostname matches more precisely
// wins first (Gateway API: the longest non-wildcard hostname, then the longest hostname).
import type { HeaderMap } from '../http/types.js';
import type {
  GrpcEntry,
  HostnameMatch,
  HttpEntry,
  PathMatch,
  PortRoutes,
  ValueMatch,
} from './route-table.js';

/** What matching reads of a request. */
export interface RequestFacts {
  method: string;
  /** Origin-form path with its query. */
  path: string;
  authority: string;
  headers: HeaderMap;
}

export function matchHttp(routes: PortRoutes, req: RequestFacts): HttpEntry | undefined {
  const q = req.path.indexOf('?');
  const path = q < 0 ? req.path : req.path.slice(0, q);
  let query: URLSearchParams | undefined;
  const queryOf = () => {
    query ??= new URLSearchParams(q < 0 ? '' : req.path.slice(q + 1));
    return query;
  };
  const matches = (e: HttpEntry) =>
    pathMatches(e.path, path) &&
    (e.method === undefined || e.method === req.method) &&
    headersMatch(e.headers, req.headers) &&
    (e.query.length === 0 || queryMatches(e.query, queryOf()));
  return pick(routes.http, routes.httpHostnames, req.authority, matches);
}

export function matchGrpc(routes: PortRoutes, req: RequestFacts): GrpcEntry | undefined {
  // gRPC's :path is "/<package.Service>/<Method>".
  const slash = req.path.indexOf('/', 1);
  const service = slash < 0 ? '' : req.path.slice(1, slash);
  const method = slash < 0 ? '' : req.path.slice(slash + 1);
  const matches = (e: GrpcEntry) =>
    nameMatches(e.service, service) &&
    nameMatches(e.method, method) &&
    headersMatch(e.headers, req.headers);
  return pick(routes.grpc, routes.grpcHostnames, req.authority, matches);
}

/** The first match in precedence order; with hostnames, the best hostname match first. */
function pick<E extends { hostnames: HostnameMatch | undefined }>(
  entries: readonly E[],
  anyHostnames: boolean,
  authority: string,
  matches: (e: E) => boolean,
): E | undefined {
  if (!anyHostnames) {
    for (const e of entries) if (matches(e)) return e;
    return undefined;
  }
  const host = hostOf(authority);
  let best: E | undefined;
  let bestScore = -1;
  for (const e of entries) {
    const score = hostnameScore(e.hostnames, host);
    if (score <= bestScore || !matches(e)) continue;
    best = e;
    bestScore = score;
  }
  return best;
}

/**
 * How precisely a route's hostnames match: -1 not at all; 0 the route names none (any host);
 * else non-wildcard length first, then the length of the matching hostname.
 */
export function hostnameScore(h: HostnameMatch | undefined, host: string): number {
  if (h === undefined) return 0;
  if (h.exact.has(host)) return 1 + host.length * 1000 + host.length;
  let score = -1;
  for (const suffix of h.suffixes) {
    // "*.example.com" matches "a.example.com" and "a.b.example.com", not "example.com".
    if (host.length > suffix.length && host.endsWith(suffix))
      score = Math.max(score, 1 + suffix.length);
  }
  return score;
}

/** The host of an authority, lowercased, without its port (and brackets, for IPv6). */
export function hostOf(authority: string): string {
  let host = authority;
  if (host.startsWith('[')) {
    const end = host.indexOf(']');
    host = end < 0 ? host : host.slice(1, end);
  } else {
    const colon = host.lastIndexOf(':');
    if (colon >= 0 && host.indexOf(':') === colon) host = host.slice(0, colon);
  }
  if (host.endsWith('.')) host = host.slice(0, -1);
  return host.toLowerCase();
}

/** PathPrefix matches whole segments: "/foo" matches "/foo", "/foo/" and "/foo/bar", not "/foobar". */
export function pathMatches(m: PathMatch, path: string): boolean {
  switch (m.type) {
    case 'Exact':
      return path === m.value;
    case 'RegularExpression':
      return m.re.test(path);
    case 'PathPrefix':
      if (m.value === '/') return true;
      return (
        path.startsWith(m.value) && (path.length === m.value.length || path[m.value.length] === '/')
      );
  }
}

function headersMatch(list: readonly ValueMatch[], headers: HeaderMap): boolean {
  for (const m of list) {
    const raw = headers[m.name];
    if (raw === undefined) return false;
    const value = typeof raw === 'string' ? raw : raw.join(', ');
    if (!valueMatches(m, value)) return false;
  }
  return true;
}

function queryMatches(list: readonly ValueMatch[], query: URLSearchParams): boolean {
  for (const m of list) {
    const value = query.get(m.name);
    if (value === null || !valueMatches(m, value)) return false;
  }
  return true;
}

function valueMatches(m: ValueMatch, value: string): boolean {
  return m.re === undefined ? value === m.exact : m.re.test(value);
}

function nameMatches(m: { exact: string } | { re: RegExp } | undefined, value: string): boolean {
  if (m === undefined) return true;
  return 'exact' in m ? m.exact === value : m.re.test(value);
}
