// The master's side of the session mirror: what a new worker starts from, and each change of
// the control plane session (snapshot, certificate) as one message for every worker. A
// snapshot is v8-serialized once per version, not once per worker, with its effective
// TrafficPolicies (computed here, where zod is loaded anyway, so no worker loads it).
import { serialize } from 'node:v8';
import type { EffectivePolicies } from '../../api/resources/traffic-policy-scopes.js';
import type { Identity } from '../../controlplane-client/identity-store.js';
import type { ControlPlaneSession } from '../../controlplane-client/session.js';
import { trafficOf } from '../../proxy/traffic-policies.js';
import type {
  CertificateRole,
  MirroredSnapshot,
  MirrorState,
  MirrorUpdate,
} from './worker-messages.js';

export class SessionPublisher {
  private encoded: { version: number; bytes: Uint8Array } | undefined;
  /** The last snapshot's effective TrafficPolicies: unchanged documents keep their objects. */
  private traffic: EffectivePolicies | undefined;

  constructor(private readonly session: ControlPlaneSession | undefined) {}

  state(): MirrorState {
    const s = this.session;
    if (!s) return { snapshot: undefined, trustBundlePem: '', node: undefined, services: [] };
    const services: [string, Identity][] = [];
    for (const name of s.certificates.serviceNames()) {
      const identity = s.certificates.service(name);
      if (identity) services.push([name, identity]);
    }
    return {
      snapshot: this.snapshotBytes(),
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
      const snapshot = this.snapshotBytes();
      if (snapshot) publish({ type: 'snapshot', snapshot, trustBundlePem: s.trustBundle() });
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

  private snapshotBytes(): Uint8Array | undefined {
    const snapshot = this.session?.snapshot();
    if (!snapshot) return undefined;
    if (this.encoded?.version !== snapshot.version) {
      const view = this.session!.view()!;
      this.traffic = trafficOf(view, this.traffic);
      const mirrored: MirroredSnapshot = {
        snapshot,
        traffic: { mesh: this.traffic.mesh, services: this.traffic.services },
      };
      this.encoded = { version: snapshot.version, bytes: serialize(mirrored) };
    }
    return this.encoded.bytes;
  }
}

function roleOf(s: ControlPlaneSession, identity: Identity): CertificateRole | undefined {
  if (identity === s.certificates.node) return { kind: 'node' };
  const service = s.certificates.serviceNames().find((n) => s.certificates.service(n) === identity);
  return service === undefined ? undefined : { kind: 'service', service };
}
