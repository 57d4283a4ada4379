// What `weft get trafficpolicy` shows besides the policy as written: status.effective, the
// values its target gets (the Service's policy over the Mesh's, defaults filled in) and the
// scope each came from, so an operator sees what the data path enforces and why.
import {
  describeSource,
  effectivePolicy,
  policyScopes,
  type ScopedPolicy,
} from '../../api/resources/index.js';

interface StoredPolicy {
  metadata: { name: string };
  spec: unknown;
  status?: Record<string, unknown>;
}

/**
 * Each policy with its status:
 *   effective: {target, spec, from: {field: "Service (TrafficPolicy/x)" | "Mesh (...)" | "default"}}
 *   overriddenBy (a Mesh's policy): the Service policies laid over it
 *   shadowedBy: another policy of the same target, which is the one in force
 *   problems: its merge over the Mesh's does not hold, so it is enforced alone
 */
export function withTrafficPolicyStatus<T extends StoredPolicy>(
  policies: readonly T[],
): Map<string, T> {
  const scopes = policyScopes(policies.map((p) => ({ name: p.metadata.name, doc: p })));
  const out = new Map<string, T>();
  for (const p of policies) {
    const name = p.metadata.name;
    const shadowedBy = scopes.shadowed.get(name);
    const mine =
      scopes.mesh?.name === name
        ? scopes.mesh
        : [...scopes.services.values()].find((s) => s.name === name);
    let status: Record<string, unknown>;
    if (shadowedBy !== undefined) status = { shadowedBy: `TrafficPolicy/${shadowedBy}` };
    else if (mine === undefined) status = {};
    else status = statusOf(mine, scopes.mesh, [...scopes.services.values()]);
    out.set(name, { ...p, status: { ...p.status, ...status } });
  }
  return out;
}

function statusOf(
  policy: ScopedPolicy,
  mesh: ScopedPolicy | undefined,
  services: ScopedPolicy[],
): Record<string, unknown> {
  const isMesh = policy.target.kind === 'Mesh';
  const status: Record<string, unknown> = {};
  let result = isMesh ? effectivePolicy(policy, undefined) : effectivePolicy(mesh, policy);
  if (!result.ok && !isMesh) {
    status.problems = result.problems;
    result = effectivePolicy(undefined, policy);
  }
  if (result.ok) {
    const { targetRef, ...spec } = result.policy.spec;
    const from = Object.fromEntries(
      Object.entries(result.policy.from).map(([field, source]) => [field, describeSource(source)]),
    );
    status.effective = {
      target:
        targetRef.kind === 'Mesh'
          ? 'Mesh (every Service without a TrafficPolicy of its own)'
          : `Service/${targetRef.name}`,
      spec,
      from,
    };
  }
  if (isMesh && services.length > 0)
    status.overriddenBy = services.map((s) => `TrafficPolicy/${s.name} (Service/${s.target.name})`);
  return status;
}
