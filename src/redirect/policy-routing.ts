// The policy routing of TPROXY and of the reply path of preserved client addresses: packets
// marked by the TPROXY rule, or (replies to a caller's address) by the mangle OUTPUT rules,
// must be delivered locally even when their destination is not a local address, hence per
// family
//   ip rule add fwmark MARK lookup TABLE priority PRIORITY
//   ip route add local default dev lo table TABLE
// weft's rule is recognised by its priority and table, its route by its table.
import { WeftError } from '../errors.js';
import { run } from '../sys/run.js';
import { type Family, familyLabel } from './family.js';
import type { PolicyRouting } from './plan.js';

interface IpRule {
  priority?: number;
  fwmark?: string;
  fwmask?: string;
  table?: string;
}

interface IpRoute {
  type?: string;
  dst?: string;
  dev?: string;
}

export interface RoutingPresence {
  family: Family;
  /** Our `ip rule` with the configured mark is present. */
  rule: boolean;
  /** A rule at our priority and table with another mark (left by an older config). */
  otherRule: boolean;
  /** Our `local default dev lo` route is present in the configured table. */
  route: boolean;
}

const flag = (family: Family): string => (family === 'ipv4' ? '-4' : '-6');

async function ip(args: string[]): Promise<string> {
  const r = await run('ip', args, { allowFailure: true });
  if (r.exitCode !== 0) {
    throw new WeftError(
      'WEFT_E_IPTABLES',
      `\`ip ${args.join(' ')}\` failed: ${r.stderr.trim().split('\n')[0] ?? ''}`,
    );
  }
  return r.stdout;
}

/**
 * Lists as JSON. A listing that fails has nothing of weft's in it: a route table that
 * was never used does not exist ("FIB table does not exist"), and a kernel without
 * IPv6 has no IPv6 rules.
 */
async function list<T>(args: string[]): Promise<T[]> {
  const out = await run('ip', ['-j', ...args], { allowFailure: true });
  if (out.exitCode !== 0) return [];
  return JSON.parse(out.stdout.trim() || '[]') as T[];
}

async function weftRules(r: PolicyRouting, family: Family): Promise<IpRule[]> {
  const rules = await list<IpRule>([flag(family), 'rule', 'show']);
  return rules.filter((x) => x.priority === r.priority && x.table === String(r.table));
}

async function weftRoutes(r: PolicyRouting, family: Family): Promise<IpRoute[]> {
  const routes = await list<IpRoute>([flag(family), 'route', 'show', 'table', String(r.table)]);
  return routes.filter((x) => x.type === 'local' && x.dst === 'default' && x.dev === 'lo');
}

function isOurMark(rule: IpRule, r: PolicyRouting): boolean {
  const mask = rule.fwmask === undefined ? 0xffffffff : Number(rule.fwmask);
  return Number(rule.fwmark) === r.mark && mask === 0xffffffff;
}

export async function routingPresence(r: PolicyRouting, family: Family): Promise<RoutingPresence> {
  const [rules, routes] = await Promise.all([weftRules(r, family), weftRoutes(r, family)]);
  return {
    family,
    rule: rules.some((x) => isOurMark(x, r)),
    otherRule: rules.some((x) => !isOurMark(x, r)),
    route: routes.length > 0,
  };
}

/**
 * Adds what is missing and returns the commands it ran. If one fails, what this call
 * added is removed again before the error is thrown.
 */
export async function ensureRouting(
  r: PolicyRouting,
  families: readonly Family[],
): Promise<string[]> {
  const done: string[][] = [];
  try {
    for (const family of families) {
      const have = await routingPresence(r, family);
      if (!have.route) {
        const args = localRouteArgs(r, family, 'add');
        await ip(args);
        done.push(args);
      }
      if (!have.rule) {
        const args = [
          flag(family),
          'rule',
          'add',
          'fwmark',
          String(r.mark),
          'lookup',
          String(r.table),
          'priority',
          String(r.priority),
        ];
        await ip(args);
        done.push(args);
      }
    }
  } catch (err) {
    for (const args of done.reverse()) await run('ip', undoOf(args), { allowFailure: true });
    throw err;
  }
  return done.map((args) => `ip ${args.join(' ')}`);
}

/** The route: every destination is local in weft's table, so marked packets are delivered. */
function localRouteArgs(r: PolicyRouting, family: Family, verb: 'add' | 'del'): string[] {
  return [flag(family), 'route', verb, 'local', 'default', 'dev', 'lo', 'table', String(r.table)];
}

function undoOf(args: string[]): string[] {
  return args.map((a) => (a === 'add' ? 'del' : a));
}

/** Removes weft's rules (by priority and table) and routes (by table); returns the commands run. */
export async function removeRouting(
  r: PolicyRouting,
  families: readonly Family[],
): Promise<string[]> {
  const done: string[] = [];
  for (const family of families) {
    for (const rule of await weftRules(r, family)) {
      const mark =
        rule.fwmark === undefined
          ? []
          : ['fwmark', rule.fwmask ? `${rule.fwmark}/${rule.fwmask}` : rule.fwmark];
      const args = [
        flag(family),
        'rule',
        'del',
        'priority',
        String(r.priority),
        ...mark,
        'lookup',
        String(r.table),
      ];
      await ip(args);
      done.push(`ip ${args.join(' ')}`);
    }
    for (const _ of await weftRoutes(r, family)) {
      const args = localRouteArgs(r, family, 'del');
      await ip(args);
      done.push(`ip ${args.join(' ')}`);
    }
  }
  return done;
}

/** "IPv4 ip rule fwmark 0x3a9e lookup 15006 priority 15006" etc., for status output. */
export function describeRouting(
  r: PolicyRouting,
  family: Family,
): { rule: string; route: string; otherRule: string } {
  const label = familyLabel(family);
  return {
    rule: `${label}: ip rule fwmark 0x${r.mark.toString(16)} lookup ${r.table} priority ${r.priority}`,
    route: `${label}: ip route local default dev lo table ${r.table}`,
    otherRule: `${label}: ip rule lookup ${r.table} priority ${r.priority} with another fwmark`,
  };
}
