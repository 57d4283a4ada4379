// `weft redirect install`: make the host's weft rules exactly what the config wants.
// Idempotent: a second install finds nothing to change and writes nothing.
import { WeftError } from '../errors.js';
import { haveTool, installHint, requireRoot } from '../sys/run.js';
import { resolveAgentUid } from './agent-user.js';
import { applyChanges } from './apply.js';
import { type Backend, type BackendKind, resolveBackend } from './backend.js';
import type { CaptureConfig } from './config.js';
import { FAMILIES, type Family } from './family.js';
import { saveRules } from './iptables.js';
import { type CapturePlan, planCapture, routingOf } from './plan.js';
import { ensureRouting, removeRouting } from './policy-routing.js';
import { needsPolicyRouting } from './rules.js';
import { ruleCount } from './weft-state.js';

export interface CaptureOptions {
  /** Where the config came from (a file name), for error messages. */
  source?: string;
  /** Plan only: read the host, compute the payloads, change nothing. */
  dryRun?: boolean;
}

export interface InstallResult {
  backend: BackendKind;
  /** False when everything was already in place. */
  changed: boolean;
  families: { family: Family; rules: number; changed: boolean; payload: string }[];
  /** `ip rule` / `ip route` commands run (added, or removed when no longer needed). */
  routing: string[];
}

export async function installCapture(
  config: CaptureConfig,
  options: CaptureOptions = {},
): Promise<InstallResult> {
  requireRoot('installing capture rules');
  const backend = await resolveBackend(config.backend, config.ipv6 ? FAMILIES : ['ipv4']);
  const ipInstalled = await haveTool('ip');
  if (needsPolicyRouting(config) && !ipInstalled) {
    const why =
      config.inboundMode === 'tproxy'
        ? 'TPROXY needs policy routing'
        : 'the reply path of capture.inbound.preserveClientAddress needs policy routing; ' +
          'or set it to false';
    throw new WeftError(
      'WEFT_E_MISSING_TOOL',
      `\`ip\` is not installed (${why}); ${installHint('ip')}`,
    );
  }
  const agentUid = await resolveAgentUid(config.agentUser, options.source);
  const current = await readHost(backend, config);
  const plan = planCapture(config, { agentUid, current });
  const result: InstallResult = {
    backend: backend.kind,
    changed: false,
    families: plan.families.map((f) => ({
      family: f.family,
      rules: ruleCount(f.desired),
      changed: f.payload !== '',
      payload: f.payload,
    })),
    routing: [],
  };
  if (options.dryRun) return result;

  const changes = plan.families.map((f) => ({
    family: f.family,
    payload: f.payload,
    before: current[f.family] ?? '',
  }));
  await applyChanges(backend, changes, async () => {
    result.routing = await converge(plan, config, ipInstalled);
  });
  result.changed = result.families.some((f) => f.changed) || result.routing.length > 0;
  return result;
}

/** Adds the policy routing after the iptables rules are in; removes it when nothing needs it. */
async function converge(
  plan: CapturePlan,
  config: CaptureConfig,
  ipInstalled: boolean,
): Promise<string[]> {
  if (plan.routing) return ensureRouting(plan.routing, plan.routingFamilies);
  // A former install left its routing: it is weft's, and no longer wanted.
  return ipInstalled ? removeRouting(routingOf(config), FAMILIES) : [];
}

/**
 * iptables-save per family. IPv6 is read when captured; with ipv6 off it is read only
 * to find weft rules an earlier install left there, and a host that cannot list IPv6
 * rules (no ip6tables, IPv6 disabled) has none.
 */
export async function readHost(
  backend: Backend,
  config: CaptureConfig,
): Promise<Partial<Record<Family, string>>> {
  const current: Partial<Record<Family, string>> = { ipv4: await saveRules(backend, 'ipv4') };
  if (config.ipv6) {
    current.ipv6 = await saveRules(backend, 'ipv6').catch((err: unknown) => {
      const message = err instanceof Error ? err.message : String(err);
      throw new WeftError(
        'WEFT_E_IPTABLES',
        `${message} (if this host has IPv6 disabled, set capture.ipv6: false)`,
      );
    });
  } else if (backend.tools.ipv6) current.ipv6 = await saveRules(backend, 'ipv6').catch(() => '');
  return current;
}
