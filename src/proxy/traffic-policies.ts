// The effective TrafficPolicies of a view computed in this process (the schema fills in their
// defaults, so this loads zod): the master computes them for its workers' views, a
// single-process agent and the tests for their own MeshState (mesh-state.ts, TrafficResolver).
import {
  type EffectivePolicies,
  effectivePolicies,
  policyScopes,
} from '../api/resources/traffic-policy-scopes.js';
import type { MeshView } from '../controlplane-client/mesh-view.js';
import type { TrafficResolver } from './mesh-state.js';

/** A resolver that keeps the previous view's policies: unchanged documents keep their objects. */
export function computedTraffic(): TrafficResolver {
  let previous: EffectivePolicies | undefined;
  return (view) => {
    previous = trafficOf(view, previous);
    return { mesh: previous.mesh, services: previous.services };
  };
}

/** The effective TrafficPolicies of one view (`previous`: see effectivePolicies). */
export function trafficOf(view: MeshView, previous?: EffectivePolicies): EffectivePolicies {
  const docs = (view.policies.get('TrafficPolicy') ?? []).map((r) => ({
    name: r.name,
    doc: r.doc,
  }));
  return effectivePolicies(policyScopes(docs), previous);
}
