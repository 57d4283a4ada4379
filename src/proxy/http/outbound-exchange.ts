// One outbound HTTP request, from the app's L7Request to an L7Response: balance over the
// service port's endpoints PER REQUEST, then forward: to an endpoint on another host as an
// HTTP/2 stream on the pooled tunnel session, to one on this host through the inbound stack
// (the same policy and metrics as a call from another host). Only failures where nothing
// reached the peer's app (no session, a refused stream) move on to another endpoint; once a
// request stream is open the answer is the upstream's, or a 502.
import { Readable } from 'node:stream';
import { describeError } from '../../errors.js';
import type { Logger } from '../../sys/logger.js';
import { formatAddress } from '../address.js';
import type { EndpointState } from '../balance/endpoint-state.js';
import type { MeshState } from '../mesh-state.js';
import type { OutboundContext } from '../outbound/identify.js';
import { clientOf, type ServiceTarget } from '../outbound/opaque.js';
import { planEndpoint } from '../outbound/plan.js';
import { type TunnelPool, TunnelStreamError } from '../tunnel/index.js';
import { type AgentReason, agentAnswer, isGrpc, tunnelRequestHeaders } from './outbound-wire.js';
import type { InboundHttpHandler, L7Request, L7Response } from './types.js';
import { REASON_HEADER, UNDELIVERED_HEADER } from './wire-headers.js';

export interface ExchangeDeps {
  state: MeshState;
  tunnels: () => TunnelPool | undefined;
  /** The inbound stack: same-host calls go through it. */
  inbound: InboundHttpHandler;
  log: Logger;
  tunnelPort: number;
  /** Endpoints tried per request when nothing reached the previous one. */
  maxAttempts: number;
  now?: () => number;
}

export interface Exchanged {
  response: L7Response;
  /** Where it went: "ip:port" or "tunnel <node> -> ip:port"; undefined when nowhere. */
  endpoint: string | undefined;
  /** Call when the response has been delivered (or abandoned): in-flight accounting. */
  done: () => void;
}

