// The outbound mesh path, in the order a captured connection meets it:
//   accept (capture-listener) -> identify the caller -> route the destination -> balance over
//   the service's usable endpoints -> endpoint: this host directly, another host through the
//   pooled mTLS tunnel -> relay, with telemetry when it closes.
// A connect failure ejects the endpoint (passive accrual) and the next one is tried, before a
// single byte of the client's is read: opaque TCP is safe to retry only until then.
import { nodeSpiffeId, parseSpiffeId } from '../../api/spiffe.js';
import { describeError, isWeftError } from '../../errors.js';
import type { Logger } from '../../sys/logger.js';
import { formatAddress, unmapV4 } from '../address.js';
import type { EndpointState } from '../balance/endpoint-state.js';
import type { CapturedConnection, CapturedHandler } from '../capture-listener.js';
import { connectDirect } from '../endpoint/connect-direct.js';
import { authorizeL4 } from '../inbound/authorize.js';
import type { MeshState } from '../mesh-state.js';
import { observedRelay, refuseConnection, type Upstream } from '../observed-relay.js';
import type { Telemetry } from '../telemetry.js';
import type { TunnelPool, TunnelTarget } from '../tunnel/index.js';
import { routeOutbound } from './route.js';
import type { SourceIdentities, SourceIdentity } from './source-identity.js';

export interface OutboundDeps {
  state: MeshState;
  /** Current mapping of local processes to workloads (undefined without a control plane). */
  identities: () => SourceIdentities | undefined;
  /** Undefined until this host has a node certificate. */
  tunnels: () => TunnelPool | undefined;
  telemetry: Telemetry;
  log: Logger;
  /** The port peer agents' tunnel servers listen on (15008). */
  tunnelPort: number;
  connectTimeoutMs: number;
  /** Endpoints tried per connection before giving up. */
  maxAttempts: number;
}

export function createOutboundHandler(deps: OutboundDeps): CapturedHandler {
  return (conn) => {
    handle(conn, deps).catch((err) => {
      deps.log.error(
        { err: describeError(err), src: conn.source },
        'outbound connection failed unexpectedly',
      );
      conn.client.destroy();
    });
  };
}

