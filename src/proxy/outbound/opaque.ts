// The opaque stack: bytes, balanced per connection. Balance over the service port's usable
// endpoints, reach the chosen one (this host directly, another through the pooled mTLS tunnel
// as a CONNECT stream), then relay with telemetry. A connect failure ejects the endpoint
// (passive accrual) and the next one is tried, before a single byte of the client's is read:
// opaque TCP is safe to retry only until then. The service's circuit breaker counts the
// connection (maxConnections) for its whole life. Also the passthrough of external destinations.
import { isIPv4, isIPv6 } from 'node:net';
import type { ServicePort } from '../../api/resources/index.js';
import { describeError, isWeftError, WeftError } from '../../errors.js';
import type { Logger } from '../../sys/logger.js';
import { formatAddress, unmapV4 } from '../address.js';
import type { EndpointState } from '../balance/endpoint-state.js';
import type { CloseReason } from '../close-reason.js';
import { connectDirect } from '../endpoint/connect-direct.js';
import { authorizeL4 } from '../inbound/authorize.js';
import type { MeshState } from '../mesh-state.js';
import { observedRelay, refuseConnection, type Upstream } from '../observed-relay.js';
import { sameHostInbound } from '../records.js';
import { rateLimited } from '../resilience/inbound-rate-limit.js';
import type { Resilience } from '../resilience/resilience.js';
import type { Telemetry } from '../telemetry.js';
import {
  callerAddressProblem,
  type TunnelPool,
  TunnelStreamError,
  type TunnelTarget,
} from '../tunnel/index.js';
import type { OutboundContext } from './identify.js';
import { planEndpoint } from './plan.js';

export interface OpaqueDeps {
  state: MeshState;
  /** Undefined until this host has a node certificate. */
  tunnels: () => TunnelPool | undefined;
  telemetry: Telemetry;
  log: Logger;
  /** The port peer agents' tunnel servers listen on (15008). */
  tunnelPort: number;
  connectTimeoutMs: number;
  /** Endpoints tried per connection before giving up. */
  maxAttempts: number;
  /** TrafficPolicy timeouts per service: connect (over connectTimeoutMs) and idle. */
  resilience: Resilience;
}

/** A mesh service port, as routed: by its VIP, or by one endpoint's own address. */
export interface ServiceTarget {
  service: string;
  port: ServicePort;
  via: 'vip' | 'endpoint';
}

/** An upstream reached for one connection, or why none was. */
export type OpaqueOpen =
  | {
      kind: 'open';
      upstream: Upstream;
      endpoint: string;
      security: 'local' | 'mtls';
      /** Call once the connection is over: the endpoint's in-flight count. */
      done: () => void;
    }
  | {
      kind: 'refused';
      close_reason: Extract<
        CloseReason,
        'no_identity' | 'denied' | 'rate_limited' | 'no_healthy_endpoint'
      >;
      error: string;
      /** rate_limited by this host's own bucket: whole seconds until its next token. */
      retryAfter?: number;
    };

export async function serveOpaque(
  ctx: OutboundContext,
  target: ServiceTarget,
  deps: OpaqueDeps,
): Promise<void> {
  const record = { ...ctx.record, dst_service: target.service };
  // circuit breaker: the service's maxConnections; beyond it the connection is reset at once.
  const breaker = deps.state.breaker(target.service);
  const full = breaker.openConnection();
  if (full !== undefined) {
    return refuseConnection(ctx.conn, deps.telemetry, {
      ...record,
      close_reason: 'circuit_open',
      error: breaker.describe(full),
    });
  }
  const opened = await openOpaque(ctx, target, deps);
  // TrafficPolicy timeouts.idle replaces the listener's idle time for this service's
  // connections (either way: no byte in either direction for that long closes it).
  const idleMs = policyOf(deps, target.service)?.idleMs;
  const conn =
    idleMs === undefined ? ctx.conn : { ...ctx.conn, timeouts: { ...ctx.conn.timeouts, idleMs } };
  if (opened.kind === 'refused') {
    breaker.closeConnection();
    return refuseConnection(conn, deps.telemetry, {
      ...record,
      close_reason: opened.close_reason,
      error: opened.error,
    });
  }
  const outbound = { ...record, endpoint: opened.endpoint, security: opened.security };
  observedRelay(conn, opened.upstream, deps.telemetry, outbound, {
    onDone: () => {
      breaker.closeConnection();
      opened.done();
    },
    ...(opened.security === 'local' ? { inbound: sameHostInbound(outbound) } : {}),
  });
}

