// The inbound HTTP stack, read top to bottom as a request meets it: record, authorize, rate
// limit, overload (adaptive concurrency), local endpoint. It serves requests from peer agents
// (inbound-tunnel.ts) and same-host calls that the outbound stack hands it directly, so it
// assumes nothing about what carried the request.
// Every failure is a response it makes itself; one request record per call, whatever happens.
import { parseSpiffeId } from '../../api/spiffe.js';
import { describeError } from '../../errors.js';
import type { Logger } from '../../sys/logger.js';
import { httpSpan } from '../../telemetry/http-span.js';
import type { TapHeaders } from '../../telemetry/tap-record.js';
import {
  type ActiveSpan,
  setTraceHeaders,
  spanResult,
  type Tracer,
} from '../../telemetry/tracer.js';
import { formatAddress } from '../address.js';
import type { MeshState } from '../mesh-state.js';
import { type RequestRecord, recordError } from '../records.js';
import { AdaptiveConcurrency } from '../resilience/adaptive-concurrency.js';
import { rateLimited } from '../resilience/inbound-rate-limit.js';
import type { Telemetry } from '../telemetry.js';
import type { TunnelTarget } from '../tunnel/types.js';
import { type AgentAnswerSpec, agentAnswer, isGrpc } from './agent-answer.js';
import { onBodyEnd } from './body-end.js';
import { authorizeAtL7, decideInbound, type RequestAuthorizer } from './inbound-decision.js';
import type { LocalApps } from './local-app.js';
import { LocalConnectError } from './local-http1.js';
import type { RequestTelemetry } from './request-telemetry.js';
import type { InboundCall, InboundHttpHandler, L7Response } from './types.js';

export interface InboundHttpDeps {
  state: MeshState;
  /** Authorization decisions are counted with the L4 ones (weft_authz_decisions_total). */
  telemetry: Pick<Telemetry, 'decision'>;
  requests: RequestTelemetry;
  /** A server span per request; the app gets a traceparent whose parent is this span. */
  tracer: Tracer;
  apps: LocalApps;
  log: Logger;
  /** The policy decision per request; default authorizeRequest (principals, ports, methods, paths, gRPC). */
  authorize?: RequestAuthorizer;
  /** Adaptive concurrency and QoS classes per local service (default: its own, no metrics). */
  overload?: AdaptiveConcurrency;
}

export function createInboundHttpHandler(deps: InboundHttpDeps): InboundHttpHandler {
  const authorize = deps.authorize ?? authorizeAtL7;
  const overload = deps.overload ?? new AdaptiveConcurrency();
  return async (call) => {
    const started = process.hrtime.bigint();
    const { request, peer } = call;
    const grpc = isGrpc(request.headers);
    const id = parseSpiffeId(peer.spiffeId ?? '');
    const record = startRecord(call, id?.kind === 'svc' ? id.name : 'unknown');
    const span = deps.tracer.start(request.headers, () =>
      httpSpan('server', request, { src: record.src_service, dst: record.dst_service }),
    );
    setTraceHeaders(request.headers, span);
    record.trace_id = span.traceId;

    // authorize: a workload of this host, then AuthorizationPolicy.
    const decision = decideInbound(deps.state, call, grpc, authorize);
    record.dst_service = decision.service;
    deps.requests.start(record);
    deps.telemetry.decision(
      'inbound',
      decision.service,
      decision.kind === 'serve',
      decision.kind === 'deny'
        ? {
            source: peer.spiffeId ?? 'unknown',
            reason: decision.reason,
            method: request.method,
            path: request.path,
          }
        : undefined,
    );
    if (decision.policy !== undefined) record.policy = decision.policy;
    if (decision.kind === 'deny') {
      return answer(deps, call, record, span, started, {
        reason: 'denied',
        detail: decision.reason,
        grpc,
      });
    }

    // rate limit: the service's token bucket, for every caller (after authorization, so that
    // callers refused anyway take no token from those allowed).
    const limited = rateLimited(deps.state, decision.service);
    if (limited !== undefined) {
      const { detail, retryAfter } = limited;
      return answer(deps, call, record, span, started, {
        reason: 'rate_limited',
        detail,
        grpc,
        retryAfter,
      });
    }

    // overload: the service's adaptive concurrency limit; lower QoS classes are shed first.
    // After the rate limit, so that a request it refuses takes no slot.
    const spec = deps.state.trafficPolicy(decision.service);
    const admission = overload.admit(decision.service, spec, record.src_service);
    if (admission?.kind === 'shed') {
      const { detail } = admission;
      return answer(deps, call, record, span, started, {
        reason: 'overloaded',
        detail,
        grpc,
        noRetry: true,
      });
    }
    const ticket = admission?.ticket;

    // local endpoint: the app, in the version it speaks, from the caller's address.
    const target: TunnelTarget = {
      address: decision.endpoint.address,
      port: decision.endpoint.port,
    };
    record.endpoint = formatAddress(target);
    let exchange: Awaited<ReturnType<LocalApps['send']>>;
    try {
      exchange = await deps.apps.send(target, call.client, decision.version, request);
    } catch (err) {
      ticket?.release();
      if (request.signal.aborted) {
        const detail = 'the caller went away before the app answered';
        return answer(
          deps,
          call,
          record,
          span,
          started,
          { reason: 'client_reset', detail, grpc },
          0,
        );
      }
      const undelivered = err instanceof LocalConnectError;
      const detail = `${undelivered ? 'cannot reach' : 'no response from'} the app at ${record.endpoint}: ${describeError(err)}`;
      const reason = undelivered ? 'connect_failed' : 'upstream_failed';
      return answer(deps, call, record, span, started, { reason, detail, grpc, undelivered });
    }
    record.src_preserved = exchange.preserved;
    if (ticket !== undefined) {
      ticket.answered();
      onBodyEnd(exchange.response.body, () => ticket.release());
    }
    return observed(
      deps,
      exchange.response,
      record,
      span,
      started,
      request.signal,
      exchange.requestBytes,
      request.headers,
    );
  };
}

