// The route stage's decision for one request, pure: no route matched (undefined: the Service
// itself, route "default"), or the matched route's outcome: forward to a backend chosen by
// weight, redirect, a fault's abort, or a 500 when the rule's backends are unusable; with a
// fault's delay to wait first. Random draws are injected and made only for what is configured.
import type { ServiceTarget } from '../outbound/opaque.js';
import { hostOf, matchGrpc, matchHttp, type RequestFacts } from './route-match.js';
import { modifyPath, redirectLocation } from './route-path.js';
import { pickBackend } from './route-split.js';
import type { CompiledBackend, CompiledRule, PathMatch, PortRoutes } from './route-table.js';

export type RouteOutcome =
  | {
      kind: 'forward';
      target: ServiceTarget;
      /** The path the request matched (ReplacePrefixMatch replaces its prefix). */
      matched: PathMatch | undefined;
    }
  | { kind: 'redirect'; status: number; location: string }
  | { kind: 'abort'; httpStatus?: number; grpcStatus?: number }
  /** The rule's backends name no usable Service port, or all weigh 0 (Gateway API: 500). */
  | { kind: 'unavailable'; detail: string };

export type RouteDecision = RouteOutcome & {
  /** The route's name: the request record's `route` label. */
  route: string;
  /** The matched rule: its filters, and its name and timeouts for exchange() (rule.exchange). */
  rule: CompiledRule;
  /** A fault's delay before anything else happens; 0 for none. */
  delayMs: number;
};

const PREFIX_ROOT: PathMatch = { type: 'PathPrefix', value: '/' };

export function decideRoute(
  routes: PortRoutes,
  req: RequestFacts,
  grpc: boolean,
  parent: ServiceTarget,
  random: () => number,
): RouteDecision | undefined {
  // gRPC calls meet the port's GRPCRoutes; a port with none routes them as HTTP (a gRPC call
  // is an HTTP/2 POST), so an HTTPRoute still applies to them.
  let rule: CompiledRule;
  let matched: PathMatch;
  if (grpc && routes.grpc.length > 0) {
    const entry = matchGrpc(routes, req);
    if (entry === undefined) return undefined;
    rule = entry.rule;
    matched = PREFIX_ROOT;
  } else {
    const entry = matchHttp(routes, req);
    if (entry === undefined) return undefined;
    rule = entry.rule;
    matched = entry.path;
  }
  const fault = rule.fault;
  if (fault === undefined && rule.redirect === undefined) {
    // The common case: no fault, no redirect; one literal per outcome (spreads cost here).
    if (rule.backends === undefined) return forward(rule, 0, parent, matched);
    const backend = pickBackend(rule.backends, rule.totalWeight, random);
    return backend?.target !== undefined
      ? forward(rule, 0, backend.target, matched)
      : unavailable(rule, 0, backend);
  }
  const delayMs =
    fault !== undefined && fault.delayMs > 0 && chance(fault.delayPercent, random)
      ? fault.delayMs
      : 0;
  if (fault?.abort !== undefined && chance(fault.abort.percent, random)) {
    const { httpStatus, grpcStatus } = fault.abort;
    return {
      kind: 'abort',
      ...(httpStatus !== undefined ? { httpStatus } : {}),
      ...(grpcStatus !== undefined ? { grpcStatus } : {}),
      route: rule.route,
      rule,
      delayMs,
    };
  }
  const redirect = rule.redirect;
  if (redirect !== undefined) {
    return {
      kind: 'redirect',
      status: redirect.statusCode,
      location: redirectLocation({
        scheme: redirect.scheme ?? 'http',
        host: redirect.hostname ?? hostOf(req.authority),
        // No port: the scheme's own when a scheme is set, else the port the client called.
        port: redirect.port ?? (redirect.scheme !== undefined ? undefined : parent.port.port),
        pathAndQuery: redirect.path ? modifyPath(req.path, redirect.path, matched) : req.path,
      }),
      route: rule.route,
      rule,
      delayMs,
    };
  }
  if (rule.backends === undefined) return forward(rule, delayMs, parent, matched);
  const backend = pickBackend(rule.backends, rule.totalWeight, random);
  return backend?.target !== undefined
    ? forward(rule, delayMs, backend.target, matched)
    : unavailable(rule, delayMs, backend);
}

function forward(
  rule: CompiledRule,
  delayMs: number,
  target: ServiceTarget,
  matched: PathMatch,
): RouteDecision {
  return {
    kind: 'forward',
    target,
    matched,
    route: rule.route,
    rule,
    delayMs,
  };
}

/** Every backend weighs 0, or the one drawn names no Service port: a 500 (Gateway API). */
function unavailable(
  rule: CompiledRule,
  delayMs: number,
  backend: CompiledBackend | undefined,
): RouteDecision {
  const detail =
    backend === undefined
      ? `route ${rule.route}: every backend has weight 0`
      : `route ${rule.route}: ${backend.problem}`;
  return { kind: 'unavailable', detail, route: rule.route, rule, delayMs };
}

/** True for `percent` of draws (0-100). */
export function chance(percent: number, random: () => number): boolean {
  if (percent >= 100) return true;
  if (percent <= 0) return false;
  return random() * 100 < percent;
}
