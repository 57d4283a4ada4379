// HTTPRoutes and GRPCRoutes compiled once per snapshot into a table per parent Service port:
// regexes compiled, header names lowered, backends resolved to the ServiceTarget exchange()
// balances over, and every match sorted by the Gateway API's precedence, so that a request only
// walks a sorted list. A service without routes has no table: one map read per request.

import { parseDuration } from '../../api/duration-text.js';
import type { GRPCRouteSpec, HTTPRouteSpec } from '../../api/resources/index.js';
import type { ServiceView } from '../../controlplane-client/mesh-view.js';
import type { ExchangeRoute } from '../http/outbound-exchange.js';
import type { ServiceTarget } from '../outbound/opaque.js';
import type { HedgePolicy } from '../resilience/hedge-decision.js';
import { LatencyQuantile } from '../resilience/latency-quantile.js';

export interface CompiledHeaderModifier {
  set: ReadonlyArray<readonly [string, string]>;
  add: ReadonlyArray<readonly [string, string]>;
  remove: readonly string[];
}

export interface CompiledPathModifier {
  type: 'ReplaceFullPath' | 'ReplacePrefixMatch';
  value: string;
}

export interface CompiledFault {
  delayMs: number;
  /** 0-100 */
  delayPercent: number;
  abort: { httpStatus?: number; grpcStatus?: number; percent: number } | undefined;
}

export type CompiledBackend =
  | { weight: number; target: ServiceTarget; problem?: undefined }
  /** A backendRef that names no Service port: its share of requests gets a 500. */
  | { weight: number; target?: undefined; problem: string };

/** One rule of one route: what happens to a request it matches. */
export interface CompiledRule {
  route: string;
  /** Undefined: the parent Service itself. */
  backends: readonly CompiledBackend[] | undefined;
  totalWeight: number;
  requestHeaders?: CompiledHeaderModifier;
  responseHeaders?: CompiledHeaderModifier;
  rewrite?: { hostname?: string; path?: CompiledPathModifier };
  redirect?: {
    scheme?: 'http' | 'https';
    hostname?: string;
    path?: CompiledPathModifier;
    port?: number;
    statusCode: number;
  };
  mirrors?: readonly ServiceTarget[];
  fault?: CompiledFault;
  /**
   * What exchange() is told of the route: its name (the retry and timeout metrics' label) and
   * its timeouts in ms (rules[].timeouts) and hedging, made once here so a request allocates
   * nothing.
   */
  exchange: ExchangeRoute;
}

export type ValueMatch =
  | { name: string; exact: string; re?: undefined }
  | { name: string; exact?: undefined; re: RegExp };

export type PathMatch =
  | { type: 'Exact'; value: string }
  | { type: 'PathPrefix'; value: string }
  | { type: 'RegularExpression'; value: string; re: RegExp };

export interface HostnameMatch {
  exact: ReadonlySet<string>;
  /** ".example.com" for "*.example.com" */
  suffixes: readonly string[];
}

interface EntryCommon {
  rule: CompiledRule;
  hostnames: HostnameMatch | undefined;
  headers: readonly ValueMatch[];
  /** Tie-breakers (Gateway API): oldest route, then name, then rule and match order. */
  createdAt: string;
  name: string;
  ruleIndex: number;
  matchIndex: number;
}

export interface HttpEntry extends EntryCommon {
  path: PathMatch;
  method: string | undefined;
  query: readonly ValueMatch[];
}

export interface GrpcEntry extends EntryCommon {
  service: { exact: string } | { re: RegExp } | undefined;
  method: { exact: string } | { re: RegExp } | undefined;
}

/** The routes of one parent Service port. */
export interface PortRoutes {
  http: readonly HttpEntry[];
  grpc: readonly GrpcEntry[];
  /** Whether any entry names hostnames (else the authority is never looked at). */
  httpHostnames: boolean;
  grpcHostnames: boolean;
}

/** Per parent Service, per port as clients call it. */
export type ServiceRoutes = ReadonlyMap<number, PortRoutes>;

export interface RouteDocument<S> {
  name: string;
  spec: S;
  createdAt: string;
}

/**
 * The latency estimators of the rules hedged after their p95, by route kind, name and rule
 * index: kept across snapshots (a snapshot comes with any change in the mesh; the estimate
 * should not start over each time), made on first use.
 */
export class RuleLatencies {
  private readonly byRule = new Map<string, LatencyQuantile>();
  constructor(private readonly now: () => number = Date.now) {}