/** Balance and endpoint: tries up to maxAttempts endpoints; nothing of the client's is read. */
export async function openOpaque(
  ctx: OutboundContext,
  target: ServiceTarget,
  deps: OpaqueDeps,
): Promise<OpaqueOpen> {
  const { state, telemetry } = deps;
  const { conn, source } = ctx;
  const service = target.service;
  const pool = state.pool(service, target.port.port);
  const exact =
    target.via === 'endpoint'
      ? (s: EndpointState) =>
          s.endpoint.address === conn.target.address && s.endpoint.port === conn.target.port
      : undefined;
  // TrafficPolicy timeouts.connect: reaching the endpoint (a local connect, or a tunnel
  // session and CONNECT stream); a timeout is a connect failure: the next endpoint is tried.
  const policyConnectMs = policyOf(deps, service)?.connectMs;
  const connectMs = policyConnectMs ?? deps.connectTimeoutMs;
  const tried = new Set<EndpointState>();
  let lastError = 'no endpoints';
  for (let attempt = 0; attempt < deps.maxAttempts; attempt++) {
    const chosen = exact ? pool?.find(exact, tried) : pool?.pick(tried);
    if (!chosen) break;
    tried.add(chosen);
    const ep = chosen.endpoint;
    const tunnels = deps.tunnels();
    const plan = planEndpoint({
      endpointNode: ep.node,
      thisNode: state.node,
      sourceSpiffeId: source?.tunnel.spiffeId,
      tunnels: tunnels !== undefined,
    });
    if (plan.kind === 'no_identity') {
      return { kind: 'refused', close_reason: 'no_identity', error: plan.reason };
    }
    if (plan.kind === 'local') {
      // Same host: no tunnel, so the inbound side never sees it; authorize here.
      const decision = authorizeL4(state.authorizationPolicies(service), {
        principal: source?.tunnel.spiffeId,
        port: ep.port,
      });
      telemetry.decision(
        'outbound',
        service,
        decision.allow,
        decision.allow
          ? undefined
          : { source: source?.tunnel.spiffeId ?? 'unknown', reason: decision.reason },
      );
      if (!decision.allow)
        return { kind: 'refused', close_reason: 'denied', error: decision.reason };
      // The receiving side's rate limit: this agent is the receiving side.
      const limited = rateLimited(state, service);
      if (limited !== undefined) {
        const { detail, retryAfter } = limited;
        return { kind: 'refused', close_reason: 'rate_limited', error: detail, retryAfter };
      }
    }
    chosen.active += 1;
    try {
      const upstream: Upstream =
        plan.kind === 'local'
          ? { socket: await connectDirect(ep.address, ep.port, connectMs) }
          : {
              stream: await within(
                tunnels!.open({
                  source: source!.tunnel,
                  peer: {
                    address: ep.address,
                    port: deps.tunnelPort,
                    ...(plan.expectedSpiffeId ? { expectedSpiffeId: plan.expectedSpiffeId } : {}),
                  },
                  target: { address: ep.address, port: ep.port },
                  client: clientOf(conn.client),
                }),
                policyConnectMs,
                `${service}: no tunnel stream to ${formatAddress(ep)} within the connect timeout (${policyConnectMs} ms)`,
              ),
            };
      chosen.succeeded();
      const local = plan.kind === 'local';
      return {
        kind: 'open',
        upstream,
        endpoint: local ? formatAddress(ep) : `tunnel ${ep.node} -> ${formatAddress(ep)}`,
        security: local ? 'local' : 'mtls',
        done: () => {
          chosen.active -= 1;
        },
      };
    } catch (err) {
      chosen.active -= 1;
      lastError = describeError(err);
      if (isWeftError(err, 'WEFT_E_DENIED')) {
        telemetry.decision('outbound', service, false);
        return { kind: 'refused', close_reason: 'denied', error: lastError };
      }
      if (err instanceof TunnelStreamError && err.status === 429) {
        // The peer's rate limit: the endpoint is well, the service is asked too much.
        return { kind: 'refused', close_reason: 'rate_limited', error: lastError };
      }
      if (chosen.failed(Date.now()))
        deps.log.warn({ service, endpoint: ep.workload, err: lastError }, 'endpoint ejected');
    }
  }
  // No usable endpoint: close at once (counted), never leave the client hanging.
  return { kind: 'refused', close_reason: 'no_healthy_endpoint', error: lastError };
}

