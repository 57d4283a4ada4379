// Stage "authorize" of the inbound HTTP stack, and the version the app is spoken to: pure
// decisions on one request, from the snapshot's state. The target must be a workload of this
// host at its registered address and port (as for CONNECT), then AuthorizationPolicy judges
// the caller; the app gets the version its caller spoke, unless its Service port says http2
// or grpc (then h2c, which is all such an app speaks).
import type { ServicePort } from '../../api/resources/index.js';
import type { EndpointView } from '../../controlplane-client/mesh-view.js';
import type { AuthzDecision, NamedPolicy } from '../inbound/authorize.js';
import { authorizeL4, authorizeRequest } from '../inbound/authorize.js';
import { inboundTarget } from '../inbound/tunnel-inbound.js';
import type { MeshState } from '../mesh-state.js';
import type { HttpVersion, InboundCall } from './types.js';

/** What AuthorizationPolicy is asked about one request. */
export interface InboundAuthzRequest {
  /** The caller's SPIFFE ID (undefined: none, plaintext). */
  principal: string | undefined;
  /** The workload port (as registered). */
  port: number;
  method: string;
  /** `:path` with its query. */
  path: string;
  /** Whether the request is gRPC (content-type application/grpc*). */
  grpc: boolean;
}

/** The policy decision on one request (methods, paths, gRPC calls: authorizeRequest). */
export type RequestAuthorizer = (
  policies: readonly NamedPolicy[],
  request: InboundAuthzRequest,
) => AuthzDecision;

export const authorizeAtL4: RequestAuthorizer = (policies, r) =>
  authorizeL4(policies, { principal: r.principal, port: r.port });

/** The L7 decision: AuthorizationPolicy's methods, paths and gRPC calls judged per request. */
export const authorizeAtL7: RequestAuthorizer = (policies, r) =>
  authorizeRequest(policies, {
    principal: r.principal,
    port: r.port,
    method: r.method,
    path: r.path,
  });

export type InboundDecision =
  | {
      kind: 'serve';
      service: string;
      endpoint: EndpointView;
      /** What the app is spoken to. */
      version: HttpVersion;
      policy?: string;
    }
  | {
      kind: 'deny';
      /** "unknown" when the target is not a workload of this host. */
      service: string;
      reason: string;
      policy?: string;
    };

export function decideInbound(
  state: MeshState,
  call: InboundCall,
  grpc: boolean,
  authorize: RequestAuthorizer,
): InboundDecision {
  const where = inboundTarget(state, call.target);
  if (where.kind === 'not_a_workload')
    return { kind: 'deny', service: 'unknown', reason: where.reason };
  const { endpoint } = where;
  const service = endpoint.service;
  const verdict = authorize(state.authorizationPolicies(service), {
    principal: call.peer.spiffeId,
    port: endpoint.port,
    method: call.request.method,
    path: call.request.path,
    grpc,
  });
  const policy = verdict.policy === undefined ? {} : { policy: verdict.policy };
  if (!verdict.allow) return { kind: 'deny', service, reason: verdict.reason, ...policy };
  const ports = state.view?.services.get(service)?.ports ?? [];
  return {
    kind: 'serve',
    service,
    endpoint,
    version: appVersion(call.request.version, ports, endpoint.port),
    ...policy,
  };
}

/**
 * The version the app is spoken to: its caller's (orig-proto), except that a workload port
 * which a Service port declares http2 or grpc gets h2c whatever the caller spoke.
 */
export function appVersion(
  caller: HttpVersion,
  ports: readonly Pick<ServicePort, 'targetPort' | 'protocol'>[],
  workloadPort: number,
): HttpVersion {
  const forcesH2 = ports.some(
    (p) => p.targetPort === workloadPort && (p.protocol === 'http2' || p.protocol === 'grpc'),
  );
  return forcesH2 ? '2' : caller;
}
