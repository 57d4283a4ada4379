// A worker's copy of what its data plane reads of the master's control plane session (the
// DataPlaneSession slice): the mesh view, the trust bundle, the node and service certificates,
// and their change events. Fed by the master's messages (worker-messages.ts): it keeps the
// resources and effective TrafficPolicies of the version it holds, applies each version's
// changes to them (objects of what did not change stay, so what the data plane compiled from
// them stays valid), builds its MeshView, and hands the data plane the TrafficPolicies of each
// view (trafficOf).
import { EventEmitter } from 'node:events';
import type { EffectivePolicy } from '../../api/resources/traffic-policy-scopes.js';
import type { Identity } from '../../controlplane-client/identity-store.js';
import {
  type MeshView,
  meshView,
  nextMeshView,
  type ResourceChange,
  type ViewResource,
} from '../../controlplane-client/mesh-view.js';
import { WeftError } from '../../errors.js';
import type { DataPlaneSession } from '../../proxy/data-plane.js';
import type { ResolvedTraffic } from '../../proxy/mesh-state.js';
import { applyChanges } from './mirror-delta.js';
import type { MirroredSnapshot, MirrorState, MirrorUpdate } from './worker-messages.js';

interface MirrorEvents {
  snapshot: [view: MeshView];
  certificate: [identity: Identity];
}

class MirroredCertificates {
  node: Identity | undefined;
  readonly services = new Map<string, Identity>();

  service(service: string): Identity | undefined {
    return this.services.get(service);
  }
}

export class SessionMirror extends EventEmitter<MirrorEvents> implements DataPlaneSession {
  readonly certificates = new MirroredCertificates();
  private current: MeshView | undefined;
  /** The held version's resources and effective TrafficPolicies, changed in place. */
  private readonly resources = new Map<string, ViewResource>();
  private readonly services = new Map<string, EffectivePolicy>();
  private mesh: EffectivePolicy | undefined;
  /** The effective TrafficPolicies that came with each view still referenced. */
  private readonly traffic = new WeakMap<MeshView, ResolvedTraffic>();
  private bundle: string;

  constructor(state: MirrorState) {
    super();
    this.bundle = state.trustBundlePem;
    this.certificates.node = state.node;
    for (const [service, identity] of state.services)
      this.certificates.services.set(service, identity);
    if (state.snapshot) this.current = this.decode(state.snapshot);
  }

  view(): MeshView | undefined {
    return this.current;
  }

  trustBundle(): string {
    return this.current?.trustBundlePem || this.bundle;
  }

  /** The data plane's TrafficResolver: the policies the master computed for this view. */
  readonly trafficOf = (view: MeshView): ResolvedTraffic => {
    const traffic = this.traffic.get(view);
    if (traffic === undefined)
      throw new WeftError('WEFT_E_INTERNAL', 'a view the master did not send: no TrafficPolicies');
    return traffic;
  };

  private decode(m: MirroredSnapshot): MeshView {
    if (m.baseVersion === undefined) {
      this.resources.clear();
      this.services.clear();
    } else if (m.baseVersion !== this.current?.version) {
      // The master sends each worker every version in order (update-flow.ts merges those that
      // wait), so this is a bug: said loudly rather than serving a view that is not the mesh's.
      throw new WeftError(
        'WEFT_E_INTERNAL',
        `snapshot changes from version ${m.baseVersion} arrived at a worker holding ${this.current?.version ?? 'none'}`,
      );
    }
    const previous = m.baseVersion === undefined ? undefined : this.current;
    const changes: ResourceChange[] = [];
    if (previous) {
      for (const key of m.resources.removed)
        changes.push({ before: this.resources.get(key), after: undefined });
      for (const [key, after] of m.resources.set)
        changes.push({ before: this.resources.get(key), after });
    }
    applyChanges(this.resources, m.resources);
    applyChanges(this.services, m.services);
    if (m.mesh) this.mesh = m.mesh.policy;
    const source = {
      version: m.version,
      trustBundlePem: m.trustBundlePem,
      resources: this.resources,
    };
    const view = previous
      ? nextMeshView(
          previous,
          source,
          changes.filter((c) => c.before ?? c.after),
        )
      : meshView(source);
    this.traffic.set(view, { mesh: this.mesh, services: new Map(this.services) });
    return view;
  }

  /** A change from the master, applied and announced as the session would announce it. */
  apply(update: MirrorUpdate): void {
    this.bundle = update.trustBundlePem;
    if (update.type === 'snapshot') {
      this.current = this.decode(update.snapshot);
      this.emit('snapshot', this.current);
      return;
    }
    if (update.role.kind === 'node') this.certificates.node = update.identity;
    else this.certificates.services.set(update.role.service, update.identity);
    this.emit('certificate', update.identity);
  }
}
