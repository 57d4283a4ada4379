// Where the control plane replicas sharing a store find each other: each registers its gRPC
// address under /replicas/<id>, attached to a lease it keeps alive, so a replica that dies
// drops out once its lease expires and one that stops drops out at once (lease revoked).
// Replicas ask each other for what only a peer has: the agents connected to it (`weft tap`).
import { randomUUID } from 'node:crypto';
import { isIP } from 'node:net';
import type { Logger } from 'pino';
import { REPLICAS_PREFIX, replicaKey } from '../store/keys.js';
import type { Store } from '../store/store.js';

export interface ReplicaRecord {
  id: string;
  /** host:port of its gRPC server, as a peer dials it. */
  address: string;
}

/** The lease's TTL: a replica killed with SIGKILL is still listed for at most this long. */
const TTL_MS = 10_000;
const KEEPALIVE_MS = 3_000;

/**
 * The address peers dial: the listen address when it is one, else the first advertised
 * address that is not loopback (peers are other hosts), else the loopback one.
 */
export function replicaAddress(listen: string, advertise: readonly string[], port: number): string {
  const host = (h: string) => (isIP(h) === 6 ? `[${h}]` : h);
  if (listen !== '0.0.0.0' && listen !== '::') return `${host(listen)}:${port}`;
  const loopback = (h: string) => h === 'localhost' || h === '::1' || h.startsWith('127.');
  const usable = advertise.filter((h) => !loopback(h));
  const pick = usable.find((h) => isIP(h) !== 0) ?? usable[0];
  return `${host(pick ?? (listen === '::' ? '::1' : '127.0.0.1'))}:${port}`;
}

export class ReplicaDirectory {
  readonly id = randomUUID();
  private lease: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private address = '';

  constructor(
    private readonly store: Store,
    private readonly log: Logger,
  ) {}

  /** Registers this replica (peers dial `address`) and keeps it registered until stop(). */
  async start(address: string): Promise<void> {
    this.address = address;
    await this.register();
    const tick = () => {
      this.timer = setTimeout(() => {
        this.refresh()
          .catch((err: unknown) =>
            this.log.debug({ err: (err as Error).message }, 'replica registration: will retry'),
          )
          .finally(() => {
            if (!this.stopped) tick();
          });
      }, KEEPALIVE_MS);
      this.timer.unref();
    };
    tick();
  }

  private async register(): Promise<void> {
    const lease = await this.store.grantLease(TTL_MS);
    const record: ReplicaRecord = { id: this.id, address: this.address };
    await this.store.put(replicaKey(this.id), record, { lease });
    this.lease = lease;
  }

  /** Keeps the lease alive; registers again when it expired (the store was out of reach). */
  private async refresh(): Promise<void> {
    if (this.lease !== undefined && (await this.store.keepAlive(this.lease))) return;
    this.lease = undefined;
    await this.register();
  }

  /** The other replicas registered now. */
  async peers(): Promise<ReplicaRecord[]> {
    const { entries } = await this.store.list<ReplicaRecord>(REPLICAS_PREFIX);
    return entries.map((e) => e.value).filter((r) => r.id !== this.id);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    const lease = this.lease;
    this.lease = undefined;
    if (lease !== undefined) await this.store.revokeLease(lease).catch(() => undefined);
  }
}
