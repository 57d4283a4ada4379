// How TrafficPolicies combine, from the whole mesh to one service: a policy whose targetRef is
// the Mesh sets defaults for every service; one whose targetRef is a Service is laid over it
// field by field, as an RFC 7386 JSON merge patch of the documents as written (objects merge
// key by key at every depth, a list or a value replaces the inherited one whole, null removes
// it); schema defaults are filled in once, on the merged document, so a default never hides a
// value the Mesh's policy sets. Shared by the agents (MeshState) and the control plane (apply
// checks, `weft get -o yaml`).

import { formatIssues } from './format-issues.js';
import {
  type PolicyTarget,
  policyTargetRef,
  type TrafficPolicySpec,
  trafficPolicySpec,
} from './traffic-policy.js';

/** One TrafficPolicy as written: its name, its target, and its spec without targetRef. */
export interface ScopedPolicy {
  name: string;
  target: PolicyTarget;
  /** As the user wrote it (nulls kept: they remove inherited values). */
  fields: Record<string, unknown>;
  /** The document it was read from: unchanged documents keep their effective policies. */
  doc: unknown;
}

/** Where an effective value comes from: a policy (of the Mesh or of the Service), or the default. */
export type ValueSource = { scope: 'Mesh' | 'Service'; policy: string } | 'default';

/** "Service (TrafficPolicy/orders-retries)", "Mesh (TrafficPolicy/defaults)", "default". */
export function describeSource(source: ValueSource): string {
  return source === 'default' ? source : `${source.scope} (TrafficPolicy/${source.policy})`;
}

/** The policies that set any value under `prefix` ("healthCheck."), the Service's first. */
export function policiesSetting(policy: EffectivePolicy, prefix: string): string[] {
  const found: Array<{ scope: string; policy: string }> = [];
  for (const [field, source] of Object.entries(policy.from)) {
    if (source === 'default' || !field.startsWith(prefix)) continue;
    if (!found.some((f) => f.policy === source.policy)) found.push(source);
  }
  return found
    .sort((a, b) => (a.scope === b.scope ? 0 : a.scope === 'Service' ? -1 : 1))
    .map((f) => f.policy);
}

export interface EffectivePolicy {
  /** Merged and with defaults filled in: what the data path enforces. */
  spec: TrafficPolicySpec;
  /** Per value ("retries.backoff.base"), the scope that set it. */
  from: Record<string, ValueSource>;
}

export type EffectiveResult =
  | { ok: true; policy: EffectivePolicy }
  | { ok: false; problems: string[] };

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** RFC 7386: `patch` laid over `target`. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return patch;
  const out: Record<string, unknown> = isObject(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete out[key];
    else out[key] = mergePatch(out[key], value);
  }
  return out;
}

/** A TrafficPolicy document as written; undefined when its spec or target is not readable. */
export function scopedPolicy(name: string, doc: unknown): ScopedPolicy | undefined {
  const spec = (doc as { spec?: unknown } | null)?.spec;
  if (!isObject(spec)) return undefined;
  const { targetRef, ...fields } = spec;
  const target = policyTargetRef.safeParse(targetRef);
  return target.success ? { name, target: target.data, fields, doc } : undefined;
}

/** "Mesh" or "Service/orders": the key one policy per target is counted by. */
export function targetKey(target: PolicyTarget): string {
  return target.kind === 'Mesh' ? 'Mesh' : `Service/${target.name}`;
}

export interface PolicyScopes {
  mesh: ScopedPolicy | undefined;
  services: ReadonlyMap<string, ScopedPolicy>;
  /** Policies left out because another one (first by name) has the same target. */
  shadowed: ReadonlyMap<string, string>;
}

/**
 * The policies in force per target. Apply refuses a second policy for one target; should two
 * still meet (written concurrently), the first by name wins, so every agent agrees.
 */
export function policyScopes(docs: Iterable<{ name: string; doc: unknown }>): PolicyScopes {
  const sorted = [...docs].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  let mesh: ScopedPolicy | undefined;
  const services = new Map<string, ScopedPolicy>();
  const shadowed = new Map<string, string>();
  for (const { name, doc } of sorted) {
    const p = scopedPolicy(name, doc);
    if (p === undefined) continue;
    const first = p.target.kind === 'Mesh' ? mesh : services.get(p.target.name);
    if (first !== undefined) shadowed.set(name, first.name);
    else if (p.target.kind === 'Mesh') mesh = p;
    else services.set(p.target.name, p);
  }
  return { mesh, services, shadowed };
}