export async function exchange(
  ctx: OutboundContext,
  target: ServiceTarget,
  request: L7Request,
  /** Undefined: the request has no body (END_STREAM with its headers). */
  body: L7Request['body'] | undefined,
  deps: ExchangeDeps,
  /** The circuit breaker's hold on the request: told when its head goes out (no longer pending). */
  breaker?: { sent(): void },
): Promise<Exchanged> {
  const { state } = deps;
  const now = deps.now ?? Date.now;
  const grpc = isGrpc(request.headers['content-type']);
  const answer = (reason: AgentReason, detail: string): Exchanged => ({
    response: agentResponse(reason, detail, grpc),
    endpoint: undefined,
    done: () => {},
  });
  const pool = state.pool(target.service, target.port.port);
  const dst = ctx.conn.target;
  const exact =
    target.via === 'endpoint'
      ? (s: EndpointState) => s.endpoint.address === dst.address && s.endpoint.port === dst.port
      : undefined;
  const client = clientOf(ctx.conn.client);
  // Per request: p2cEwma unless the TrafficPolicy says otherwise; ringHash needs its key.
  const pick = {
    request: true,
    hashKey: pool?.hashKey({
      headers: request.headers,
      authority: request.authority,
      ...(client ? { sourceIp: client.address } : {}),
    }),
  };
  /** Passive failure accrual: enough failures in a row eject the endpoint for a while. */
  const endpointFailed = (chosen: EndpointState, err: string): void => {
    if (chosen.failed(now()))
      deps.log.warn(
        { service: target.service, endpoint: chosen.endpoint.workload, err },
        'endpoint ejected',
      );
  };
  const tried = new Set<EndpointState>();
  let lastError = `no usable endpoint of ${target.service}:${target.port.port}`;
  for (let attempt = 0; attempt < deps.maxAttempts; attempt++) {
    const chosen = exact ? pool?.find(exact, tried) : pool?.pick(tried, pick);
    if (!chosen) break;
    tried.add(chosen);
    const ep = chosen.endpoint;
    const tunnels = deps.tunnels();
    const plan = planEndpoint({
      endpointNode: ep.node,
      thisNode: state.node,
      sourceSpiffeId: ctx.source?.tunnel.spiffeId,
      tunnels: tunnels !== undefined,
    });
    if (plan.kind === 'no_identity') return answer('no_identity', plan.reason);
    // Latency for the balancer: from the request going out to its response head, in
    // fractions of a millisecond (a mesh hop takes one or two).
    let sent = performance.now();
    chosen.active += 1;
    const release = () => {
      chosen.active -= 1;
    };
    if (plan.kind === 'local') {
      // Same host: the inbound stack authorizes and delivers; it answers every failure itself.
      breaker?.sent();
      const response = await deps.inbound({
        peer: {
          spiffeId: ctx.source?.tunnel.spiffeId,
          address: client?.address ?? ep.address,
          port: client?.port ?? 0,
        },
        target: { address: ep.address, port: ep.port },
        client,
        request: { ...request, body: body ?? request.body },
      });
      if (undelivered(response)) {
        // The app is not there: an endpoint failure; a bodiless request may go elsewhere.
        lastError = response.reason ?? 'the app could not be reached';
        endpointFailed(chosen, lastError);
        if (body === undefined && attempt + 1 < deps.maxAttempts) {
          response.body.resume();
          release();
          continue;
        }
      } else answered(chosen, response, sent, now(), endpointFailed);
      return { response, endpoint: formatAddress(ep), done: release };
    }
    try {
      const response = await tunnels!.request({
        source: ctx.source!.tunnel,
        peer: {
          address: ep.address,
          port: deps.tunnelPort,
          ...(plan.expectedSpiffeId ? { expectedSpiffeId: plan.expectedSpiffeId } : {}),
        },
        headers: tunnelRequestHeaders(request, { address: ep.address, port: ep.port }, client),
        body,
        signal: request.signal,
        onSent: () => {
          breaker?.sent();
          sent = performance.now();
        },
      });
      if (undelivered(response)) {
        // The peer's agent could not reach its app: nothing was delivered, so a bodiless
        // request may go to another endpoint; either way the endpoint failed.
        lastError = String(response.headers[REASON_HEADER] ?? 'the app could not be reached');
        endpointFailed(chosen, lastError);
        if (body === undefined && attempt + 1 < deps.maxAttempts) {
          response.body.resume();
          release();
          continue;
        }
      } else answered(chosen, response, sent, now(), endpointFailed);
      return {
        response,
        endpoint: `tunnel ${ep.node} -> ${formatAddress(ep)}`,
        done: release,
      };
    } catch (err) {
      release();
      lastError = describeError(err);
      if (!(err instanceof TunnelStreamError) || !err.retryable) {
        // The stream was open: the request may have reached the app; no retry (issue 13).
        return answer('upstream_failed', `${target.service}: ${lastError}`);
      }
      endpointFailed(chosen, lastError);
    }
  }
  return answer('no_healthy_endpoint', lastError);
}

/**
 * An endpoint answered: outlier detection counts a 5xx as its failure (Envoy's consecutive 5xx;
 * a gRPC status travels in trailers and is not judged), anything else as a success; the balancer
 * gets its latency.
 */
function answered(
  chosen: EndpointState,
  response: L7Response,
  sentAt: number,
  now: number,
  failed: (chosen: EndpointState, err: string) => void,
): void {
  if (response.status >= 500) failed(chosen, `answered ${response.status}`);
  else chosen.succeeded();
  chosen.observe(performance.now() - sentAt, now);
}

function agentResponse(reason: AgentReason, detail: string, grpc: boolean): L7Response {
  const a = agentAnswer(reason, detail, grpc);
  return {
    status: a.status,
    headers: a.headers,
    body: bodyOf(a.text),
    trailers: () => undefined,
    reason,
  };
}

/** A Readable that yields the text once (or nothing) and ends. */
function bodyOf(text: string): Readable {
  return Readable.from(text === '' ? [] : [Buffer.from(text)], { objectMode: false });
}

/** An answer from an agent that reached no app (see UNDELIVERED_HEADER). */
function undelivered(response: L7Response): boolean {
  return response.headers[UNDELIVERED_HEADER] === 'connect_failed';
}
