// Why a connection or a request ended: one vocabulary for every path (opaque relay, tunnel
// CONNECT streams, the HTTP stacks of both directions, the agent's own answers). It is the
// `close_reason` of every record, the `reason` label of weft_tcp_close_total and
// weft_tunnel_server_streams_total, and the `weft-reason` of a response the agent makes itself.
// Refusals at accept, before any record exists, have their own list (refusals.ts).

export const CLOSE_REASONS = [
  /** Ended normally: both sides closed (FIN, END_STREAM), or the response was delivered whole. */
  'done',
  /**
   * The caller's side broke off: the app's socket on the outbound side; on the inbound side the
   * tunnel stream (the peer agent reset it, or its session died) or the plaintext client.
   * Set by the relays (tcp-relay, splice), the HTTP stacks when the caller goes away.
   */
  'client_reset',
  /**
   * The upstream's side broke off after the exchange began: the endpoint socket, the tunnel
   * stream on the outbound side, the local app on the inbound side (mid-relay, mid-body).
   */
  'upstream_reset',
  /**
   * A request only: the upstream failed it before a response head (the tunnel stream broke, the
   * local app closed without answering); the agent answered 502 itself.
   */
  'upstream_failed',
  /** The upstream could not be reached (connect refused or timed out); 502 for requests. */
  'connect_failed',
  /**
   * No byte either way for the idle time (the listener's 1 h, the HTTP stack's idleMs, or
   * TrafficPolicy timeouts.idle); a request cut before its response head is answered 504.
   */
  'idle_timeout',
  /** TrafficPolicy timeouts.connect: no endpoint could be reached in time; 504. */
  'connect_timeout',
  /** TrafficPolicy retries.perTryTimeout: the last try got no response head in time; 504. */
  'per_try_timeout',
  /** TrafficPolicy timeouts.request (or the client's grpc-timeout) ran out; 504. */
  'request_timeout',
  /** 15006: no byte at all since accept for silentMs (a caller that only holds a descriptor). */
  'silent_timeout',
  /** Malformed input: an HTTP head (400), invalid HTTP/2 frames (GOAWAY), a bad CONNECT. */
  'bad_request',
  /** Asked for something this path does not carry (405 on the tunnel, 501 for an app's h2 CONNECT). */
  'unsupported',
  /** An HTTP connection that went on as opaque bytes after an Upgrade or CONNECT, then ended. */
  'upgraded',
  /** Refused by authorization (AuthorizationPolicy, mTLS strict, the locality check); 403. */
  'denied',
  /** This host has no certificate yet (not joined), so no tunnel can be opened; 503. */
  'no_identity',
  /** No endpoint of the service port could be used (none, all ejected, all failed); 503. */
  'no_healthy_endpoint',
  /**
   * A circuit breaker limit of the destination service (TrafficPolicy circuitBreaker) was
   * reached on the calling agent: 503 for a request, an opaque connection reset at once.
   */
  'circuit_open',
  /**
   * The destination service's rate limit (TrafficPolicy rateLimit) on the receiving agent had
   * no token: 429 with retry-after for a request or a CONNECT, a plaintext connection reset.
   */
  'rate_limited',
  /**
   * A request only: the destination service was over its adaptive concurrency limit
   * (TrafficPolicy adaptiveConcurrency, lower qos classes first) on the receiving agent, which
   * shed it before its app saw it; 503 (gRPC UNAVAILABLE, with grpc-retry-pushback-ms: -1).
   * Never retried, and not an endpoint failure for outlier detection: it is load.
   */
  'overloaded',
  /** A service VIP port the Service does not declare: reset at once. */
  'no_such_port',
  /** Not in the mesh and the Mesh's outbound policy is refuse: reset at once. */
  'refused',
  /**
   * A request only: its route's RequestRedirect answered it (the configured 3xx and Location),
   * with no upstream. A normal response, not an error: it carries no weft-reason.
   */
  'route_redirect',
  /** A request only: its route's Fault filter aborted it, with the configured status. */
  'fault_abort',
  /** A request only: its route's backends name no Service port, or all weigh 0; 500. */
  'route_backend_unavailable',
  /** A bug in weft: a handler threw where it never should; 500. */
  'internal',
] as const;

export type CloseReason = (typeof CLOSE_REASONS)[number];

/** Which side of a relay a tunnel stream is: the caller's (inbound) or the upstream's (outbound). */
export type StreamSide = 'client' | 'upstream';

/** How a relay of two sides ends: both done, or the first side that broke. */
export type RelayEnd = Extract<CloseReason, 'done' | 'client_reset' | 'upstream_reset'>;

