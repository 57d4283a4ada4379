// gRPC handlers of the Identity service: authenticate the caller, then ask IdentityService.
import type * as grpc from '@grpc/grpc-js';
import type * as m from '../../api/messages.js';
import type { IdentityService } from '../identity/identity-service.js';
import type { NodeLiveness } from '../sync/node-liveness.js';
import { type HandlerContext, unaryHandler } from './handler.js';
import { requireNode } from './peer-identity.js';

export interface IdentityHandlerDeps extends HandlerContext {
  identity: IdentityService;
  trustDomain: string;
  /** Any authenticated call counts as a sign of life (a node that just joined or registered
   * must not be swept as silent before its first heartbeat). */
  liveness: NodeLiveness;
  onJoined(node: string): void;
}

export function identityHandlers(deps: IdentityHandlerDeps): grpc.UntypedServiceImplementation {
  const { identity, trustDomain, liveness } = deps;
  const caller = (call: Parameters<typeof requireNode>[0]): string => {
    const node = requireNode(call, trustDomain);
    liveness.seen(node);
    return node;
  };
  return {
    // No certificate needed: the token is the credential.
    Join: unaryHandler<m.JoinRequest, m.JoinResponse>('Join', deps, async (call) => {
      const res = await identity.join(call.request);
      liveness.seen(call.request.hostname);
      deps.onJoined(call.request.hostname);
      deps.log.info(
        { node: call.request.hostname, addresses: call.request.addresses },
        'node joined',
      );
      return res;
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
        const names = await identity.registerWorkloads(node, call.request);
        deps.log.info({ node, workloads: names }, 'workloads registered');
        return { names };
      },
    ),
  };
}