  of(key: string): LatencyQuantile {
    let q = this.byRule.get(key);
    if (q === undefined) {
      q = new LatencyQuantile({ now: this.now });
      this.byRule.set(key, q);
    }
    return q;
  }

  /** Drops the estimators of rules no longer in the snapshot. */
  keepOnly(keys: ReadonlySet<string>): void {
    for (const key of this.byRule.keys()) if (!keys.has(key)) this.byRule.delete(key);
  }
}

/** Every route of a snapshot, compiled per parent Service and port. */
export function buildRouteTables(
  services: ReadonlyMap<string, ServiceView>,
  http: readonly RouteDocument<HTTPRouteSpec>[],
  grpc: readonly RouteDocument<GRPCRouteSpec>[],
  latencies: RuleLatencies = new RuleLatencies(),
): Map<string, ServiceRoutes> {
  const used = new Set<string>();
  const hedgingOf = (
    key: string,
    h: { delay: string; maxHedges: number } | undefined,
    grpcRoute: boolean,
  ): HedgePolicy | undefined => {
    if (h === undefined) return undefined;
    const p95 = h.delay === 'p95';
    if (p95) used.add(key);
    return {
      delayMs: p95 ? undefined : parseDuration(h.delay),
      latency: p95 ? latencies.of(key) : undefined,
      maxHedges: h.maxHedges,
      grpcRoute,
    };
  };
  const tables = new Map<string, Map<number, { http: HttpEntry[]; grpc: GrpcEntry[] }>>();
  const portsOf = (parent: { name: string; port?: number | undefined }) => {
    const service = services.get(parent.name);
    if (service === undefined) return [];
    return service.ports.filter((p) => parent.port === undefined || p.port === parent.port);
  };
  const slot = (service: string, port: number) => {
    let byPort = tables.get(service);
    if (byPort === undefined) {
      byPort = new Map();
      tables.set(service, byPort);
    }
    let entries = byPort.get(port);
    if (entries === undefined) {
      entries = { http: [], grpc: [] };
      byPort.set(port, entries);
    }
    return entries;
  };
  for (const doc of http) {
    const hostnames = compileHostnames(doc.spec.hostnames);
    for (const parent of doc.spec.parentRefs) {
      for (const port of portsOf(parent)) {
        const into = slot(parent.name, port.port).http;
        doc.spec.rules.forEach((rule, ruleIndex) => {
          const hedge = hedgingOf(`HTTPRoute/${doc.name}/${ruleIndex}`, rule.hedging, false);
          const compiled = compileRule(doc.name, rule, port.port, services, hedge);
          // No matches (or an empty list): every request, as a PathPrefix "/" (Gateway API).
          everyMatch(rule.matches).forEach((m, matchIndex) => {
            into.push({
              rule: compiled,
              hostnames,
              headers: valueMatches(m.headers, true),
              createdAt: doc.createdAt,
              name: doc.name,
              ruleIndex,
              matchIndex,
              path: compilePath(m.path),
              method: m.method,
              query: valueMatches(m.queryParams, false),
            });
          });
        });
      }
    }
  }
  for (const doc of grpc) {
    const hostnames = compileHostnames(doc.spec.hostnames);
    for (const parent of doc.spec.parentRefs) {
      for (const port of portsOf(parent)) {
        const into = slot(parent.name, port.port).grpc;
        doc.spec.rules.forEach((rule, ruleIndex) => {
          const hedge = hedgingOf(`GRPCRoute/${doc.name}/${ruleIndex}`, rule.hedging, true);
          const compiled = compileRule(doc.name, rule, port.port, services, hedge);
          everyMatch(rule.matches).forEach((m, matchIndex) => {
            const type = m.method?.type ?? 'Exact';
            const name = (v: string | undefined) =>
              v === undefined ? undefined : type === 'Exact' ? { exact: v } : { re: anchored(v) };
            into.push({
              rule: compiled,
              hostnames,
              headers: valueMatches(m.headers, true),
              createdAt: doc.createdAt,
              name: doc.name,
              ruleIndex,
              matchIndex,
              service: name(m.method?.service),
              method: name(m.method?.method),
            });
          });
        });
      }
    }
  }
  const out = new Map<string, ServiceRoutes>();
  for (const [service, byPort] of tables) {
    const ports = new Map<number, PortRoutes>();
    for (const [port, e] of byPort) {
      ports.set(port, {
        http: e.http.sort(httpPrecedence),
        grpc: e.grpc.sort(grpcPrecedence),
        httpHostnames: e.http.some((x) => x.hostnames !== undefined),
        grpcHostnames: e.grpc.some((x) => x.hostnames !== undefined),
      });
    }
    out.set(service, ports);
  }
  latencies.keepOnly(used);
  return out;
}

