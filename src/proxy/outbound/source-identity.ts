// Stage "identify" of the outbound path: which local workload opened the connection, so the
// tunnel presents that workload's certificate and the receiving side authorizes the real
// caller, not the host. The socket's owner (uid, systemd unit) is matched against the
// workloads of the agent config; a process that maps to no workload uses the node identity.
import type { WorkloadConfig } from '../../agent/config.js';
import type { Certificates } from '../../controlplane-client/certificates.js';
import type { SocketOwner } from '../../native/socket-ops.js';
import { lookupUser } from '../../sys/users.js';
import type { TunnelIdentity } from '../tunnel/index.js';

export interface SourceIdentity {
  /** The workload's service, or undefined for the node identity. */
  service: string | undefined;
  tunnel: TunnelIdentity;
}

export class SourceIdentities {
  private readonly byUid = new Map<number, string>();
  private readonly byUnit = new Map<string, string>();

  /** Resolves user names once, here, so that each connection does only map reads. */
  constructor(
    workloads: readonly WorkloadConfig[],
    private readonly certificates: Pick<Certificates, 'node' | 'service'>,
  ) {
    for (const w of workloads) {
      if (w.unit && !this.byUnit.has(w.unit)) this.byUnit.set(w.unit, w.service);
      const uid = w.user === undefined ? undefined : lookupUser(w.user)?.uid;
      if (uid !== undefined && !this.byUid.has(uid)) this.byUid.set(uid, w.service);
    }
  }

  /** Undefined only when the host holds no certificate at all (never joined). */
  forOwner(owner: SocketOwner | undefined): SourceIdentity | undefined {
    const service =
      owner && ((owner.unit && this.byUnit.get(owner.unit)) || this.byUid.get(owner.uid));
    const identity = (service && this.certificates.service(service)) || this.certificates.node;
    if (!identity) return undefined;
    const tunnel = { spiffeId: identity.spiffeId, key: identity.keyPem, cert: identity.certPem };
    return {
      service: identity === this.certificates.node ? undefined : service || undefined,
      tunnel,
    };
  }
}