function has(fields: Record<string, unknown>, path: readonly string[]): boolean {
  let at: unknown = fields;
  for (const key of path) {
    if (!isObject(at) || at[key] === undefined || at[key] === null) return false;
    at = at[key];
  }
  return true;
}

function sources(
  value: unknown,
  path: string[],
  mesh: ScopedPolicy | undefined,
  service: ScopedPolicy | undefined,
  out: Record<string, ValueSource>,
): void {
  if (isObject(value)) {
    for (const [k, v] of Object.entries(value)) sources(v, [...path, k], mesh, service, out);
    return;
  }
  out[path.join('.')] =
    service !== undefined && has(service.fields, path)
      ? { scope: 'Service', policy: service.name }
      : mesh !== undefined && has(mesh.fields, path)
        ? { scope: 'Mesh', policy: mesh.name }
        : 'default';
}

/**
 * The policy a service (or, without `service`, every service without a policy of its own)
 * gets: the Service's policy over the Mesh's, then the defaults. Not ok when the merged
 * document does not hold (e.g. a Service's `on` dropping retriable-status-codes while the
 * Mesh's statuses stay): apply refuses that, naming both policies.
 */
export function effectivePolicy(
  mesh: ScopedPolicy | undefined,
  service: ScopedPolicy | undefined,
): EffectiveResult {
  const target: PolicyTarget = service?.target ?? mesh?.target ?? { kind: 'Mesh' };
  const merged = mergePatch(mergePatch({}, mesh?.fields ?? {}), service?.fields ?? {});
  const parsed = trafficPolicySpec.safeParse({ ...(merged as object), targetRef: target });
  if (!parsed.success)
    return { ok: false, problems: formatIssues(parsed.error.issues).map((p) => `spec.${p}`) };
  const { targetRef: _, ...values } = parsed.data;
  const from: Record<string, ValueSource> = {};
  sources(values, [], mesh, service, from);
  return { ok: true, policy: { spec: parsed.data, from } };
}

/** What the data path reads: per service with a policy of its own, and for all the others. */
export interface EffectivePolicies {
  /** From the Mesh's policy alone; undefined without one. */
  mesh: EffectivePolicy | undefined;
  services: ReadonlyMap<string, EffectivePolicy>;
  /** The documents they came from. */
  basis: { mesh: unknown; services: ReadonlyMap<string, unknown> };
}

/**
 * Every effective policy of a set of TrafficPolicy documents, computed once per snapshot;
 * those whose documents are the same objects as in `previous` are kept as they were, so what
 * is compiled from them (retry budgets) is not made again for every snapshot. A merge that
 * does not hold (apply refuses it; only documents stored before that check can make one)
 * falls back to the Service's policy alone, which holds on its own.
 */
export function effectivePolicies(
  scopes: PolicyScopes,
  previous?: EffectivePolicies,
): EffectivePolicies {
  const meshDoc = scopes.mesh?.doc;
  const sameMesh = previous !== undefined && previous.basis.mesh === meshDoc;
  let mesh = sameMesh ? previous.mesh : undefined;
  if (!sameMesh && scopes.mesh !== undefined) {
    const alone = effectivePolicy(scopes.mesh, undefined);
    mesh = alone.ok ? alone.policy : undefined;
  }
  const services = new Map<string, EffectivePolicy>();
  const docs = new Map<string, unknown>();
  for (const [service, policy] of scopes.services) {
    docs.set(service, policy.doc);
    const before = sameMesh ? previous.services.get(service) : undefined;
    if (before !== undefined && previous!.basis.services.get(service) === policy.doc) {
      services.set(service, before);
      continue;
    }
    const merged = effectivePolicy(scopes.mesh, policy);
    const alone = merged.ok ? merged : effectivePolicy(undefined, policy);
    if (alone.ok) services.set(service, alone.policy);
  }
  return { mesh, services, basis: { mesh: meshDoc, services: docs } };
}
