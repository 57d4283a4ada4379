// The master's side of the session mirror: what a new worker starts from (the whole snapshot),
// and each change of the control plane session as one message for every worker: for a
// snapshot, what changed since the version published before (mirror-delta.ts), with the
// effective TrafficPolicies that changed (computed here, where zod is loaded anyway, so no
// worker loads it). Sending only changes keeps a worker from decoding 10,000 endpoints each
// time one changes (a worker's heap grew to 110 MiB during a registration storm) and keeps its
// objects of what did not change.
import type { Service, Workload } from '../../api/resources/index.js';
import type { EffectivePolicies } from '../../api/resources/traffic-policy-scopes.js';
import type { Identity } from '../../controlplane-client/identity-store.js';
import { endpointFields, type ViewResource } from '../../controlplane-client/mesh-view.js';
import type { ControlPlaneSession } from '../../controlplane-client/session.js';
import type { Snapshot, SnapshotResource } from '../../controlplane-client/snapshot.js';
import { trafficOf } from '../../proxy/traffic-policies.js';
import { diffMaps } from './mirror-delta.js';
import type {
  CertificateRole,
  MirroredSnapshot,
  MirrorState,
  MirrorUpdate,
} from './worker-messages.js';

/** The last snapshot published to the workers, and its effective TrafficPolicies. */
interface Published {
  snapshot: Snapshot;
  traffic: EffectivePolicies;
}

export class SessionPublisher {
  private published: Published | undefined;

  constructor(private readonly session: ControlPlaneSession | undefined) {}

  /**
   * What a new worker starts from: the snapshot last published (the next change reaches it as
   * it reaches the others), or the session's first one.
   */
  state(): MirrorState {
    const s = this.session;
    if (!s) return { snapshot: undefined, trustBundlePem: '', node: undefined, services: [] };
    const services: [string, Identity][] = [];
    for (const name of s.certificates.serviceNames()) {
      const identity = s.certificates.service(name);
      if (identity) services.push([name, identity]);
    }
    if (this.published === undefined) this.publish();
    const p = this.published;
    return {
      snapshot: p && changes(undefined, p),
      trustBundlePem: s.trustBundle(),
      node: s.certificates.node,
      services,
    };
  }

  /** Calls `publish` with every change from now on; returns a function that stops it. */
  follow(publish: (update: MirrorUpdate) => void): () => void {
    const s = this.session;
    if (!s) return () => {};
    const onSnapshot = () => {
      const before = this.published;
      const now = this.publish();
      if (now === undefined || now === before) return;
      publish({
        type: 'snapshot',
        snapshot: changes(before, now),
        trustBundlePem: s.trustBundle(),
      });
    };
    const onCertificate = (identity: Identity) => {
      const role = roleOf(s, identity);
      if (role) publish({ type: 'certificate', role, identity, trustBundlePem: s.trustBundle() });
    };
    s.on('snapshot', onSnapshot);
    s.on('certificate', onCertificate);
    return () => {
      s.off('snapshot', onSnapshot);
      s.off('certificate', onCertificate);
    };
  }

  /** Takes the session's snapshot as the published one (unchanged when it is the same). */
  private publish(): Published | undefined {
    const snapshot = this.session?.snapshot();
    if (!snapshot) return this.published;
    if (this.published?.snapshot.version === snapshot.version) return this.published;
    const traffic = trafficOf(this.session!.view()!, this.published?.traffic);
    this.published = { snapshot, traffic };
    return this.published;
  }
}

/** From `before` (undefined: nothing) to `after`, as a worker applies it. */
function changes(before: Published | undefined, after: Published): MirroredSnapshot {
  const mesh = after.traffic.mesh;
  return {
    version: after.snapshot.version,
    baseVersion: before?.snapshot.version,
    trustBundlePem: after.snapshot.trustBundlePem,
    resources: diffMaps(before?.snapshot.resources, after.snapshot.resources, viewResource),
    services: diffMaps(before?.traffic.services, after.traffic.services),
    ...(before === undefined || before.traffic.mesh !== mesh ? { mesh: { policy: mesh } } : {}),
  };
}

/**
 * What a worker's view reads of a resource (mesh-view.ts): no wire JSON, and of the 10,000s of
 * Workloads and Services only the fields a view takes, since a worker keeps them all to apply
 * later changes to. Policies and the rest go whole: the data path reads their specs.
 */
function viewResource(r: SnapshotResource): ViewResource {
  const name = r.name;
  if (r.kind === 'Workload') {
    const spec = endpointFields((r.doc as unknown as Workload).spec);
    return { kind: r.kind, name, doc: { metadata: { name }, spec } };
  }
  if (r.kind === 'Service') {
    const doc = r.doc as unknown as Service;
    const status = { vip: doc.status?.vip };
    return {
      kind: r.kind,
      name,
      doc: { metadata: { name }, spec: { ports: doc.spec.ports }, status },
    };
  }
  return { kind: r.kind, name, doc: r.doc };
}

function roleOf(s: ControlPlaneSession, identity: Identity): CertificateRole | undefined {
  if (identity === s.certificates.node) return { kind: 'node' };
  const service = s.certificates.serviceNames().find((n) => s.certificates.service(n) === identity);
  return service === undefined ? undefined : { kind: 'service', service };
}
