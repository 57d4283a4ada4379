// A worker's copy of what its data plane reads of the master's control plane session (the
// DataPlaneSession slice): the mesh view, the trust bundle, the node and service certificates,
// and their change events. Fed by the master's messages (worker-messages.ts); decodes each
// snapshot once per worker into its own MeshView, and hands the data plane the effective
// TrafficPolicies the master computed with it (trafficOf).
import { EventEmitter } from 'node:events';
import { deserialize } from 'node:v8';
import type { Identity } from '../../controlplane-client/identity-store.js';
import { type MeshView, meshView } from '../../controlplane-client/mesh-view.js';
import { WeftError } from '../../errors.js';
import type { DataPlaneSession } from '../../proxy/data-plane.js';
import type { ResolvedTraffic } from '../../proxy/mesh-state.js';
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

  private decode(bytes: Uint8Array): MeshView {
    const { snapshot, traffic } = deserialize(bytes) as MirroredSnapshot;
    const view = meshView(snapshot);
    this.traffic.set(view, traffic);
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
