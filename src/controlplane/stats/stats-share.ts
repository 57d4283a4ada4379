// The agents' stats across control plane replicas. Each replica keeps its own agents' reports
// in memory (StatsBook); on etcd it also writes each node's recent reports to /stats/<node>
// under the node's lease (size-bounded by the book), so any replica answers GetStats for the
// whole mesh from one list, and a node that stops heart-beating takes its numbers with it.
// Chosen over an admin query fanned out to every replica: replicas do not know each other's
// addresses (agents and the CLI do), and a replica that is down would leave a hole, where its
// agents' last reports in the store stay readable until they age out.
import type { Logger } from 'pino';
import type { StatsReport } from '../../api/stats-messages.js';
import type { NodeRecord } from '../identity/node-record.js';
import { nodeKey, STATS_PREFIX, statsKey } from '../store/keys.js';
import type { Store } from '../store/store.js';
import type { ReceivedReport, StatsBook } from './stats-book.js';

export interface StatsShareOptions {
  book: StatsBook;
  log: Logger;
  /** Set when replicas share the store (etcd): reports are written there too. */
  store?: Store;
  now?: () => number;
}

export class StatsShare {
  readonly book: StatsBook;
  private readonly store: Store | undefined;
  private readonly log: Logger;
  private readonly now: () => number;
  /** The nodes whose last report was refused, so each is logged once per reason. */
  private readonly refused = new Map<string, string>();
  /** Each node's lease as last read (one read per node, not per report); dropped on failure. */
  private readonly leases = new Map<string, string>();

  constructor(options: StatsShareOptions) {
    this.book = options.book;
    this.store = options.store;
    this.log = options.log;
    this.now = options.now ?? Date.now;
  }

  /** A report from one of this replica's agents. */
  report(node: string, report: StatsReport): void {
    const problem = this.book.add(node, report);
    if (problem !== undefined) {
      if (this.refused.get(node) !== problem)
        this.log.warn(
          { node, err: problem },
          'stats report not kept: the agent builds reports over the bounds; upgrade it',
        );
      this.refused.set(node, problem);
      return;
    }
    this.refused.delete(node);
    if (this.store !== undefined)
      this.publish(this.store, node).catch((err: unknown) =>
        this.log.debug({ err, node }, 'stats report not shared with the other replicas'),
      );
  }

  forget(node: string): void {
    this.book.forget(node);
    this.leases.delete(node);
    this.store?.delete(statsKey(node)).catch(() => {});
  }

  /** Every node's reports in the window: this replica's, and on etcd the other replicas'. */
  async reports(): Promise<Map<string, ReceivedReport[]>> {
    const mine = this.book.reports();
    if (this.store === undefined) return mine;
    const now = this.now();
    const { entries } = await this.store.list<ReceivedReport[]>(STATS_PREFIX);
    for (const { key, value } of entries) {
      const node = key.slice(STATS_PREFIX.length);
      const theirs = (Array.isArray(value) ? value : []).filter(
        (r) => now - r.atMs < this.book.windowMs,
      );
      const local = mine.get(node);
      // The replica holding the node's stream now has the newest report.
      if (theirs.length > 0 && (local === undefined || theirs.at(-1)!.atMs > local.at(-1)!.atMs))
        mine.set(node, theirs);
    }
    return mine;
  }

  private async publish(store: Store, node: string): Promise<void> {
    const reports = this.book.reports().get(node);
    if (reports === undefined) return;
    let lease = this.leases.get(node);
    if (lease === undefined) {
      // A node without workloads has no lease yet: read again next time, it may have one then.
      lease = (await store.get<NodeRecord>(nodeKey(node)))?.value.lease;
      if (lease !== undefined) this.leases.set(node, lease);
    }
    try {
      await store.put(statsKey(node), reports, lease === undefined ? {} : { lease });
    } catch (err) {
      // The lease ended (the node was silent, or got a new one): read it again next time.
      this.leases.delete(node);
      throw err;
    }
  }
}
