// Lease keep-alives to etcd over one long-lived stream (etcd's LeaseKeepAlive is a stream of
// requests and answers), instead of a stream per keep-alive: a replica keeps every connected
// node's lease alive about once a second. Answers carry the lease ID and come in order, so each
// one settles the oldest waiting keep-alive of that lease. A broken stream fails what waits on
// it; the next keep-alive opens a new one.
import type { Etcd3 } from 'etcd3';

type KeepAliveStream = Awaited<ReturnType<Etcd3['leaseClient']['leaseKeepAlive']>>;

interface Waiter {
  resolve(ttlSeconds: number): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

export class EtcdKeepAlives {
  private readonly client: Etcd3;
  private readonly timeoutMs: number;
  private stream: KeepAliveStream | undefined;
  private opening: Promise<KeepAliveStream> | undefined;
  private readonly waiting = new Map<string, Waiter[]>();

  constructor(client: Etcd3, timeoutMs: number) {
    this.client = client;
    this.timeoutMs = timeoutMs;
  }

  /** The lease's TTL in seconds after this keep-alive; 0 when etcd does not have the lease. */
  async keepAlive(lease: string): Promise<number> {
    const stream = await this.open();
    return new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.drop(lease, waiter);
        reject(new Error(`no keep-alive answer within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      const waiter: Waiter = { resolve, reject, timer };
      const queue = this.waiting.get(lease) ?? [];
      queue.push(waiter);
      this.waiting.set(lease, queue);
      stream.write({ ID: lease });
    });
  }

  private drop(lease: string, waiter: Waiter): void {
    const queue = this.waiting.get(lease);
    if (queue === undefined) return;
    const i = queue.indexOf(waiter);
    if (i >= 0) queue.splice(i, 1);
    if (queue.length === 0) this.waiting.delete(lease);
  }

  private open(): Promise<KeepAliveStream> {
    if (this.stream !== undefined) return Promise.resolve(this.stream);
    this.opening ??= this.client.leaseClient.leaseKeepAlive().then(
      (stream) => {
        this.opening = undefined;
        this.stream = stream;
        stream.on('data', (res: { ID: string; TTL: string }) => {
          const id = String(res.ID);
          const waiter = this.waiting.get(id)?.shift();
          if (this.waiting.get(id)?.length === 0) this.waiting.delete(id);
          if (waiter === undefined) return;
          clearTimeout(waiter.timer);
          waiter.resolve(Number(res.TTL));
        });
        const broken = (err: Error) => {
          if (this.stream !== stream) return;
          this.stream = undefined;
          this.failAll(err);
        };
        stream.on('error', broken);
        stream.on('end', () => broken(new Error('etcd ended the keep-alive stream')));
        return stream;
      },
      (err: Error) => {
        this.opening = undefined;
        throw err;
      },
    );
    return this.opening;
  }

  private failAll(err: Error): void {
    for (const queue of this.waiting.values())
      for (const waiter of queue) {
        clearTimeout(waiter.timer);
        waiter.reject(err);
      }
    this.waiting.clear();
  }

  close(): void {
    const stream = this.stream;
    this.stream = undefined;
    if (stream !== undefined) {
      stream.on('error', () => {}); // the cancellation surfaces as an error
      stream.cancel();
    }
    this.failAll(new Error('the store is closed'));
  }
}
