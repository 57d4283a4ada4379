// Checked once when the agent starts: can it connect to local applications from callers'
// addresses? It needs CAP_NET_ADMIN (IP_TRANSPARENT, SO_MARK) and the reply routing that
// `weft redirect install` sets up; without either, every such connect would fail or hang, so
// the agent connects from its own address instead and says why.
import { readFile } from 'node:fs/promises';
import { describeError } from '../../errors.js';
import type { CaptureConfig } from '../../redirect/config.js';
import { routingOf } from '../../redirect/plan.js';
import {
  describeRouting,
  type RoutingPresence,
  routingPresence,
} from '../../redirect/policy-routing.js';

const CAP_NET_ADMIN = 12n;

export interface ReplyPathFacts {
  /** The effective capability set (CapEff of /proc/self/status), or undefined if unreadable. */
  capEff: bigint | undefined;
  /** weft's IPv4 policy rule and route, or why they could not be read. */
  routing: RoutingPresence | { error: string };
  /** "IPv4: ip rule fwmark 0x3a9e lookup 15006 priority 15006" etc. */
  describe: { rule: string; route: string };
}

/** Why preserving client addresses cannot work on this host, or undefined when it can. Pure. */
export function replyPathProblem(facts: ReplyPathFacts): string | undefined {
  if (facts.capEff !== undefined && (facts.capEff & (1n << CAP_NET_ADMIN)) === 0n) {
    return (
      'the agent lacks CAP_NET_ADMIN, which IP_TRANSPARENT and SO_MARK need: grant it ' +
      '(AmbientCapabilities=CAP_NET_ADMIN in the systemd unit) or run as root'
    );
  }
  const r = facts.routing;
  if ('error' in r) return `the reply routing could not be read: ${r.error}`;
  const missing = [
    ...(r.rule ? [] : [facts.describe.rule]),
    ...(r.route ? [] : [facts.describe.route]),
  ];
  if (missing.length > 0) {
    return `the reply routing is not installed (${missing.join('; ')}): run \`weft redirect install\` with this config`;
  }
  return undefined;
}

/** CapEff from /proc/self/status text (hex), or undefined when it is not there. */
export function effectiveCapabilities(status: string): bigint | undefined {
  const hex = /^CapEff:\s*([0-9a-f]+)$/m.exec(status)?.[1];
  return hex === undefined ? undefined : BigInt(`0x${hex}`);
}

/** Reads the facts and judges them; undefined when preserving is off in the config. */
export async function checkReplyPath(capture: CaptureConfig): Promise<string | undefined> {
  if (!capture.inbound.preserveClientAddress) return undefined;
  const routing = routingOf(capture);
  const [status, presence] = await Promise.all([
    readFile('/proc/self/status', 'utf8').catch(() => ''),
    routingPresence(routing, 'ipv4').catch((err: unknown) => ({ error: describeError(err) })),
  ]);
  return replyPathProblem({
    capEff: effectiveCapabilities(status),
    routing: presence,
    describe: describeRouting(routing, 'ipv4'),
  });
}
