// The serials this control plane refuses on its own gRPC port: every certificate listed by a
// Revocation resource, followed from the store (so replicas sharing etcd agree), and added at
// once by the call that revokes (so a refusal holds from the moment that call returns). It also
// removes each Revocation resource once its last certificate has expired: nothing it lists can
// be presented any more.
import type { Logger } from 'pino';
import type { Revocation, RevocationReason } from '../../api/resources/index.js';
import { kindPrefix } from '../store/keys.js';
import { type Store, StoreCompactedError, type Watch } from '../store/store.js';
import { revocationCause } from './revocation.js';

export interface RevokedEntry {
  node: string;
  reason: RevocationReason;
  services?: string[];
  notAfterMs: number;
}

/** What a caller of the control plane needs: why a serial is revoked, if it is. */
export interface RevocationLookup {
  why(serial: string, now?: number): string | undefined;
}

const SWEEP_EVERY_MS = 60_000;
const PREFIX = kindPrefix('Revocation');

export class RevocationList implements RevocationLookup {
  private readonly bySerial = new Map<string, RevokedEntry>();
  /** The resources seen, by store key: their serials, and when the last one expires. */
  private readonly resources = new Map<string, { serials: string[]; lastNotAfterMs: number }>();
  private watch: Watch | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  private constructor(
    private readonly store: Store,
    private readonly log: Logger,
  ) {}

  static async start(store: Store, log: Logger): Promise<RevocationList> {
    const list = new RevocationList(store, log);
    await list.load();
    list.timer = setInterval(() => {
      list.sweep().catch((err: unknown) => log.warn({ err }, 'revocation sweep failed'));
    }, SWEEP_EVERY_MS);
    list.timer.unref();
    return list;
  }

  private async load(): Promise<void> {
    const { entries, revision } = await this.store.list<Revocation>(PREFIX);
    this.bySerial.clear();
    this.resources.clear();
    for (const e of entries) this.add(e.value, e.key);
    this.watch = this.store.watch(PREFIX, revision + 1, {
      onBatch: (batch) => {
        for (const event of batch.events) {
          if (event.type === 'put') this.add(event.entry.value as Revocation, event.key);
          else this.forget(event.key);
        }
      },
      onError: (err) => {
        if (this.stopped) return;
        if (err instanceof StoreCompactedError) {
          this.load().catch((e: unknown) =>
            this.log.error({ err: e }, 'cannot reload the revocation list'),
          );
          return;
        }
        this.log.error({ err }, 'the store watch behind the revocation list failed');
      },
    });
  }

  /** Takes a Revocation into account now (also what the watch does with each one stored). */
  add(doc: Revocation, key = `${PREFIX}${doc.metadata.name}`): void {
    const { node, reason, services, certificates } = doc.spec;
    const serials: string[] = [];
    let last = 0;
    for (const c of certificates) {
      const notAfterMs = Date.parse(c.notAfter);
      this.bySerial.set(c.serial, { node, reason, services, notAfterMs });
      serials.push(c.serial);
      last = Math.max(last, notAfterMs);
    }
    this.resources.set(key, { serials, lastNotAfterMs: last });
  }

  private forget(key: string): void {
    const resource = this.resources.get(key);
    if (resource === undefined) return;
    this.resources.delete(key);
    for (const serial of resource.serials) this.bySerial.delete(serial);
  }

  get(serial: string, now = Date.now()): RevokedEntry | undefined {
    const entry = this.bySerial.get(serial);
    return entry !== undefined && entry.notAfterMs > now ? entry : undefined;
  }

  why(serial: string, now = Date.now()): string | undefined {
    const entry = this.get(serial, now);
    return entry && revocationCause(entry.node, entry.reason, entry.services);
  }

  /** Deletes the Revocation resources whose every certificate has expired. */
  async sweep(now = Date.now()): Promise<void> {
    for (const [key, resource] of [...this.resources]) {
      if (resource.lastNotAfterMs > now) continue;
      const entry = await this.store.get(key);
      if (entry === undefined) continue;
      await this.store.delete(key, { prevModRevision: entry.modRevision });
    }
  }

  stop(): void {
    this.stopped = true;
    this.watch?.cancel();
    if (this.timer !== undefined) clearInterval(this.timer);
  }
}