/**
 * Gateway API HTTPRoute precedence: an Exact path, then (weft's choice for what the API leaves
 * to implementations) a RegularExpression path, longest pattern first, then the longest
 * PathPrefix; then a method match, the most header matches, the most query matches; ties go
 * to the oldest route, then the name, then rule and match order.
 */
export function httpPrecedence(a: HttpEntry, b: HttpEntry): number {
  return (
    PATH_RANK[a.path.type] - PATH_RANK[b.path.type] ||
    b.path.value.length - a.path.value.length ||
    Number(b.method !== undefined) - Number(a.method !== undefined) ||
    b.headers.length - a.headers.length ||
    b.query.length - a.query.length ||
    ties(a, b)
  );
}

/**
 * GRPCRoute precedence: the most characters of an exact service, then of an exact method (a
 * regular expression ranks below any exact name, above none), the most header matches; ties as
 * for HTTPRoutes.
 */
export function grpcPrecedence(a: GrpcEntry, b: GrpcEntry): number {
  return (
    nameScore(b.service) - nameScore(a.service) ||
    nameScore(b.method) - nameScore(a.method) ||
    b.headers.length - a.headers.length ||
    ties(a, b)
  );
}

function everyMatch<M extends object>(matches: readonly M[]): readonly Partial<M>[] {
  return matches.length > 0 ? matches : [{}];
}

const PATH_RANK = { Exact: 0, RegularExpression: 1, PathPrefix: 2 } as const;

function nameScore(m: { exact: string } | { re: RegExp } | undefined): number {
  if (m === undefined) return 0;
  return 'exact' in m ? 2 + m.exact.length : 1;
}