/** The record's fixed part, from the call. */
function startRecord(call: InboundCall, srcService: string): RequestRecord {
  const { request, peer } = call;
  // The original client when its agent vouched for it; else the peer itself.
  const src = formatAddress(call.client ?? peer);
  // Through the tunnel, the peer agent's own address too (a same-host caller is its own peer).
  const via = call.client ? formatAddress(peer) : src;
  // Optional fields set in place, in the access log's order: no temporary objects per request.
  const record: RequestRecord = {
    direction: 'inbound',
    src_service: srcService,
    dst_service: 'unknown',
    route: 'default',
    method: request.method,
    authority: request.authority,
    path: request.path,
    protocol: request.version === '1.1' ? 'HTTP/1.1' : 'HTTP/2',
    status: 0,
    src,
  } as RequestRecord;
  if (via !== src) record.peer = via;
  if (call.clientUnverified) record.src_claimed = formatAddress(call.clientUnverified);
  if (peer.spiffeId) record.src_identity = peer.spiffeId;
  record.request_bytes = 0;
  record.response_bytes = 0;
  record.close_reason = 'done';
  return record;
}

/** The agent's own answer, recorded; the unread request body is drained and dropped. */
function answer(
  deps: InboundHttpDeps,
  call: InboundCall,
  record: RequestRecord,
  span: ActiveSpan,
  started: bigint,
  what: AgentAnswerSpec,
  /** The status to record when not the answer's own (0: the caller got none). */
  recorded?: number,
): L7Response {
  call.request.body.resume();
  record.close_reason = what.reason;
  record.error = what.detail;
  const response = agentAnswer(what);
  const { signal } = call.request;
  const { headers } = call.request;
  return observed(deps, response, record, span, started, signal, () => 0, headers, recorded);
}

/**
 * The response as it is read: its body bytes counted and its end (or break) closing the record.
 * The body is left paused for its reader: a listener of 'data' on a paused stream sees every
 * chunk its reader takes without starting the flow itself (so back pressure is the reader's).
 */
function observed(
  deps: InboundHttpDeps,
  response: L7Response,
  record: RequestRecord,
  /** The request's server span, ended with its record. */
  span: ActiveSpan,
  started: bigint,
  signal: AbortSignal,
  requestBytes: () => number,
  /** The request's headers, for a tap that asks for them. */
  headers: TapHeaders,
  status = response.status,
): L7Response {
  const { body } = response;
  let bytes = 0;
  body.pause();
  body.on('data', (chunk: Buffer) => {
    bytes += chunk.length;
  });
  const grpcHeader = response.headers['grpc-status'];
  onBodyEnd(body, (err) => {
    record.status = status;
    record.response_bytes = bytes;
    record.request_bytes = requestBytes();
    const grpc = response.trailers()?.['grpc-status'] ?? grpcHeader;
    if (grpc !== undefined) record.grpc_status = Number(grpc);
    if (err && record.close_reason === 'done') {
      record.close_reason = signal.aborted ? 'client_reset' : 'upstream_reset';
      record.error = describeError(err);
    }
    deps.requests.finish(record, started, headers);
    const error = recordError(record);
    span.end(spanResult(record.status, record.grpc_status, error));
  });
  return response;
}
