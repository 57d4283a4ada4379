// `weft redirect status`: weft's rules as installed, compared with what the config would
// install, per family, plus the policy routing (TPROXY, preserved client addresses). Reads only.
import { haveTool, requireRoot } from '../sys/run.js';
import { resolveAgentUid } from './agent-user.js';
import { type BackendKind, resolveBackend } from './backend.js';
import type { CaptureConfig } from './config.js';
import { FAMILIES, type Family } from './family.js';
import type { CaptureOptions } from './install.js';
import { readHost } from './install.js';
import { type DiffLine, diffLines } from './line-diff.js';
import { planCapture, routingOf } from './plan.js';
import { describeRouting, routingPresence } from './policy-routing.js';
import { needsPolicyRouting } from './rules.js';
import { stateLines } from './weft-state.js';

export type SyncState = 'in-sync' | 'missing' | 'drifted';

export interface FamilyStatus {
  family: Family;
  state: SyncState;
  /** Installed weft rules, `-t TABLE -A CHAIN ...`. */
  installed: string[];
  /** The rules the config would install, same form. */
  wanted: string[];
  diff: DiffLine[];
}

export interface RoutingCheck {
  family: Family;
  what: string;
  wanted: boolean;
  present: boolean;
}

export interface CaptureStatus {
  inSync: boolean;
  backend: BackendKind;
  families: FamilyStatus[];
  /** The policy rule and route per family (also reported when present but not wanted). */
  routing: RoutingCheck[];
}

export async function captureStatus(
  config: CaptureConfig,
  options: CaptureOptions = {},
): Promise<CaptureStatus> {
  requireRoot('reading capture rules');
  const backend = await resolveBackend(config.backend, config.ipv6 ? FAMILIES : ['ipv4']);
  const agentUid = await resolveAgentUid(config.agentUser, options.source);
  const current = await readHost(backend, config);
  const plan = planCapture(config, { agentUid, current });
  const families = plan.families.map((f): FamilyStatus => {
    const installed = stateLines(f.current);
    const wanted = stateLines(f.desired);
    const state: SyncState =
      f.payload === '' ? 'in-sync' : installed.length === 0 ? 'missing' : 'drifted';
    return { family: f.family, state, installed, wanted, diff: diffByTable(installed, wanted) };
  });
  const routing = (await haveTool('ip')) ? await checkRouting(config) : [];
  const inSync =
    families.every((f) => f.state === 'in-sync') && routing.every((r) => r.wanted === r.present);
  return { inSync, backend: backend.kind, families, routing };
}

async function checkRouting(config: CaptureConfig): Promise<RoutingCheck[]> {
  const r = routingOf(config);
  const checks: RoutingCheck[] = [];
  for (const family of FAMILIES) {
    const wanted = needsPolicyRouting(config) && (family === 'ipv4' || config.ipv6);
    const have = await routingPresence(r, family);
    const text = describeRouting(r, family);
    if (wanted || have.rule) checks.push({ family, what: text.rule, wanted, present: have.rule });
    if (wanted || have.route)
      checks.push({ family, what: text.route, wanted, present: have.route });
    if (have.otherRule) {
      checks.push({ family, what: text.otherRule, wanted: false, present: true });
    }
  }
  return checks;
}

/** Diffs table by table, so that a rule never appears to move between tables. */
function diffByTable(installed: readonly string[], wanted: readonly string[]): DiffLine[] {
  const tableOf = (line: string) => line.split(' ')[1] ?? '';
  const tables = [...new Set([...installed, ...wanted].map(tableOf))].sort();
  return tables.flatMap((t) =>
    diffLines(
      installed.filter((l) => tableOf(l) === t),
      wanted.filter((l) => tableOf(l) === t),
    ),
  );
}
