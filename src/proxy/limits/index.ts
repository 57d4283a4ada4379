// The data plane's guards against clients that hold what others need, built once at start
// from agent.yaml's `limits:` and the process's descriptor limit: one gate per listener, the
// refusal counter and log they share, and the timeouts each listener's connections keep.
import type { Registry } from 'prom-client';
import type { Logger } from '../../sys/logger.js';
import type { RelayTimeouts } from '../capture-listener.js';
import { Refusals } from '../refusals.js';
import { ConnectionGate } from './connection-gate.js';
import { type FdLimit, readFdLimit } from './fd-limit.js';
import { type LimitsConfig, type ResolvedLimits, resolveLimits } from './limits-config.js';

export { ConnectionGate } from './connection-gate.js';
export type { LimitsConfig, ResolvedLimits } from './limits-config.js';

export interface ListenerGuard {
  gate: ConnectionGate;
  refusals: Refusals;
  timeouts: RelayTimeouts;
}

export interface Guards {
  limits: ResolvedLimits;
  refusals: Refusals;
  outbound: ListenerGuard;
  inbound: ListenerGuard;
  tunnel: {
    gate: ConnectionGate;
    refusals: Refusals;
    handshakeTimeoutMs: number;
    idleTimeoutMs: number;
  };
}

export function buildGuards(
  config: LimitsConfig,
  opts: { registry: Registry; log: Logger; fdLimit?: FdLimit },
): Guards {
  const limits = resolveLimits(config, opts.fdLimit ?? readFdLimit());
  const refusals = new Refusals({
    log: opts.log,
    registry: opts.registry,
    logIntervalMs: limits.refusalLogIntervalMs,
  });
  const { outbound, inbound, tunnel } = limits;
  opts.log.info(
    {
      fd_limit: limits.fds.limit,
      fd_reserved: limits.fds.reserved,
      outbound: [outbound.maxConnections, outbound.maxConnectionsPerSource],
      inbound: [inbound.maxConnections, inbound.maxConnectionsPerSource],
      tunnel: [tunnel.maxConnections, tunnel.maxConnectionsPerSource],
    },
    'connection limits (total, per source)',
  );
  return {
    limits,
    refusals,
    outbound: {
      gate: new ConnectionGate(outbound, 'limits.outbound'),
      refusals,
      timeouts: { idleMs: outbound.idleTimeoutMs },
    },
    inbound: {
      gate: new ConnectionGate(inbound, 'limits.inbound'),
      refusals,
      timeouts: { idleMs: inbound.idleTimeoutMs, silentMs: inbound.silentTimeoutMs },
    },
    tunnel: {
      gate: new ConnectionGate(tunnel, 'limits.tunnel'),
      refusals,
      handshakeTimeoutMs: tunnel.handshakeTimeoutMs,
      idleTimeoutMs: tunnel.idleTimeoutMs,
    },
  };
}
