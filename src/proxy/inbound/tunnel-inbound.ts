// The inbound path for connections arriving through the mTLS tunnel (15008): the tunnel
// server has verified the peer's certificate; here each CONNECT is authorized (only a workload
// of this host, named by the address and port it is registered at, then AuthorizationPolicy
// on the peer's SPIFFE ID, then the service's rate limit) and recorded from its start to its end.
import { parseSpiffeId } from '../../api/spiffe.js';
import type { EndpointView } from '../../controlplane-client/mesh-view.js';
import { formatAddress } from '../address.js';
import type { MeshState } from '../mesh-state.js';
import { rateLimited } from '../resilience/inbound-rate-limit.js';
import type { Telemetry } from '../telemetry.js';
import type {
  AuthorizeHook,
  TunnelAccessRecord,
  TunnelPeer,
  TunnelStreamObserver,
  TunnelTarget,
} from '../tunnel/index.js';
import { authorizeL4 } from './authorize.js';

/** Where a CONNECT may go: a registered workload of this host, or nowhere, and why. */
export type InboundTarget =
  | { kind: 'workload'; endpoint: EndpointView }
  | { kind: 'not_a_workload'; reason: string };

/**
 * The tunnel reaches this host's mesh workloads only, at the address and port each is
 * registered at: never an open relay to other ports, nor to a workload's port on another
 * local address (loopback, where an app may trust its callers).
 */
export function inboundTarget(state: MeshState, target: TunnelTarget): InboundTarget {
  const endpoint = state.localEndpoint(target);
  if (endpoint) return { kind: 'workload', endpoint };
  return {
    kind: 'not_a_workload',
    reason: `${formatAddress(target)} is not a workload of this host (${state.node}): a CONNECT must name the address and port a workload is registered at`,
  };
}

export function tunnelAuthorizer(state: MeshState, telemetry: Telemetry): AuthorizeHook {
  return ({ peer, target }) => {
    const where = inboundTarget(state, target);
    if (where.kind === 'not_a_workload') {
      telemetry.decision('inbound', 'unknown', false, {
        source: peer.spiffeId,
        reason: where.reason,
      });
      return { allow: false, reason: where.reason };
    }
    const service = where.endpoint.service;
    const decision = authorizeL4(state.authorizationPolicies(service), {
      principal: peer.spiffeId,
      port: target.port,
    });
    telemetry.decision(
      'inbound',
      service,
      decision.allow,
      decision.allow ? undefined : { source: peer.spiffeId, reason: decision.reason },
    );
    if (!decision.allow) return { allow: false, reason: decision.reason };
    // The service's rate limit: one token per connection.
    const limited = rateLimited(state, service);
    if (limited === undefined) return { allow: true };
    return {
      allow: false,
      reason: limited.detail,
      rateLimited: { retryAfter: limited.retryAfter },
    };
  };
}

/**
 * One connection record per tunnel stream, opened when the stream arrives and closed with its
 * access record: the labels are fixed at the start, so the open-connections gauge is
 * decremented exactly as it was incremented.
 */
export function tunnelAccessRecorder(state: MeshState, telemetry: Telemetry): TunnelStreamObserver {
  // What a record takes from its peer is the same for every stream of a session (one peer
  // object per session): worked out once.
  const peers = new WeakMap<TunnelPeer, { src: string; service: string }>();
  const fromPeer = (peer: TunnelPeer) => {
    let known = peers.get(peer);
    if (known === undefined) {
      const id = parseSpiffeId(peer.spiffeId);
      known = { src: formatAddress(peer), service: id?.kind === 'svc' ? id.name : 'unknown' };
      peers.set(peer, known);
    }
    return known;
  };
  return ({ peer, authority, target }) => {
    const known = fromPeer(peer);
    const record = {
      direction: 'inbound' as const,
      src: known.src,
      dst: target ? formatAddress(target) : authority,
      src_service: known.service,
      dst_service: (target && state.localEndpoint(target)?.service) || 'unknown',
      src_identity: peer.spiffeId,
      security: 'mtls',
    };
    const started = process.hrtime.bigint();
    telemetry.open(record);
    return (r: TunnelAccessRecord) =>
      telemetry.close(
        {
          ...record,
          // The original client as the peer reported it; the peer agent's own address apart.
          src: formatAddress(r.client ?? peer),
          peer: known.src,
          ...(r.clientPreserved !== undefined ? { src_preserved: r.clientPreserved } : {}),
          ...(r.clientUnverified ? { src_claimed: formatAddress(r.clientUnverified) } : {}),
          bytes_sent: r.bytesToTarget,
          bytes_received: r.bytesFromTarget,
          close_reason: r.reason,
          ...(r.detail ? { error: r.detail } : {}),
        },
        started,
      );
  };
}
