// The route stage of the outbound HTTP stack, between the request and exchange(): finds the
// request's route (routesFor: one map read for a service without routes), then carries out
// the decision: a fault's delay, the answers the agent makes itself (redirect, abort, unusable
// backends), the request filters (header modifier, URL rewrite, mirror), the exchange with the
// chosen backend's ServiceTarget under the route's name and timeouts, and the response header
// modifier.
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { type BreakerHold, type Exchanged, exchange } from '../http/outbound-exchange.js';
import type { L7Request, L7Response } from '../http/types.js';
import type { MeshState } from '../mesh-state.js';
import type { OutboundContext } from '../outbound/identify.js';
import type { ServiceTarget } from '../outbound/opaque.js';
import {
  abortAnswer,
  clientGoneAnswer,
  redirectAnswer,
  unavailableAnswer,
} from './route-answer.js';
import type { RouteDecision } from './route-decision.js';
import { modifyHeaders } from './route-headers.js';
import { type MirrorDeps, mirrorRequest } from './route-mirror.js';
import { modifyPath } from './route-path.js';
import type { PortRoutes } from './route-table.js';

/**
 * The routes of the port a connection called, if any. Routes apply to calls to a Service (its
 * virtual IP), not to an app that dialled one endpoint's address itself.
 */
export function routesFor(state: MeshState, target: ServiceTarget): PortRoutes | undefined {
  if (target.via !== 'vip') return undefined;
  return state.routeTable(target.service)?.get(target.port.port);
}

/**
 * Carries out a route decision. `request` is the stage's own copy (its headers map may be
 * changed in place); `body` is undefined for a bodiless request.
 */
export async function routedExchange(
  ctx: OutboundContext,
  decision: RouteDecision,
  request: L7Request,
  body: Readable | undefined,
  grpc: boolean,
  deps: MirrorDeps,
  /** The circuit breaker's hold on the request (its backend Service's breaker). */
  breaker?: BreakerHold,
): Promise<Exchanged> {
  // A fault's delay: one timer, only for the requests the fault picked, dropped with the client.
  if (decision.delayMs > 0) {
    try {
      await sleep(decision.delayMs, undefined, { signal: request.signal });
    } catch {
      return answered(request, body, clientGoneAnswer(grpc));
    }
  }
  switch (decision.kind) {
    case 'redirect':
      return answered(request, body, redirectAnswer(decision.status, decision.location));
    case 'abort':
      return answered(request, body, abortAnswer(decision.httpStatus, decision.grpcStatus));
    case 'unavailable':
      return answered(request, body, unavailableAnswer(decision.detail, grpc));
    case 'forward':
      break;
  }
  const rule = decision.rule;
  if (rule.requestHeaders) modifyHeaders(request.headers, rule.requestHeaders);
  let sent = request;
  if (rule.rewrite) {
    const { hostname, path } = rule.rewrite;
    sent = {
      ...request,
      ...(hostname ? { authority: hostname } : {}),
      ...(path ? { path: modifyPath(request.path, path, decision.matched ?? ROOT) } : {}),
    };
  }
  let forwarded = body;
  if (rule.mirrors) {
    forwarded = mirrorRequest(ctx, decision.target.service, rule.mirrors, sent, body, deps);
    if (forwarded !== undefined) sent = { ...sent, body: forwarded };
  }
  // The route's name labels the retry and timeout metrics; its timeouts (rules[].timeouts)
  // take the place of the backend's TrafficPolicy's request and per-try timeouts.
  const exchanged = await exchange(ctx, decision.target, sent, forwarded, deps, {
    route: rule.exchange,
    ...(breaker ? { breaker } : {}),
  });
  if (rule.responseHeaders && exchanged.response.reason === undefined) {
    const response = exchanged.response;
    exchanged.response = {
      ...response,
      headers: modifyHeaders({ ...response.headers }, rule.responseHeaders),
    };
  }
  return exchanged;
}

const ROOT = { type: 'PathPrefix', value: '/' } as const;

/** The agent answers: the request's body (if any) is read and dropped. */
function answered(request: L7Request, body: Readable | undefined, response: L7Response): Exchanged {
  (body ?? request.body).resume();
  return { response, endpoint: undefined, done: () => {} };
}
