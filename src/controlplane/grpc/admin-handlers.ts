// gRPC handlers of the Admin service (the CLI): resources, join tokens, nodes. Admin
// certificate required on every call.
import type * as grpc from '@grpc/grpc-js';
import type * as m from '../../api/messages.js';
import type { ControlPlaneConfig } from '../config.js';
import type { NodeRecord } from '../identity/node-record.js';
import { storeNewToken } from '../identity/tokens.js';
import { invalidRequest } from '../refusal.js';
import type { ApplyItem, ResourceRegistry } from '../registry/resource-registry.js';
import { NODES_PREFIX } from '../store/keys.js';
import type { Store } from '../store/store.js';
import type { NodeLiveness } from '../sync/node-liveness.js';
import { type HandlerContext, unaryHandler } from './handler.js';
import { requireAdmin } from './peer-identity.js';

export interface AdminHandlerDeps extends HandlerContext {
  store: Store;
  registry: ResourceRegistry;
  liveness: NodeLiveness;
  config: ControlPlaneConfig;
  caPin: string;
}

function applyItems(req: m.ApplyRequest): ApplyItem[] {
  return (req.resources ?? []).map((r, i) => {
    const source = r.source || `${req.source || 'request'}: resource ${i + 1}`;
    try {
      return { document: JSON.parse(r.json) as unknown, source };
    } catch {
      throw invalidRequest('resource_json', `${source}: not valid JSON`);
    }
  });
}

export async function createToken(
  deps: Pick<AdminHandlerDeps, 'store' | 'config' | 'metrics' | 'caPin'>,
  ttlMs: number,
  description: string,
): Promise<m.CreateTokenResponse> {
  const { token, record } = await storeNewToken(
    deps.store,
    ttlMs > 0 ? ttlMs : deps.config.tokenTtl,
    description,
  );
  deps.metrics.tokensCreated.inc();
  return { token, expiresUnixMs: record.expiresAtMs, caPin: deps.caPin };
}

export async function listNodes(
  deps: Pick<AdminHandlerDeps, 'store' | 'liveness'>,
): Promise<m.NodeInfo[]> {
  const { entries } = await deps.store.list<NodeRecord>(NODES_PREFIX);
  return entries.map(({ value: n }) => {
    const live = deps.liveness.get(n.name);
    return {
      name: n.name,
      spiffeId: n.spiffeId,
      addresses: n.addresses,
      lastHeartbeatUnixMs: live?.lastHeartbeatMs ?? 0,
      ackedVersion: live?.ackedVersion ?? 0,
      state: (live?.connections ?? 0) > 0 ? 'connected' : 'disconnected',
      lastNack: live?.lastNack ?? '',
    };
  });
}

export function adminHandlers(deps: AdminHandlerDeps): grpc.UntypedServiceImplementation {
  const td = deps.config.trustDomain;
  return {
    Apply: unaryHandler<m.ApplyRequest, m.ApplyResponse>('Apply', deps, async (call) => {
      const admin = requireAdmin(call, td);
      const results = await deps.registry.apply(applyItems(call.request));
      const changed = results.filter((r) => r.outcome !== 'unchanged');
      if (changed.length > 0)
        deps.log.info(
          { admin, changed: changed.map((r) => `${r.kind}/${r.name} ${r.outcome}`) },
          'resources applied',
        );
      return { results };
    }),
    Get: unaryHandler<m.GetRequest, m.GetResponse>('Get', deps, async (call) => {
      requireAdmin(call, td);
      return { resources: await deps.registry.get(call.request.kind, call.request.name) };
    }),
    Delete: unaryHandler<m.DeleteRequest, m.DeleteResponse>('Delete', deps, async (call) => {
      const admin = requireAdmin(call, td);
      await deps.registry.delete(call.request.kind, call.request.name);
      deps.log.info(
        { admin, kind: call.request.kind, name: call.request.name },
        'resource deleted',
      );
      return { deleted: true };
    }),
    CreateToken: unaryHandler<m.CreateTokenRequest, m.CreateTokenResponse>(
      'CreateToken',
      deps,
      async (call) => {
        const admin = requireAdmin(call, td);
        const res = await createToken(
          deps,
          (call.request.ttlSeconds ?? 0) * 1000,
          call.request.description ?? '',
        );
        deps.log.info(
          { admin, expires: new Date(res.expiresUnixMs).toISOString() },
          'join token created',
        );
        return res;
      },
    ),
    ListNodes: unaryHandler<m.ListNodesRequest, m.ListNodesResponse>(
      'ListNodes',
      deps,
      async (call) => {
        requireAdmin(call, td);
        return { nodes: await listNodes(deps) };
      },
    ),
  };
}
