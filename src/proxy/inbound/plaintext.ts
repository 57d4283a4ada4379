// The inbound path for plaintext connections captured on 15006: callers outside the mesh
// (hosts without an agent, or ports a peer did not tunnel). The Mesh's mTLS mode decides:
// strict refuses plaintext to a mesh workload's port, permissive lets it through, labelled.
// AuthorizationPolicy applies with no principal, so an ALLOW list shuts plaintext out; then the
// service's rate limit, one token per connection (refused with a reset: TCP has no 429).
// Ports that belong to no mesh workload are not the mesh's business and are relayed.
// Either way the application is reached from the caller's address where the host allows it.
import { describeError } from '../../errors.js';
import type { Logger } from '../../sys/logger.js';
import { formatAddress, unmapV4 } from '../address.js';
import type { CapturedConnection, CapturedHandler } from '../capture-listener.js';
import type { CloseReason } from '../close-reason.js';
import type { LocalConnector } from '../endpoint/connect-local.js';
import type { MeshState } from '../mesh-state.js';
import { observedRelay, refuseConnection } from '../observed-relay.js';
import { rateLimited } from '../resilience/inbound-rate-limit.js';
import type { Telemetry } from '../telemetry.js';
import { authorizeL4 } from './authorize.js';

export interface PlaintextInboundDeps {
  state: MeshState;
  telemetry: Telemetry;
  log: Logger;
  /** Connects to the application, from the caller's address where it can. */
  local: Pick<LocalConnector, 'connect'>;
  connectTimeoutMs: number;
}

export function createPlaintextInboundHandler(deps: PlaintextInboundDeps): CapturedHandler {
  return (conn) => {
    handle(conn, deps).catch((err) => {
      deps.log.error(
        { err: describeError(err), src: conn.source },
        'inbound connection failed unexpectedly',
      );
      conn.client.destroy();
    });
  };
}

async function handle(conn: CapturedConnection, deps: PlaintextInboundDeps): Promise<void> {
  const { state, telemetry } = deps;
  const service = state.localService(conn.target.port);
  const record = {
    direction: 'inbound' as const,
    src: conn.source,
    dst: formatAddress(conn.target),
    src_service: 'unknown',
    dst_service: service ?? 'unknown',
    security: 'plaintext',
  };
  const refuse = (close_reason: CloseReason, error: string) =>
    refuseConnection(conn, telemetry, { ...record, close_reason, error });

  if (service !== undefined) {
    if (state.mtlsMode === 'strict') {
      const reason = 'mTLS is strict: plaintext to a mesh service is refused';
      telemetry.decision('inbound', service, false, { source: 'unknown', reason });
      return refuse('denied', reason);
    }
    const decision = authorizeL4(state.authorizationPolicies(service), {
      principal: undefined,
      port: conn.target.port,
    });
    telemetry.decision(
      'inbound',
      service,
      decision.allow,
      decision.allow ? undefined : { source: 'unknown', reason: decision.reason },
    );
    if (!decision.allow) return refuse('denied', decision.reason);
    const limited = rateLimited(state, service);
    if (limited !== undefined) return refuse('rate_limited', limited.detail);
  }

  // The accepted socket's peer is the caller (REDIRECT and TPROXY keep the source address).
  const client = {
    address: unmapV4(conn.client.remoteAddress ?? ''),
    port: conn.client.remotePort ?? 0,
  };
  const upstream = await deps.local
    .connect({
      target: conn.target,
      client: client.address === '' ? undefined : client,
      timeoutMs: deps.connectTimeoutMs,
    })
    .catch((err) => err as Error);
  if (upstream instanceof Error) return refuse('connect_failed', describeError(upstream));
  observedRelay(conn, { socket: upstream.socket }, telemetry, {
    ...record,
    endpoint: record.dst,
    src_preserved: upstream.preserved,
  });
}
