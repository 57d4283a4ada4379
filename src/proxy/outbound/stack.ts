// The outbound mesh path, in the order a captured connection meets it:
//   accept (capture-listener) -> identify the caller -> route the destination (and plan what
//   it means) -> protocol (declared, or detected from the first bytes) -> the opaque stack
//   (per connection) or the HTTP stack (per request).
// Each stage is a pure decision (plan.ts, route.ts) and an executor; this file only composes.
import { describeError } from '../../errors.js';
import type { Logger } from '../../sys/logger.js';
import type { CapturedHandler } from '../capture-listener.js';
import { refuseConnection } from '../observed-relay.js';
import { identify, type OutboundContext } from './identify.js';
import { type OpaqueDeps, type ServiceTarget, serveOpaque, servePassthrough } from './opaque.js';
import { planOutbound } from './plan.js';
import { type ProtocolStageDeps, protocolOf } from './protocol.js';
import { routeOutbound } from './route.js';
import type { SourceIdentities } from './source-identity.js';

/** The HTTP stack (../http/outbound-server.ts): takes over a connection that speaks HTTP. */
export interface OutboundHttpStack {
  serve(ctx: OutboundContext, target: ServiceTarget, version: 'http1' | 'http2'): void;
}

export interface OutboundDeps extends OpaqueDeps, ProtocolStageDeps {
  /** Current mapping of local processes to workloads (undefined without a control plane). */
  identities: () => SourceIdentities | undefined;
  /** Serves connections whose protocol is HTTP; without it they are served opaque. */
  http: OutboundHttpStack | undefined;
  log: Logger;
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

async function handle(conn: Parameters<CapturedHandler>[0], deps: OutboundDeps): Promise<void> {
  const { state } = deps;
  // Identify: the caller's workload (or node) identity, and the record's first fields.
  const ctx = identify(conn, deps.identities());

  // Route: a mesh service port, or external (passthrough or refuse).
  const route = state.view
    ? routeOutbound(state.view, state.endpointIndex, conn.target)
    : ({ kind: 'passthrough' } as const);
  const plan = planOutbound(route);
  if (plan.kind === 'refuse') {
    // Opaque TCP has no way to say why: a reset, counted and logged.
    const { kind: _, ...why } = plan;
    return refuseConnection(conn, deps.telemetry, { ...ctx.record, ...why });
  }
  if (plan.kind === 'passthrough') return servePassthrough(ctx, deps);
  const target = { service: plan.service.name, port: plan.port, via: plan.via };

  // Protocol: declared tcp, or detected (the bytes read are put back).
  const choice = await protocolOf(conn.client, plan, deps);

  // HTTP stack: balanced and forwarded per request.
  if (choice.stack === 'http' && deps.http) return deps.http.serve(ctx, target, choice.version);

  // Opaque stack: balanced per connection, bytes relayed.
  return serveOpaque(ctx, target, deps);
}
