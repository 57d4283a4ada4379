// Mesh views for data-path tests: resources written as an operator applies them and an agent
// registers them, validated by the agent's snapshot rules (defaults such as targetPort filled
// in; TrafficPolicies kept as written) and shaped by meshView(), exactly as an accepted
// snapshot is.
import { type MeshView, meshView } from '../../src/controlplane-client/mesh-view.js';
import { snapshotRules } from '../../src/controlplane-client/resource-rules.js';
import type { SnapshotResource } from '../../src/controlplane-client/snapshot.js';

export interface PortInput {
  port: number;
  targetPort?: number;
  protocol?: string;
}

/** A Service document with a virtual IP already allocated. */
export function serviceDoc(name: string, vip: string, ports: PortInput[]) {
  return {
    apiVersion: 'weft/v1',
    kind: 'Service',
    metadata: { name },
    spec: { ports },
    status: { vip },
  };
}

/** A Workload document as an agent registers it: named <node>-<service>-<port>. */
export function workloadDoc(
  node: string,
  service: string,
  address: string,
  port: number,
  health: 'healthy' | 'unhealthy' | 'unknown' = 'healthy',
) {
  return {
    apiVersion: 'weft/v1',
    kind: 'Workload',
    metadata: { name: `${node}-${service}-${port}` },
    spec: { service, node, address, port, health },
  };
}

/** The view of a snapshot holding these documents; a document that does not validate throws. */
export function viewOf(docs: readonly Record<string, unknown>[], version = 1): MeshView {
  const resources = new Map<string, SnapshotResource>();
  for (const doc of docs) {
    const result = snapshotRules.parse(String(doc.kind), doc);
    if (!result.ok) throw new Error(`test resource does not validate: ${result.reason}`);
    const r = result.doc as Record<string, unknown> & { kind: string; metadata: { name: string } };
    resources.set(`${r.kind}/${r.metadata.name}`, {
      kind: r.kind,
      name: r.metadata.name,
      revision: 1,
      doc: r,
      json: JSON.stringify(doc),
    });
  }
  return meshView({ version, trustBundlePem: '', resources });
}
