// gRPC handlers of the Identity service: authenticate the caller, then ask IdentityService (or
// NodeAdmin, for a node leaving). What an operator must know is logged here: a join (info), a
// replacement of an existing node (warn, with both addresses), each refused registration
// (warn, naming node and service), a node leaving (info).
import type * as grpc from '@grpc/grpc-js';
import type * as m from '../../api/messages.js';
import type { IdentityService } from '../identity/identity-service.js';
import type { NodeAdmin } from '../identity/node-admin.js';
import type { RevocationLookup } from '../identity/revocation-list.js';
import { Refusal } from '../refusal.js';
import type { NodeLiveness } from '../sync/node-liveness.js';
import { type HandlerContext, unaryHandler } from './handler.js';
import { requireNode } from './peer-identity.js';
import type { SyncStreams } from './sync-handler.js';

export interface IdentityHandlerDeps extends HandlerContext {
  identity: IdentityService;
  nodes: NodeAdmin;
  trustDomain: string;
  revocations: RevocationLookup;
  streams: SyncStreams;
  /** Any authenticated call counts as a sign of life (a node that just joined or registered
   * must not be swept as silent before its first heartbeat). */
  liveness: NodeLiveness;
  onJoined(node: string): void;
}

export function identityHandlers(deps: IdentityHandlerDeps): grpc.UntypedServiceImplementation {
  const { identity, trustDomain, liveness } = deps;
  const caller = (call: Parameters<typeof requireNode>[0]): string => {
    const node = requireNode(call, trustDomain, deps.revocations);
    liveness.seen(node);
    return node;
  };
  return {
    // No certificate needed: the token is the credential.
    Join: unaryHandler<m.JoinRequest, m.JoinResponse>('Join', deps, async (call) => {
      const node = call.request.hostname;
      const { response, replaced } = await identity.join(call.request);
      liveness.seen(node);
      deps.onJoined(node);
      if (replaced !== undefined) {
        // The streams still open are the replaced host's, on certificates now revoked.
        deps.streams.endNode(
          node,
          new Refusal(
            'node_replaced',
            `node ${node} was replaced by a re-join (a token with --replace): its certificates are revoked`,
          ),
        );
        deps.log.warn(
          { node, oldAddresses: replaced.addresses, addresses: call.request.addresses },
          'node replaced by a re-join',
        );
      } else {
        deps.log.info({ node, addresses: call.request.addresses }, 'node joined');
      }
      return response;
    }),
    RenewNode: unaryHandler<m.CsrRequest, m.CertificateResponse>(
      'RenewNode',
      deps,
      async (call) => {
        const node = caller(call);
        return identity.renewNode(node, call.request.csrPem);
      },
    ),
    SignWorkload: unaryHandler<m.WorkloadCsrRequest, m.CertificateResponse>(
      'SignWorkload',
      deps,
      async (call) => {
        const node = caller(call);
        return identity.signWorkload(node, call.request.service, call.request.csrPem);
      },
    ),
    RegisterWorkloads: unaryHandler<m.RegisterWorkloadsRequest, m.RegisterWorkloadsResponse>(
      'RegisterWorkloads',
      deps,
      async (call) => {
        const node = caller(call);
        const { names, refused } = await identity.registerWorkloads(node, call.request);
        for (const r of refused) {
          deps.metrics.refusals.inc({ method: 'RegisterWorkloads', reason: r.reason });
          deps.log.warn(
            { node, workload: r.name, service: r.service, reason: r.reason },
            `workload refused: ${r.message}`,
          );
        }
        deps.log.info({ node, workloads: names }, 'workloads registered');
        return { names, refused };
      },
    ),
    Leave: unaryHandler<m.LeaveRequest, m.LeaveResponse>('Leave', deps, async (call) => {
      const node = caller(call);
      const res = await deps.nodes.removeNode(node, 'left');
      deps.streams.endNode(
        node,
        new Refusal('node_left', `node ${node} left the mesh: its certificates are revoked`),
      );
      deps.log.info({ node, ...res }, 'node left the mesh');
      return {
        revokedCertificates: res.revokedCertificates,
        workloadsRemoved: res.workloadsRemoved,
      };
    }),
  };
}