/** Not the mesh's: a plain connection to the original destination, relayed. */
export async function servePassthrough(ctx: OutboundContext, deps: OpaqueDeps): Promise<void> {
  const { conn } = ctx;
  const record = { ...ctx.record, dst_service: 'external' };
  const upstream = await connectDirect(
    conn.target.address,
    conn.target.port,
    deps.connectTimeoutMs,
  ).catch((err) => err as Error);
  if (upstream instanceof Error) {
    return refuseConnection(conn, deps.telemetry, {
      ...record,
      close_reason: 'connect_failed',
      error: describeError(upstream),
    });
  }
  observedRelay(conn, { socket: upstream }, deps.telemetry, {
    ...record,
    endpoint: record.dst,
    security: 'plaintext',
  });
}

/**
 * The captured connection's own client (a local app), which the receiving agent logs and
 * connects from. Only an address a peer accepts (parseClientAddress: one canonical unicast
 * address) is sent: an app calling from loopback goes without it rather than being refused.
 */
export function clientOf(client: PeerOf): TunnelTarget | undefined {
  // Asked once per request on an HTTP connection: worked out once per connection.
  const known = clients.get(client);
  if (known !== undefined) return known === NONE ? undefined : known;
  const address = unmapV4(client.remoteAddress ?? '');
  const port = client.remotePort ?? 0;
  const c = { address, port };
  // The check a peer makes of the header (parseClientAddress), on the address itself.
  const ok =
    port !== 0 &&
    (isIPv4(address) || isIPv6(address)) &&
    callerAddressProblem(address) === undefined;
  clients.set(client, ok ? c : NONE);
  return ok ? c : undefined;
}

interface PeerOf {
  remoteAddress?: string | undefined;
  remotePort?: number | undefined;
}

const NONE = { address: '', port: 0 };
const clients = new WeakMap<PeerOf, TunnelTarget>();

function policyOf(deps: OpaqueDeps, service: string) {
  return deps.resilience.forService(service, deps.state.trafficPolicy(service))?.policy;
}

/**
 * The stream `opening` gives, or a WEFT_E_UNAVAILABLE after `ms` (undefined: no limit, and no
 * timer); a stream that opens after that is closed at once.
 */
function within<T extends { destroy(): void }>(
  opening: Promise<T>,
  ms: number | undefined,
  message: string,
): Promise<T> {
  if (ms === undefined) return opening;
  return new Promise((resolve, reject) => {
    let late = false;
    const timer = setTimeout(() => {
      late = true;
      reject(new WeftError('WEFT_E_UNAVAILABLE', message));
    }, ms);
    opening.then(
      (stream) => {
        clearTimeout(timer);
        if (late) stream.destroy();
        else resolve(stream);
      },
      (err) => {
        clearTimeout(timer);
        if (!late) reject(err);
      },
    );
  });
}