async function handle(conn: CapturedConnection, deps: OutboundDeps): Promise<void> {
  const { state, telemetry } = deps;
  // Identify
  const source = deps.identities()?.forOwner(conn.owner);
  const base = {
    direction: 'outbound' as const,
    src: conn.source,
    dst: formatAddress(conn.target),
    src_service: source?.service ?? 'unknown',
    ...(source ? { src_identity: source.tunnel.spiffeId } : {}),
    ...(conn.owner
      ? { src_uid: conn.owner.uid, ...(conn.owner.unit ? { src_unit: conn.owner.unit } : {}) }
      : {}),
  };

  // Route
  const route = state.view
    ? routeOutbound(state.view, state.endpointIndex, conn.target)
    : ({ kind: 'passthrough' } as const);
  if (route.kind === 'no_such_port') {
    // Opaque TCP has no way to say why: a reset, counted and logged under the service.
    return refuseConnection(conn, deps.telemetry, {
      ...base,
      dst_service: route.service.name,
      close_reason: 'no_such_port',
      error: route.reason,
    });
  }
  if (route.kind === 'refuse') {
    return refuseConnection(conn, deps.telemetry, {
      ...base,
      dst_service: 'external',
      close_reason: 'refused',
      error: route.reason,
    });
  }
  if (route.kind === 'passthrough') {
    const upstream = await connectDirect(
      conn.target.address,
      conn.target.port,
      deps.connectTimeoutMs,
    ).catch((err) => err as Error);
    if (upstream instanceof Error) {
      return refuseConnection(conn, deps.telemetry, {
        ...base,
        dst_service: 'external',
        close_reason: 'connect_failed',
        error: describeError(upstream),
      });
    }
    return observedRelay(conn, { socket: upstream }, deps.telemetry, {
      ...base,
      dst_service: 'external',
      endpoint: base.dst,
      security: 'plaintext',
    });
  }

  // Balance: over the endpoints of this service port (those on its targetPort).
  const service = route.service.name;
  const record = { ...base, dst_service: service };
  const pool = state.pool(service, route.port.port);
  const exact =
    route.via === 'endpoint'
      ? (s: EndpointState) =>
          s.endpoint.address === conn.target.address && s.endpoint.port === conn.target.port
      : undefined;
  const tried = new Set<EndpointState>();
  let lastError = 'no endpoints';
  for (let attempt = 0; attempt < deps.maxAttempts; attempt++) {
    const chosen = exact ? pool?.find(exact, tried) : pool?.pick(tried);
    if (!chosen) break;
    tried.add(chosen);
    const ep = chosen.endpoint;

    // Endpoint
    const local = ep.node === state.node;
    if (local) {
      // Same host: no tunnel, so the inbound side never sees it; authorize here.
      const decision = authorizeL4(state.authorizationPolicies(service), {
        principal: source?.tunnel.spiffeId,
        port: ep.port,
      });
      telemetry.decision('outbound', service, decision.allow);
      if (!decision.allow)
        return refuseConnection(conn, deps.telemetry, {
          ...record,
          close_reason: 'denied',
          error: decision.reason,
        });
    }
    const tunnels = deps.tunnels();
    if (!local && (!source || !tunnels)) {
      return refuseConnection(conn, deps.telemetry, {
        ...record,
        close_reason: 'no_identity',
        error: 'this host has no certificate yet: it has not joined the control plane',
      });
    }
    chosen.active += 1;
    try {
      const upstream: Upstream = local
        ? { socket: await connectDirect(ep.address, ep.port, deps.connectTimeoutMs) }
        : {
            stream: await tunnels!.open({
              source: source!.tunnel,
              peer: {
                address: ep.address,
                port: deps.tunnelPort,
                expectedSpiffeId: peerIdentity(source!, ep.node),
              },
              target: { address: ep.address, port: ep.port },
              client: clientOf(conn),
            }),
          };
      chosen.succeeded();
      const endpoint = local ? formatAddress(ep) : `tunnel ${ep.node} -> ${formatAddress(ep)}`;
      return observedRelay(
        conn,
        upstream,
        deps.telemetry,
        { ...record, endpoint, security: local ? 'local' : 'mtls' },
        () => {
          chosen.active -= 1;
        },
      );
    } catch (err) {
      chosen.active -= 1;
      lastError = describeError(err);
      if (isWeftError(err, 'WEFT_E_DENIED')) {
        telemetry.decision('outbound', service, false);
        return refuseConnection(conn, deps.telemetry, {
          ...record,
          close_reason: 'denied',
          error: lastError,
        });
      }
      if (chosen.failed(Date.now()))
        deps.log.warn({ service, endpoint: ep.workload, err: lastError }, 'endpoint ejected');
    }
  }
  // No usable endpoint: close at once (counted), never leave the client hanging.
  return refuseConnection(conn, deps.telemetry, {
    ...record,
    close_reason: 'no_healthy_endpoint',
    error: lastError,
  });
}

/** The captured connection's own client (a local app), which the receiving agent logs and uses. */
function clientOf(conn: CapturedConnection): TunnelTarget | undefined {
  const address = unmapV4(conn.client.remoteAddress ?? '');
  const port = conn.client.remotePort ?? 0;
  return address === '' || port === 0 ? undefined : { address, port };
}

/** The node identity the endpoint's agent must present: same trust domain, its host name. */
function peerIdentity(source: SourceIdentity, node: string): string | undefined {
  const td = parseSpiffeId(source.tunnel.spiffeId)?.trustDomain;
  return td === undefined ? undefined : nodeSpiffeId(td, node);
}
