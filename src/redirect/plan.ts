// From a capture config and what the host has now to the exact changes weft will make:
// one iptables-restore payload per family, plus TPROXY's policy routing. Pure.
import type { CaptureConfig } from './config.js';
import type { Family } from './family.js';
import { convergePayload } from './restore-payload.js';
import { buildWeftState, needsPolicyRouting } from './rules.js';
import { extractWeftState, type WeftState } from './weft-state.js';

export interface CaptureEnv {
  /** The uid of `config.agentUser`. */
  agentUid: number;
  /** iptables-save output per family as the host has it now; absent means no weft rules. */
  current?: Partial<Record<Family, string>>;
}

export interface FamilyPlan {
  family: Family;
  /** weft's rules as installed now. */
  current: WeftState;
  /** weft's rules as the config wants them. */
  desired: WeftState;
  /** Input for `iptables-restore --noflush`; '' when the family is already as wanted. */
  payload: string;
}

/** `ip rule add fwmark MARK lookup TABLE priority PRIORITY` + `ip route add local default dev lo table TABLE`. */
export interface PolicyRouting {
  mark: number;
  table: number;
  priority: number;
}

export interface CapturePlan {
  /**
   * IPv4 always. IPv6 when the config captures it, or when weft rules from an earlier
   * install must be removed from it; with ipv6 off and no weft rules there, IPv6 is not
   * in the plan and nothing reads or writes its tables.
   */
  families: FamilyPlan[];
  /**
   * Policy routing that TPROXY and the reply path of preserved client addresses need, for
   * `routingFamilies`; null when neither is on.
   */
  routing: PolicyRouting | null;
  routingFamilies: Family[];
}

export function planCapture(config: CaptureConfig, env: CaptureEnv): CapturePlan {
  const families: FamilyPlan[] = [];
  for (const family of ['ipv4', 'ipv6'] as const) {
    const current = extractWeftState(env.current?.[family] ?? '');
    if (family === 'ipv6' && !config.ipv6 && current.length === 0) continue;
    const desired = buildWeftState(config, family, env.agentUid);
    families.push({ family, current, desired, payload: convergePayload(current, desired) });
  }
  const routed = needsPolicyRouting(config);
  return {
    families,
    routing: routed ? routingOf(config) : null,
    routingFamilies: routed ? (config.ipv6 ? ['ipv4', 'ipv6'] : ['ipv4']) : [],
  };
}

export function routingOf(config: CaptureConfig): PolicyRouting {
  return {
    mark: config.tproxy.mark,
    table: config.tproxy.routeTable,
    priority: config.tproxy.rulePriority,
  };
}
