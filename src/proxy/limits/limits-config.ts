// The limits agent.yaml's `limits:` section (limits-schema.ts) resolves to: connections per
// listener in total and per source address, and the timeouts that free what hostile or
// forgotten clients hold. Defaults are shares of the process's file descriptors, so that a flood on one listener
// (15006 takes plaintext from anyone) cannot take the descriptors that local apps (15001) and
// peer agents (15008) need.
import type { z } from 'zod';
import { WeftError } from '../../errors.js';
import type { FdLimit } from './fd-limit.js';
import type { limitsConfigSchema } from './limits-schema.js';

/** Descriptors a connection holds: the accepted socket and its upstream. */
export const FDS_PER_CONNECTION = { outbound: 2, inbound: 2, tunnel: 4 } as const;
// A tunnel connection is one socket, but each stream it carries opens one to a local app: its
// budget is its own descriptor and three for streams. Shares of what is left after RESERVE:
const SHARES = { outbound: 0.4, inbound: 0.2, tunnel: 0.4 } as const;

export type ListenerName = keyof typeof FDS_PER_CONNECTION;

export type LimitsConfig = z.output<typeof limitsConfigSchema>;

export interface ListenerLimits {
  maxConnections: number;
  maxConnectionsPerSource: number;
}

export interface ResolvedLimits {
  outbound: ListenerLimits & { idleTimeoutMs: number };
  inbound: ListenerLimits & { idleTimeoutMs: number; silentTimeoutMs: number };
  tunnel: ListenerLimits & { handshakeTimeoutMs: number; idleTimeoutMs: number };
  refusalLogIntervalMs: number;
  /** The descriptors the limits were derived from and those kept for the rest of the agent. */
  fds: { limit: number; reserved: number };
}

/** Descriptors kept for everything but proxied connections: control plane, logs, DNS, admin. */
export function reservedFds(limit: number): number {
  return Math.min(1024, Math.max(64, Math.floor(limit / 16)));
}

/** Per source: an eighth of the listener (one source cannot take it all), at least 32. */
function perSourceDefault(max: number): number {
  return Math.min(max, Math.max(32, Math.floor(max / 8)));
}

/**
 * The limits in force: configured values, else shares of the descriptors that configured
 * listeners leave. Refuses (WEFT_E_CONFIG, naming the fields) limits that together need more
 * descriptors than the process may open: they could not be kept, and one listener could
 * starve the others.
 */
export function resolveLimits(
  config: LimitsConfig,
  fd: FdLimit,
  source = 'agent config',
): ResolvedLimits {
  // "unlimited" still means a kernel cap (fs.nr_open, 2^20 by default).
  const limit = Number.isFinite(fd.soft) ? fd.soft : 1_048_576;
  const reserved = reservedFds(limit);
  const budget = limit - reserved;
  if (budget < 64) {
    throw new WeftError(
      'WEFT_E_CONFIG',
      `the agent may open only ${limit} file descriptors (RLIMIT_NOFILE), too few to proxy anything: raise it (LimitNOFILE= in weft-agent.service, or ulimit -n)`,
    );
  }
  const names = Object.keys(FDS_PER_CONNECTION) as ListenerName[];
  const configured = names.filter((n) => config[n].maxConnections !== undefined);
  const fdsOf = (n: ListenerName, connections: number) => connections * FDS_PER_CONNECTION[n];
  const taken = configured.reduce((sum, n) => sum + fdsOf(n, config[n].maxConnections!), 0);
  const outOfBudget = (what: string, needed: number): WeftError =>
    new WeftError(
      'WEFT_E_CONFIG',
      `${source}: ${what} need ${needed} file descriptors (${names.map((n) => `${n} ${FDS_PER_CONNECTION[n]}`).join(', ')} per connection), but the agent may open ${limit} (RLIMIT_NOFILE) and keeps ${reserved} for itself: lower the limits or raise LimitNOFILE= in weft-agent.service`,
    );
  const fields = (ns: ListenerName[]) =>
    ns.map((n) => `limits.${n}.maxConnections (${config[n].maxConnections})`).join(' and ');
  // Listeners without a configured total share what the others leave, each at least one.
  const left = budget - taken;
  const unconfigured = names.filter((n) => !configured.includes(n));
  const shares = unconfigured.reduce((sum, n) => sum + SHARES[n], 0);
  if (left < unconfigured.reduce((sum, n) => sum + fdsOf(n, 1), 0)) {
    throw outOfBudget(
      unconfigured.length === 0
        ? fields(configured)
        : `${fields(configured)} with the other listeners`,
      taken,
    );
  }
  const listener = (name: ListenerName): ListenerLimits => {
    const c = config[name];
    const derived = Math.max(
      1,
      Math.floor((left * SHARES[name]) / shares / FDS_PER_CONNECTION[name]),
    );
    const max = c.maxConnections ?? derived;
    const perSource =
      c.maxConnectionsPerSource ?? (name === 'outbound' ? max : perSourceDefault(max));
    if (perSource > max) {
      throw new WeftError(
        'WEFT_E_CONFIG',
        `${source}: limits.${name}.maxConnectionsPerSource (${perSource}) must not exceed limits.${name}.maxConnections (${max})`,
      );
    }
    return { maxConnections: max, maxConnectionsPerSource: perSource };
  };
  const outbound = listener('outbound');
  const inbound = listener('inbound');
  const tunnel = listener('tunnel');
  return {
    outbound: { ...outbound, idleTimeoutMs: config.outbound.idleTimeoutMs },
    inbound: {
      ...inbound,
      idleTimeoutMs: config.inbound.idleTimeoutMs,
      silentTimeoutMs: config.inbound.silentTimeoutMs,
    },
    tunnel: {
      ...tunnel,
      handshakeTimeoutMs: config.tunnel.handshakeTimeoutMs,
      idleTimeoutMs: config.tunnel.idleTimeoutMs,
    },
    refusalLogIntervalMs: config.refusalLogIntervalMs,
    fds: { limit, reserved },
  };
}
