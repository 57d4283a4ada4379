// Which iptables weft drives: the nf_tables one or legacy x_tables. The two keep separate
// rule sets in the kernel, so weft must write where the host's other rules already are;
// it always calls the explicit binaries (iptables-nft-restore, ...), never the
// `iptables` alternative, whose meaning depends on the host's configuration.
import { WeftError } from '../errors.js';
import { haveTool, installHint, run } from '../sys/run.js';
import type { Family } from './family.js';

export type BackendKind = 'nft' | 'legacy';
export type BackendChoice = BackendKind | 'auto';

export interface FamilyTools {
  save: string;
  restore: string;
}

export interface Backend {
  kind: BackendKind;
  /** Binaries per family; a family is absent when its binaries are not installed. */
  tools: Partial<Record<Family, FamilyTools>>;
}

const NAMED: Record<BackendKind, Record<Family, FamilyTools>> = {
  nft: {
    ipv4: { save: 'iptables-nft-save', restore: 'iptables-nft-restore' },
    ipv6: { save: 'ip6tables-nft-save', restore: 'ip6tables-nft-restore' },
  },
  legacy: {
    ipv4: { save: 'iptables-legacy-save', restore: 'iptables-legacy-restore' },
    ipv6: { save: 'ip6tables-legacy-save', restore: 'ip6tables-legacy-restore' },
  },
};

// Hosts with iptables older than 1.8 only have the plain names, which are then legacy.
const PLAIN: Record<Family, FamilyTools> = {
  ipv4: { save: 'iptables-save', restore: 'iptables-restore' },
  ipv6: { save: 'ip6tables-save', restore: 'ip6tables-restore' },
};

/**
 * Finds the backend to use. `required` families must have their binaries (else
 * WEFT_E_MISSING_TOOL); the other family's binaries are recorded when present.
 * `auto` follows Kuma and Kubernetes' iptables-wrapper: legacy only when the legacy
 * tables hold rules and the nf_tables ones hold none, nf_tables otherwise.
 */
export async function resolveBackend(
  choice: BackendChoice,
  required: readonly Family[],
): Promise<Backend> {
  if (choice !== 'auto') return requireBackend(await probeBackend(choice), choice, required);
  const [nft, legacy] = await Promise.all([probeBackend('nft'), probeBackend('legacy')]);
  const usable = [nft, legacy].filter((b) => required.every((f) => b.tools[f]));
  if (usable.length === 0) {
    // IPv4 binaries without the IPv6 ones: name the one that is missing.
    const partial = [nft, legacy].find((b) => b.tools.ipv4);
    if (!partial) throw missingIptables();
    return requireBackend(partial, partial.kind, required);
  }
  if (usable.length === 1) return usable[0]!;
  const legacyHasRules = await holdsRules(legacy);
  return legacyHasRules && !(await holdsRules(nft)) ? legacy : nft;
}

/** Every backend whose IPv4 binaries are installed (uninstall cleans each of them). */
export async function installedBackends(): Promise<Backend[]> {
  const found = await Promise.all([probeBackend('nft'), probeBackend('legacy')]);
  const usable = found.filter((b) => b.tools.ipv4);
  if (usable.length === 0) throw missingIptables();
  return usable;
}

/** The binaries of one backend that are installed. */
export async function probeBackend(kind: BackendKind): Promise<Backend> {
  const [ipv4, ipv6] = await Promise.all([familyTools(kind, 'ipv4'), familyTools(kind, 'ipv6')]);
  return { kind, tools: { ...(ipv4 && { ipv4 }), ...(ipv6 && { ipv6 }) } };
}

async function familyTools(kind: BackendKind, family: Family): Promise<FamilyTools | undefined> {
  const named = NAMED[kind][family];
  if (await haveBoth(named)) return named;
  const plain = PLAIN[family];
  if ((await haveBoth(plain)) && (await plainKind(plain.restore)) === kind) return plain;
  return undefined;
}

async function haveBoth(tools: FamilyTools): Promise<boolean> {
  const [save, restore] = await Promise.all([haveTool(tools.save), haveTool(tools.restore)]);
  return save && restore;
}

/** `iptables-restore v1.8.9 (nf_tables)`; versions before 1.8 print no backend and are legacy. */
async function plainKind(restore: string): Promise<BackendKind> {
  const r = await run(restore, ['--version'], { allowFailure: true });
  return /nf_tables/.test(r.stdout + r.stderr) ? 'nft' : 'legacy';
}

function requireBackend(backend: Backend, kind: BackendKind, required: readonly Family[]): Backend {
  for (const family of required) {
    if (!backend.tools[family]) {
      const name = NAMED[kind][family].restore;
      throw new WeftError(
        'WEFT_E_MISSING_TOOL',
        `\`${name}\` is not installed; ${installHint(name)}`,
      );
    }
  }
  return backend;
}

function missingIptables(): WeftError {
  return new WeftError(
    'WEFT_E_MISSING_TOOL',
    `iptables is not installed (none of iptables-nft-restore, iptables-legacy-restore, iptables-restore is on PATH); ${installHint('iptables')}`,
  );
}

/** True when any table of the backend holds a rule (reading creates nothing). */
async function holdsRules(backend: Backend): Promise<boolean> {
  for (const tools of Object.values(backend.tools)) {
    // A save without -t: with nf_tables, `-t TABLE` would create the table it asks about.
    const r = await run(tools.save, [], { allowFailure: true });
    if (r.exitCode === 0 && /^-A /m.test(r.stdout)) return true;
  }
  return false;
}
