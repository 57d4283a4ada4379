// gRPC handlers of the Admin service (the CLI): resources, join tokens, nodes. Admin
// certificate required on every call.
import type * as grpc from '@grpc/grpc-js';
import type * as m from '../../api/messages.js';
import type { ControlPlaneConfig } from '../config.js';
import type { NodeAdmin } from '../identity/node-admin.js';
import {
  checkScope,
  listTokens,
  revokeToken,
  storeNewToken,
  tokenInfo,
} from '../identity/tokens.js';
import { invalidRequest, Refusal } from '../refusal.js';
import type { ApplyItem, ResourceRegistry } from '../registry/resource-registry.js';
import { getStats } from '../stats/get-stats.js';
import type { StatsShare } from '../stats/stats-share.js';
import type { Store } from '../store/store.js';
import { type HandlerContext, unaryHandler } from './handler.js';
import { requireAdmin } from './peer-identity.js';
import type { SyncStreams } from './sync-handler.js';

export interface AdminHandlerDeps extends HandlerContext {
  store: Store;
  registry: ResourceRegistry;
  nodes: NodeAdmin;
  streams: SyncStreams;
  config: ControlPlaneConfig;
  caPin: string;
  /** A one-time dashboard login token of this replica, and the port its dashboard is on. */
  dashboardLogin(): m.CreateDashboardLoginResponse;
  stats: StatsShare;
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
  req: m.CreateTokenRequest,
): Promise<m.CreateTokenResponse> {
  const scope = checkScope(req);
  const ttlMs = (req.ttlSeconds ?? 0) * 1000;
  const { token, record } = await storeNewToken(
    deps.store,
    ttlMs > 0 ? ttlMs : deps.config.tokenTtl,
    req.description ?? '',
    scope,
  );
  deps.metrics.tokensCreated.inc();
  return {
    token,
    expiresUnixMs: record.expiresAtMs,
    caPin: deps.caPin,
    info: tokenInfo(record, Date.now()),
  };
}

export function adminHandlers(deps: AdminHandlerDeps): grpc.UntypedServiceImplementation {
  const td = deps.config.trustDomain;
  return {
    Apply: unaryHandler<m.ApplyRequest, m.ApplyResponse>('Apply', deps, async (call) => {
      const admin = requireAdmin(call, td);
      const results = await deps.registry.apply(
        applyItems(call.request),
        call.request.source || 'request',
        { force: call.request.force === true },
      );
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
        const res = await createToken(deps, call.request);
        deps.log.info(
          {
            admin,
            token: res.info.id,
            node: res.info.node,
            services: res.info.services,
            replace: res.info.replace,
            expires: new Date(res.expiresUnixMs).toISOString(),
          },
          'join token created',
        );
        return res;
      },
    ),
    ListTokens: unaryHandler<m.ListTokensRequest, m.ListTokensResponse>(
      'ListTokens',
      deps,
      async (call) => {
        requireAdmin(call, td);
        return { tokens: await listTokens(deps.store) };
      },
    ),
    RevokeToken: unaryHandler<m.RevokeTokenRequest, m.RevokeTokenResponse>(
      'RevokeToken',
      deps,
      async (call) => {
        const admin = requireAdmin(call, td);
        const token = await revokeToken(deps.store, call.request.id ?? '');
        deps.log.info({ admin, token: token.id, node: token.node }, 'join token revoked');
        return { token };
      },
    ),
    ListNodes: unaryHandler<m.ListNodesRequest, m.ListNodesResponse>(
      'ListNodes',
      deps,
      async (call) => {
        requireAdmin(call, td);
        return { nodes: await deps.nodes.list() };
      },
    ),
    DeleteNode: unaryHandler<m.DeleteNodeRequest, m.DeleteNodeResponse>(
      'DeleteNode',
      deps,
      async (call) => {
        const admin = requireAdmin(call, td);
        const node = call.request.name ?? '';
        const res = await deps.nodes.removeNode(node, 'deleted');
        deps.stats.forget(node);
        deps.streams.endNode(
          node,
          new Refusal(
            'node_deleted',
            `node ${node} was removed from the mesh (weft delete node): its certificates are revoked; join again with a new token`,
          ),
        );
        deps.log.warn({ admin, node, ...res }, 'node deleted: its certificates are revoked');
        return res;
      },
    ),
    GetStats: unaryHandler<m.GetStatsRequest, m.GetStatsResponse>(
      'GetStats',
      deps,
      async (call) => {
        requireAdmin(call, td);
        return getStats(deps.stats, call.request);
      },
    ),
    SetNodeServices: unaryHandler<m.SetNodeServicesRequest, m.SetNodeServicesResponse>(
      'SetNodeServices',
      deps,
      async (call) => {
        const admin = requireAdmin(call, td);
        const { node, allow = [], disallow = [] } = call.request;
        const res = await deps.nodes.setServices(node ?? '', allow, disallow);
        deps.log.info({ admin, node, allow, disallow, ...res }, 'node services changed');
        return res;
      },
    ),
    CreateDashboardLogin: unaryHandler<
      m.CreateDashboardLoginRequest,
      m.CreateDashboardLoginResponse
    >('CreateDashboardLogin', deps, async (call) => {
      const admin = requireAdmin(call, td);
      const res = deps.dashboardLogin();
      deps.log.info({ admin, expires: new Date(res.expiresUnixMs) }, 'dashboard login link made');
      return res;
    }),
  };
}
