// Apply-time check of AuthorizationPolicies against the port protocols of the Services they
// target (see api/resources/authorization-ports.ts), over what an apply brings and what the
// store holds: a policy whose HTTP fields land on tcp ports is refused, and so is a Service
// change (a port made tcp, a tcp port added) that would do that to a policy already stored.
import {
  type AuthorizationPolicySpec,
  authorizationPortProblems,
  describeDocument,
  type Resource,
  type ServiceSpec,
} from '../../api/resources/index.js';
import { kindPrefix, resourceKey } from '../store/keys.js';
import type { Store, StoreCompare } from '../store/store.js';

interface Stored<S> {
  metadata: { name: string };
  spec: S;
}

export interface AuthorizationPortCheck {
  problems: string[];
  /**
   * The revisions of what the check read from the store, for the apply's transaction: a
   * concurrent change to one of them makes the apply start over and check again. A policy
   * created concurrently with a Service change can still slip between the two; the data path
   * then fails closed on the tcp ports (see proxy/inbound/authorize.ts), as it always has.
   */
  compares: StoreCompare[];
}

export async function checkAuthorizationPorts(
  store: Store,
  resources: ReadonlyArray<{ resource: Resource; source: string }>,
): Promise<AuthorizationPortCheck> {
  const problems: string[] = [];
  const compares: StoreCompare[] = [];
  const services = new Map<string, ServiceSpec>();
  const policies = new Map<string, { spec: AuthorizationPolicySpec; source: string }>();
  for (const { resource, source } of resources) {
    if (resource.kind === 'Service') services.set(resource.metadata.name, resource.spec);
    if (resource.kind === 'AuthorizationPolicy')
      policies.set(resource.metadata.name, { spec: resource.spec, source });
  }

  for (const [name, { spec, source }] of policies) {
    const target = spec.targetRef.name;
    let service = services.get(target);
    if (service === undefined) {
      const key = resourceKey('Service', target);
      const entry = await store.get<Stored<ServiceSpec>>(key);
      compares.push({ key, modRevision: entry?.modRevision ?? 0 });
      service = entry?.value.spec;
    }
    if (service === undefined) continue; // checked when the Service is applied
    const where = describeDocument(source, 'AuthorizationPolicy', name);
    for (const p of authorizationPortProblems(spec, target, service))
      problems.push(`${where}: ${p.field}: ${p.message}`);
  }

  if (services.size > 0) {
    const stored = await store.list<Stored<AuthorizationPolicySpec>>(
      kindPrefix('AuthorizationPolicy'),
    );
    for (const entry of stored.entries) {
      const name = entry.value.metadata.name;
      const service = services.get(entry.value.spec.targetRef.name);
      if (service === undefined || policies.has(name)) continue;
      compares.push({ key: entry.key, modRevision: entry.modRevision });
      const target = entry.value.spec.targetRef.name;
      const where = resources.find(
        (r) => r.resource.kind === 'Service' && r.resource.metadata.name === target,
      )!;
      for (const p of authorizationPortProblems(entry.value.spec, target, service))
        problems.push(
          `${describeDocument(where.source, 'Service', target)}: spec.ports: AuthorizationPolicy ${name} would no longer hold as written; change it first, or in the same apply: ${p.field}: ${p.message}`,
        );
    }
  }
  return { problems, compares };
}
