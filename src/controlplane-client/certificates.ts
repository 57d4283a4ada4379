// The certificates this host holds (its node identity and one identity per local service),
// and when each must be renewed: at half of its lifetime, like Linkerd and ztunnel, so that a
// control plane outage shorter than half a lifetime never lets one expire. Renewal swaps the
// identity in memory and on disk; nothing restarts, open connections keep their session.
import { EventEmitter } from 'node:events';
import type { Identity, IdentityStore } from './identity-store.js';

export interface CertificateEvents {
  /** A certificate was issued or renewed (also after loading from disk). */
  certificate: [identity: Identity];
  /** A certificate reached half-life: the session should renew it when it can. */
  due: [which: RenewalTarget];
}

/** What to renew: the node identity, or the identity of one local service. */
export type RenewalTarget = { kind: 'node' } | { kind: 'service'; service: string };

export class Certificates extends EventEmitter<CertificateEvents> {
  private nodeIdentity: Identity | undefined;
  private readonly services = new Map<string, Identity>();
  private readonly timers = new Map<string, NodeJS.Timeout>();

  constructor(private readonly store: IdentityStore) {
    super();
  }

  get node(): Identity | undefined {
    return this.nodeIdentity;
  }

  service(service: string): Identity | undefined {
    return this.services.get(service);
  }

  /** Every certificate held, node first. */
  all(): Identity[] {
    return [...(this.nodeIdentity ? [this.nodeIdentity] : []), ...this.services.values()];
  }

  bySpiffeId(spiffeId: string): Identity | undefined {
    return this.all().find((i) => i.spiffeId === spiffeId);
  }

  serviceNames(): string[] {
    return [...this.services.keys()];
  }

  /** Takes a node identity already on disk (loaded or just written by the join). */
  adoptNode(identity: Identity): void {
    this.nodeIdentity = identity;
    this.schedule('node', { kind: 'node' }, identity);
    this.emit('certificate', identity);
  }

  async setNode(identity: Identity): Promise<void> {
    await this.store.saveNodeIdentity(identity);
    this.adoptNode(identity);
  }

  adoptService(service: string, identity: Identity): void {
    this.services.set(service, identity);
    this.schedule(`svc/${service}`, { kind: 'service', service }, identity);
    this.emit('certificate', identity);
  }

  async setService(service: string, identity: Identity): Promise<void> {
    await this.store.saveWorkload(service, identity);
    this.adoptService(service, identity);
  }

  async dropService(service: string): Promise<void> {
    this.services.delete(service);
    this.clear(`svc/${service}`);
    await this.store.removeWorkload(service);
  }

  /** True when the certificate is missing or past half of its lifetime. */
  needsRenewal(identity: Identity | undefined, now = Date.now()): boolean {
    return identity === undefined || now >= renewAt(identity);
  }

  stop(): void {
    for (const key of [...this.timers.keys()]) this.clear(key);
  }

  private schedule(key: string, target: RenewalTarget, identity: Identity): void {
    this.clear(key);
    // setTimeout holds at most 2^31-1 ms (~24.8 days); a longer wait is re-armed in steps.
    const delay = Math.max(0, renewAt(identity) - Date.now());
    const timer = setTimeout(
      () => {
        this.timers.delete(key);
        if (Date.now() >= renewAt(identity)) this.emit('due', target);
        else this.schedule(key, target, identity);
      },
      Math.min(delay, 2 ** 31 - 1),
    );
    timer.unref();
    this.timers.set(key, timer);
  }

  private clear(key: string): void {
    const timer = this.timers.get(key);
    if (timer) clearTimeout(timer);
    this.timers.delete(key);
  }
}

/** The moment a certificate is due for renewal: half-way through its validity. */
export function renewAt(identity: Identity): number {
  const from = identity.info.notBefore.getTime();
  const to = identity.info.notAfter.getTime();
  return from + (to - from) / 2;
}