function ties(a: EntryCommon, b: EntryCommon): number {
  return (
    compareText(a.createdAt, b.createdAt) ||
    compareText(a.name, b.name) ||
    a.ruleIndex - b.ruleIndex ||
    a.matchIndex - b.matchIndex
  );
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Regular expressions match the whole value (as Envoy's safe_regex does). */
function anchored(source: string): RegExp {
  return new RegExp(`^(?:${source})$`);
}

function compilePath(p: { type: string; value: string } | undefined): PathMatch {
  if (p === undefined) return { type: 'PathPrefix', value: '/' };
  if (p.type === 'RegularExpression')
    return { type: 'RegularExpression', value: p.value, re: anchored(p.value) };
  if (p.type === 'Exact') return { type: 'Exact', value: p.value };
  // "/foo/" and "/foo" are the same prefix (element-wise).
  const value = p.value.length > 1 && p.value.endsWith('/') ? p.value.slice(0, -1) : p.value;
  return { type: 'PathPrefix', value };
}

/** Only the first match per name counts (Gateway API); header names compare without case. */
function valueMatches(
  list: ReadonlyArray<{ type?: string; name: string; value: string }> | undefined,
  lowerNames: boolean,
): ValueMatch[] {
  const out: ValueMatch[] = [];
  const seen = new Set<string>();
  for (const m of list ?? []) {
    const name = lowerNames ? m.name.toLowerCase() : m.name;
    if (seen.has(name)) continue;
    seen.add(name);
    out.push(
      m.type === 'RegularExpression' ? { name, re: anchored(m.value) } : { name, exact: m.value },
    );
  }
  return out;
}

function compileHostnames(list: readonly string[] | undefined): HostnameMatch | undefined {
  if (list === undefined || list.length === 0) return undefined;
  return {
    exact: new Set(list.filter((h) => !h.startsWith('*.'))),
    suffixes: list.filter((h) => h.startsWith('*.')).map((h) => h.slice(1)),
  };
}

type AnyRule = HTTPRouteSpec['rules'][number] | GRPCRouteSpec['rules'][number];
type AnyFilter = NonNullable<HTTPRouteSpec['rules'][number]['filters']>[number];

function compileRule(
  route: string,
  rule: AnyRule,
  parentPort: number,
  services: ReadonlyMap<string, ServiceView>,
  hedging: HedgePolicy | undefined,
): CompiledRule {
  const backends = rule.backendRefs
    ?.filter((b) => b.weight > 0)
    .map((b): CompiledBackend => {
      const target = resolveTarget(services, b.name, b.port ?? parentPort);
      return target
        ? { weight: b.weight, target }
        : {
            weight: b.weight,
            problem: `backend ${b.name}:${b.port ?? parentPort} is not a Service port`,
          };
    });
  const out: CompiledRule = {
    route,
    backends,
    totalWeight: backends?.reduce((sum, b) => sum + b.weight, 0) ?? 0,
    exchange: hedging ? { name: route, hedging } : { name: route },
  };
  for (const f of (rule.filters ?? []) as AnyFilter[]) {
    switch (f.type) {
      case 'RequestHeaderModifier':
        out.requestHeaders = compileModifier(f.requestHeaderModifier!);
        break;
      case 'ResponseHeaderModifier':
        out.responseHeaders = compileModifier(f.responseHeaderModifier!);
        break;
      case 'URLRewrite': {
        const u = f.urlRewrite!;
        out.rewrite = {
          ...(u.hostname ? { hostname: u.hostname } : {}),
          ...(u.path ? { path: compilePathModifier(u.path) } : {}),
        };
        break;
      }
      case 'RequestRedirect': {
        const r = f.requestRedirect!;
        out.redirect = {
          ...(r.scheme ? { scheme: r.scheme } : {}),
          ...(r.hostname ? { hostname: r.hostname } : {}),
          ...(r.path ? { path: compilePathModifier(r.path) } : {}),
          ...(r.port ? { port: r.port } : {}),
          statusCode: r.statusCode,
        };
        break;
      }
      case 'RequestMirror': {
        const ref = f.requestMirror!.backendRef;
        const target = resolveTarget(services, ref.name, ref.port ?? parentPort);
        // A mirror naming no Service port has nowhere to send copies; the caller is unaffected.
        if (target) out.mirrors = [...(out.mirrors ?? []), target];
        break;
      }
      case 'Fault': {
        const fault = f.fault!;
        out.fault = {
          delayMs: fault.delay ? (parseDuration(fault.delay.fixedDelay) ?? 0) : 0,
          delayPercent: fault.delay?.percentage ?? 0,
          abort: fault.abort
            ? {
                ...(fault.abort.httpStatus !== undefined
                  ? { httpStatus: fault.abort.httpStatus }
                  : {}),
                ...(fault.abort.grpcStatus !== undefined
                  ? { grpcStatus: fault.abort.grpcStatus }
                  : {}),
                percent: fault.abort.percentage,
              }
            : undefined,
        };
        break;
      }
    }
  }
  const timeouts = 'timeouts' in rule ? rule.timeouts : undefined;
  if (timeouts) {
    const request = timeouts.request ? parseDuration(timeouts.request) : undefined;
    const backendRequest = timeouts.backendRequest
      ? parseDuration(timeouts.backendRequest)
      : undefined;
    out.exchange = {
      ...out.exchange,
      timeouts: {
        ...(request !== undefined ? { request } : {}),
        ...(backendRequest !== undefined ? { backendRequest } : {}),
      },
    };
  }
  return out;
}

function compileModifier(m: {
  set?: { name: string; value: string }[] | undefined;
  add?: { name: string; value: string }[] | undefined;
  remove?: string[] | undefined;
}): CompiledHeaderModifier {
  return {
    set: (m.set ?? []).map((h) => [h.name.toLowerCase(), h.value] as const),
    add: (m.add ?? []).map((h) => [h.name.toLowerCase(), h.value] as const),
    remove: (m.remove ?? []).map((n) => n.toLowerCase()),
  };
}

function compilePathModifier(p: {
  type: 'ReplaceFullPath' | 'ReplacePrefixMatch';
  replaceFullPath?: string | undefined;
  replacePrefixMatch?: string | undefined;
}): CompiledPathModifier {
  return {
    type: p.type,
    value: (p.type === 'ReplaceFullPath' ? p.replaceFullPath : p.replacePrefixMatch) ?? '/',
  };
}

/** A Service's port as clients call it, as the target exchange() balances over. */
function resolveTarget(
  services: ReadonlyMap<string, ServiceView>,
  name: string,
  port: number,
): ServiceTarget | undefined {
  const servicePort = services.get(name)?.ports.find((p) => p.port === port);
  return servicePort ? { service: name, port: servicePort, via: 'vip' } : undefined;
}