/** How a splice of a tunnel stream and a socket ended (tunnel/splice.ts), as a close reason. */
export function spliceCloseReason(
  result: 'done' | 'stream_reset' | 'socket_reset',
  stream: StreamSide,
): RelayEnd {
  if (result === 'done') return 'done';
  const broken: StreamSide =
    result === 'stream_reset' ? stream : stream === 'client' ? 'upstream' : 'client';
  return broken === 'client' ? 'client_reset' : 'upstream_reset';
}

/** gRPC status codes the agent answers with (grpc/doc/statuscodes.md). */
export const GRPC_INTERNAL = 13;
export const GRPC_UNAVAILABLE = 14;
export const GRPC_PERMISSION_DENIED = 7;
export const GRPC_RESOURCE_EXHAUSTED = 8;
export const GRPC_DEADLINE_EXCEEDED = 4;
export const GRPC_UNIMPLEMENTED = 12;

/** Close reasons that never come with an answer of the agent's (connections only, or done). */
const NOT_ANSWERS = [
  'done',
  'silent_timeout',
  'upgraded',
  'no_such_port',
  'refused',
  'route_redirect',
] as const;

/** The reasons the agent answers a request with (weft-reason), and the status each gets. */
export type AnswerReason = Exclude<CloseReason, (typeof NOT_ANSWERS)[number]>;

const ANSWER_REASONS: ReadonlySet<string> = new Set(
  CLOSE_REASONS.filter((r) => !(NOT_ANSWERS as readonly string[]).includes(r)),
);

/**
 * An agent's answer's `weft-reason` as one of ours; undefined for anything else (a peer agent
 * of an older version wrote words there).
 */
export function parseAnswerReason(value: unknown): AnswerReason | undefined {
  return typeof value === 'string' && ANSWER_REASONS.has(value)
    ? (value as AnswerReason)
    : undefined;
}

/**
 * The HTTP status of the agent's own answer and its gRPC equivalent (grpc's
 * http-grpc-status-mapping: 502/503 UNAVAILABLE, 403 PERMISSION_DENIED, 429
 * RESOURCE_EXHAUSTED). A fault's abort is answered with its configured status instead
 * (agent-answer.ts's `status`); 500 without one.
 */
export function answerStatus(reason: AnswerReason): { http: number; grpc: number } {
  switch (reason) {
    case 'denied':
      return { http: 403, grpc: GRPC_PERMISSION_DENIED };
    case 'no_identity':
    case 'no_healthy_endpoint':
    case 'circuit_open':
    case 'overloaded':
      return { http: 503, grpc: GRPC_UNAVAILABLE };
    case 'rate_limited':
      return { http: 429, grpc: GRPC_RESOURCE_EXHAUSTED };
    case 'connect_failed':
    case 'upstream_failed':
    case 'upstream_reset':
    case 'client_reset':
      return { http: 502, grpc: GRPC_UNAVAILABLE };
    case 'idle_timeout':
    case 'connect_timeout':
    case 'per_try_timeout':
    case 'request_timeout':
      return { http: 504, grpc: GRPC_DEADLINE_EXCEEDED };
    case 'bad_request':
      return { http: 400, grpc: GRPC_INTERNAL };
    case 'unsupported':
      return { http: 501, grpc: GRPC_UNIMPLEMENTED };
    case 'internal':
    case 'route_backend_unavailable':
    case 'fault_abort':
      return { http: 500, grpc: GRPC_INTERNAL };
  }
}

/**
 * The reason of an agent's answer that carries no reason of ours (a peer agent of an older
 * version wrote words in weft-reason): the inverse of answerStatus, from the HTTP status or,
 * for gRPC's trailers-only answers (HTTP 200), the gRPC status.
 */
export function reasonOfAnswer(status: number, grpcStatus: number | undefined): AnswerReason {
  if (status === 200 && grpcStatus !== undefined) {
    if (grpcStatus === GRPC_PERMISSION_DENIED) return 'denied';
    if (grpcStatus === GRPC_RESOURCE_EXHAUSTED) return 'rate_limited';
    if (grpcStatus === GRPC_UNIMPLEMENTED) return 'unsupported';
    if (grpcStatus === GRPC_UNAVAILABLE) return 'upstream_failed';
    if (grpcStatus === GRPC_DEADLINE_EXCEEDED) return 'request_timeout';
    return 'internal';
  }
  if (status === 403) return 'denied';
  if (status === 429) return 'rate_limited';
  if (status === 400) return 'bad_request';
  if (status === 501 || status === 405) return 'unsupported';
  if (status === 503) return 'no_healthy_endpoint';
  if (status === 500) return 'internal';
  if (status === 504) return 'request_timeout';
  return status > 500 ? 'upstream_failed' : 'bad_request';
}
