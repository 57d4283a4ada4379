// `weft redirect uninstall`: remove every weft rule (found by its comment), every WEFT_*
// chain, and the policy rule and route (TPROXY, preserved client addresses), in both
// families, and nothing else.
import { haveTool, requireRoot } from '../sys/run.js';
import { applyChanges, type FamilyChange } from './apply.js';
import { type Backend, type BackendKind, installedBackends, resolveBackend } from './backend.js';
import { type CaptureConfig, defaultCaptureConfig } from './config.js';
import { FAMILIES, type Family } from './family.js';
import { saveRules } from './iptables.js';
import { routingOf } from './plan.js';
import { removeRouting } from './policy-routing.js';
import { convergePayload } from './restore-payload.js';
import { extractWeftState, ruleCount } from './weft-state.js';

export interface UninstallResult {
  /** Rules removed per backend and family (only those that had any). */
  removed: { backend: BackendKind; family: Family; rules: number }[];
  /** `ip rule` / `ip route` commands run. */
  routing: string[];
}

/**
 * Without a config the defaults apply (they name the policy route table and priority).
 * With backend `auto`, every installed backend is cleaned: rules written while the
 * host used the other backend are weft's too.
 */
export async function uninstallCapture(config?: CaptureConfig): Promise<UninstallResult> {
  requireRoot('removing capture rules');
  const cfg = config ?? defaultCaptureConfig();
  const backends =
    cfg.backend === 'auto'
      ? await installedBackends()
      : [await resolveBackend(cfg.backend, ['ipv4'])];
  const result: UninstallResult = { removed: [], routing: [] };
  const unreadable: unknown[] = [];
  for (const backend of backends) {
    // With `auto`, a backend whose tables cannot even be listed (legacy x_tables on a
    // kernel that never loaded them) holds no weft rules.
    const changes = await removalOf(backend, cfg).catch((err: unknown) => {
      if (backends.length === 1) throw err;
      unreadable.push(err);
      return [];
    });
    await applyChanges(backend, changes);
    for (const c of changes) {
      const rules = ruleCount(extractWeftState(c.before));
      if (rules > 0) result.removed.push({ backend: backend.kind, family: c.family, rules });
    }
  }
  if (unreadable.length === backends.length) throw unreadable[0];
  if (await haveTool('ip')) result.routing = await removeRouting(routingOf(cfg), FAMILIES);
  return result;
}

async function removalOf(backend: Backend, cfg: CaptureConfig): Promise<FamilyChange[]> {
  const changes: FamilyChange[] = [];
  for (const family of FAMILIES) {
    if (!backend.tools[family]) continue;
    // IPv6 that cannot be listed (disabled in the kernel) holds no weft rules, unless
    // the config says IPv6 is captured: then the failure is worth reporting.
    const before = await saveRules(backend, family).catch((err: unknown) => {
      if (family === 'ipv4' || cfg.ipv6) throw err;
      return '';
    });
    changes.push({ family, before, payload: convergePayload(extractWeftState(before), []) });
  }
  return changes;
}
