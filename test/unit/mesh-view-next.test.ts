// nextMeshView (src/controlplane-client/mesh-view.ts): a version's view made from the view
// before it and the resources that changed is the view made from the whole snapshot, and
// keeps the objects of what did not change; and the outbound route's endpoint index kept up to
// date in place from such views is the one made from the whole view.
import { describe, expect, it } from 'vitest';
import {
  changedResources,
  type MeshView,
  meshView,
  nextMeshView,
  type ResourceChange,
  type ViewResource,
} from '../../src/controlplane-client/mesh-view.js';
import { snapshotRules } from '../../src/controlplane-client/resource-rules.js';
import { LiveEndpointIndex } from '../../src/proxy/outbound/endpoint-index.js';
import { buildEndpointIndex } from '../../src/proxy/outbound/route.js';
import { serviceDoc, workloadDoc } from '../helpers/mesh-views.js';

type Doc = Record<string, unknown>;
const http = [{ port: 80, targetPort: 8080, protocol: 'http' }];

function resource(doc: Doc): [string, ViewResource] {
  const parsed = snapshotRules.parse(String(doc.kind), doc);
  if (!parsed.ok) throw new Error(`test resource does not validate: ${parsed.reason}`);
  const name = (doc.metadata as { name: string }).name;
  return [`${doc.kind}/${name}`, { kind: String(doc.kind), name, doc: parsed.doc }];
}

const base: Doc[] = [
  serviceDoc('a', '240.240.0.1', http),
  serviceDoc('b', '240.240.0.2', http),
  serviceDoc('c', '240.240.0.3', http),
  workloadDoc('n1', 'a', '10.0.0.1', 8080),
  workloadDoc('n2', 'a', '10.0.0.2', 8080),
  workloadDoc('n1', 'b', '10.0.0.1', 8080),
  workloadDoc('n3', 'c', '10.0.0.3', 8080),
];

/** Applies `set` and `removed` (keys) to base; the change list and both views. */
function step(set: Doc[], removed: string[]) {
  const before = new Map(base.map(resource));
  const after = new Map(before);
  const changes: ResourceChange[] = [];
  for (const key of removed) {
    changes.push({ before: before.get(key), after: undefined });
    after.delete(key);
  }
  for (const doc of set) {
    const [key, r] = resource(doc);
    changes.push({ before: before.get(key), after: r });
    after.set(key, r);
  }
  // What the master's session finds by identity is the same list of changes.
  const found = changedResources(before, after);
  expect(found).toHaveLength(changes.filter((c) => c.before ?? c.after).length);
  expect(found).toEqual(expect.arrayContaining(changes.filter((c) => c.before ?? c.after)));
  const previous = meshView({ version: 1, trustBundlePem: 'b1', resources: before });
  const source = { version: 2, trustBundlePem: 'b2', resources: after };
  return { previous, next: nextMeshView(previous, source, changes), whole: meshView(source) };
}

const retries = {
  apiVersion: 'weft/v1',
  kind: 'TrafficPolicy',
  metadata: { name: 'a-retries' },
  spec: { targetRef: { name: 'a' }, retries: { attempts: 2 } },
};

describe('nextMeshView', () => {
  it.each<[string, Doc[], string[], string[]]>([
    // what changes, set, removed, services whose endpoint lists stay the same objects
    ['an endpoint registers', [workloadDoc('n4', 'a', '10.0.0.4', 8080)], [], ['b', 'c']],
    ['an endpoint goes', [], ['Workload/n2-a-8080'], ['b', 'c']],
    ['the last endpoint of a service goes', [], ['Workload/n3-c-8080'], ['a', 'b']],
    [
      'an endpoint turns unhealthy',
      [workloadDoc('n1', 'b', '10.0.0.1', 8080, 'unhealthy')],
      [],
      ['a', 'c'],
    ],
    [
      'an endpoint of a service not declared yet',
      [workloadDoc('n5', 'z', '10.0.0.5', 8080)],
      [],
      ['a', 'b', 'c'],
    ],
    ['a service gets a new VIP', [serviceDoc('b', '240.240.0.9', http)], [], ['a', 'b', 'c']],
    ['a service goes', [], ['Service/c'], ['a', 'b', 'c']],
    ['a service is declared', [serviceDoc('d', '240.240.0.4', http)], [], ['a', 'b', 'c']],
    ['a policy (the whole view is made)', [retries], [], []],
    ['nothing', [], [], ['a', 'b', 'c']],
  ])('%s: the same view as from the whole snapshot', (_what, set, removed, kept) => {
    const { previous, next, whole } = step(set, removed);
    expect(next).toEqual(whole);
    // The outbound route's index, kept in place, is the one made from the whole view.
    const index = new LiveEndpointIndex();
    index.update(previous);
    index.update(next);
    expect(index.map).toEqual(buildEndpointIndex(next));
    for (const service of kept)
      expect(next.endpoints.get(service)).toBe((previous as MeshView).endpoints.get(service));
  });
});
