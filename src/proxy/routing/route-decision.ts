// The route stage's decision for one request, pure: no route matched (undefined: the Service
// itself, route "default"), or the matched route's outcome: forward to a backend chosen by
// weight, redirect, a fault's abort, or a 500 when the rule's backends are unusable; with a
// fault's delay to wait first. Random draws are injected and made only for what is configured.
import type { ServiceTarget } from '../outbound/opaque.js';
import { hostOf, matchGrpc, matchHttp, type RequestFacts } from './route-match.js';
import { modifyPath, redirectLocation } from './route-path.js';
import { pickBackend } from './route-split.js';
import type { CompiledRule, PathMatch, PortRoutes, RouteTimeouts } from './route-table.js';

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
  rule: CompiledRule;
  /** A fault's delay before anything else happens; 0 for none. */
  delayMs: number;
  /** The rule's timeouts, for exchange() to enforce (carried as data). */
  timeouts: RouteTimeouts | undefined;
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
  const delayMs =
    fault !== undefined && fault.delayMs > 0 && chance(fault.delayPercent, random)
      ? fault.delayMs
      : 0;
  const common = { route: rule.route, rule, delayMs, timeouts: rule.timeouts };
  if (fault?.abort !== undefined && chance(fault.abort.percent, random)) {
    return {
      ...common,
      kind: 'abort',
      ...(fault.abort.httpStatus !== undefined ? { httpStatus: fault.abort.httpStatus } : {}),
      ...(fault.abort.grpcStatus !== undefined ? { grpcStatus: fault.abort.grpcStatus } : {}),
    };
  }
  const redirect = rule.redirect;
  if (redirect !== undefined) {
    return {
      ...common,
      kind: 'redirect',
      status: redirect.statusCode,
      location: redirectLocation({
        scheme: redirect.scheme ?? 'http',
        host: redirect.hostname ?? hostOf(req.authority),
        // No port: the scheme's own when a scheme is set, else the port the client called.
        port: redirect.port ?? (redirect.scheme !== undefined ? undefined : parent.port.port),
        pathAndQuery: redirect.path ? modifyPath(req.path, redirect.path, matched) : req.path,
      }),
    };
  }
  if (rule.backends === undefined) return { ...common, kind: 'forward', target: parent, matched };
  const backend = pickBackend(rule.backends, rule.totalWeight, random);
  if (backend === undefined)
    return {
      ...common,
      kind: 'unavailable',
      detail: `route ${rule.route}: every backend has weight 0`,
    };
  if (backend.target === undefined)
    return { ...common, kind: 'unavailable', detail: `route ${rule.route}: ${backend.problem}` };
  return { ...common, kind: 'forward', target: backend.target, matched };
}

/** True for `percent` of draws (0-100). */
export function chance(percent: number, random: () => number): boolean {
  if (percent >= 100) return true;
  if (percent <= 0) return false;
  return random() * 100 < percent;
}
