// Apply-time checks of TrafficPolicies across documents (api/resources/traffic-policy-scopes.ts),
// over what an apply brings and what the store holds: one policy per target (the Mesh, or one
// Service), a Mesh target's name is the Mesh's, and every Service's policy merged over the
// Mesh's still holds (a Mesh policy changed under stored Service policies included).
import {
  describeDocument,
  effectivePolicy,
  type Mesh,
  type PolicyScopes,
  policyScopes,
  type Resource,
  type ScopedPolicy,
  scopedPolicy,
  targetKey,
} from '../../api/resources/index.js';
import { kindPrefix } from '../store/keys.js';
import type { Store, StoreCompare } from '../store/store.js';

/** A document of the apply: the validated resource and the document as written. */
export interface AppliedDocument {
  resource: Resource;
  document: unknown;
  source: string;
}

export interface TrafficPolicyCheck {
  problems: string[];
  /** The revisions of what the check read, for the apply's transaction (see authorization-port-check.ts). */
  compares: StoreCompare[];
}

interface Stored {
  metadata: { name: string };
  spec: unknown;
}

/** Every TrafficPolicy in force after the apply, as written, by name. */
export async function trafficPoliciesAfter(
  store: Store,
  applied: ReadonlyArray<AppliedDocument>,
  compares?: StoreCompare[],
): Promise<Map<string, unknown>> {
  const docs = new Map<string, unknown>();
  const stored = await store.list<Stored>(kindPrefix('TrafficPolicy'));
  for (const entry of stored.entries) {
    docs.set(entry.value.metadata.name, entry.value);
    compares?.push({ key: entry.key, modRevision: entry.modRevision });
  }
  for (const a of applied)
    if (a.resource.kind === 'TrafficPolicy') docs.set(a.resource.metadata.name, a.document);
  return docs;
}

export async function checkTrafficPolicies(
  store: Store,
  applied: ReadonlyArray<AppliedDocument>,
): Promise<TrafficPolicyCheck> {
  const problems: string[] = [];
  const compares: StoreCompare[] = [];
  const policies = applied.filter((a) => a.resource.kind === 'TrafficPolicy');
  if (policies.length === 0) return { problems, compares };
  const after = await trafficPoliciesAfter(store, applied, compares);
  const scopes = policyScopes([...after].map(([name, doc]) => ({ name, doc })));
  const meshName = await meshNameAfter(store, applied, compares);

  for (const a of policies) {
    const name = a.resource.metadata.name;
    const where = describeDocument(a.source, 'TrafficPolicy', name);
    const policy = scopedPolicy(name, a.document);
    if (policy === undefined) continue; // the document's own validation said why
    for (const p of targetProblems(policy, after, meshName)) problems.push(`${where}: ${p}`);
    for (const p of mergeProblems(policy, scopes)) problems.push(`${where}: ${p}`);
  }
  return { problems, compares };
}

function targetProblems(
  policy: ScopedPolicy,
  after: ReadonlyMap<string, unknown>,
  meshName: string | undefined,
): string[] {
  const out: string[] = [];
  const key = targetKey(policy.target);
  for (const [other, doc] of after) {
    const p = other === policy.name ? undefined : scopedPolicy(other, doc);
    if (p === undefined || targetKey(p.target) !== key) continue;
    out.push(
      `spec.targetRef: TrafficPolicy/${other} already applies to ${key === 'Mesh' ? 'the Mesh' : key}; there is one policy per target: put these fields in that one, or delete it first`,
    );
  }
  const named = policy.target.kind === 'Mesh' ? policy.target.name : undefined;
  if (named !== undefined && named !== meshName) {
    out.push(
      meshName === undefined
        ? `spec.targetRef.name: there is no Mesh named "${named}" (no Mesh resource exists): leave the name out to target the whole mesh`
        : `spec.targetRef.name: the Mesh is named "${meshName}", not "${named}": correct it, or leave the name out`,
    );
  }
  return out;
}

/**
 * A Service's policy over the Mesh's (or alone, with none: a qos may have counted on the
 * Mesh's adaptiveConcurrency); a Mesh policy under every Service's.
 */
function mergeProblems(policy: ScopedPolicy, scopes: PolicyScopes): string[] {
  const out: string[] = [];
  if (policy.target.kind === 'Service' && scopes.mesh === undefined) {
    const alone = effectivePolicy(undefined, policy);
    if (!alone.ok) return alone.problems;
    return out;
  }
  const pairs: Array<[ScopedPolicy, ScopedPolicy]> = [];
  if (policy.target.kind === 'Service' && scopes.mesh !== undefined)
    pairs.push([scopes.mesh, policy]);
  if (policy.target.kind === 'Mesh')
    for (const s of scopes.services.values()) pairs.push([policy, s]);
  for (const [mesh, service] of pairs) {
    const merged = effectivePolicy(mesh, service);
    if (merged.ok) continue;
    const other =
      policy === service
        ? `the Mesh's TrafficPolicy/${mesh.name}`
        : `TrafficPolicy/${service.name}`;
    for (const p of merged.problems)
      out.push(
        `merged with ${other}, Service/${service.target.name} would get ${p} (set or null that field here or there)`,
      );
  }
  return out;
}

async function meshNameAfter(
  store: Store,
  applied: ReadonlyArray<AppliedDocument>,
  compares: StoreCompare[],
): Promise<string | undefined> {
  const mesh = applied.find((a) => a.resource.kind === 'Mesh')?.resource as Mesh | undefined;
  if (mesh !== undefined) return mesh.metadata.name;
  const stored = await store.list<Stored>(kindPrefix('Mesh'));
  for (const e of stored.entries) compares.push({ key: e.key, modRevision: e.modRevision });
  return stored.entries[0]?.value.metadata.name;
}
