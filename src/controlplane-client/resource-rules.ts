// What makes a snapshot acceptable to this agent: each document of a kind it knows must pass
// the shared schema of that kind (../api/resources, the same the control plane applies), and
// the whole must be consistent (one Mesh at most; no two Services on one virtual IP). A kind
// this agent does not know (a newer control plane) is kept as it came and left unused, so that
// a control plane upgrade does not freeze every older agent on its last version.
import { isIPv4 } from 'node:net';
import { RESOURCE_KINDS, validateResource } from '../api/resources/index.js';
import type { SnapshotResource, SnapshotRules } from './snapshot.js';

const known = new Set<string>(RESOURCE_KINDS);

export const snapshotRules: SnapshotRules = {
  parse(kind, doc) {
    if (!known.has(kind)) return { ok: true, doc: doc as Record<string, unknown> };
    const result = validateResource(doc, { allowInternal: true });
    if (!result.ok) return { ok: false, reason: result.problems.join('; ') };
    // A TrafficPolicy is kept as written: its defaults are filled in after it is merged with
    // the Mesh's (api/resources/traffic-policy-scopes.ts), so that a default never hides a
    // value the Mesh's policy sets.
    if (kind === 'TrafficPolicy') return { ok: true, doc: doc as Record<string, unknown> };
    return { ok: true, doc: result.resource as unknown as Record<string, unknown> };
  },
  checkConsistency(resources) {
    return oneMesh(resources) ?? uniqueVips(resources);
  },
};

function oneMesh(resources: ReadonlyMap<string, SnapshotResource>): string | undefined {
  const meshes = [...resources.values()].filter((r) => r.kind === 'Mesh').map((r) => r.name);
  return meshes.length > 1 ? `more than one Mesh: ${meshes.join(', ')}` : undefined;
}

function uniqueVips(resources: ReadonlyMap<string, SnapshotResource>): string | undefined {
  const owner = new Map<string, string>();
  for (const r of resources.values()) {
    if (r.kind !== 'Service') continue;
    const vip = (r.doc as { status?: { vip?: string } }).status?.vip;
    if (vip === undefined) continue;
    if (!isIPv4(vip))
      return `Service/${r.name}: status.vip ${JSON.stringify(vip)} is not an IPv4 address`;
    const other = owner.get(vip);
    if (other !== undefined)
      return `Service/${r.name} and Service/${other} share the virtual IP ${vip}`;
    owner.set(vip, r.name);
  }
  return undefined;
}
