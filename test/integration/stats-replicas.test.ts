// Control plane replicas on one etcd answer GetStats for the whole mesh: each keeps its own
// agents' reports and writes them under the node's lease, so another replica reads them, the
// replica holding a node's stream now has the newest, and a node whose lease ends takes its
// numbers with it (src/controlplane/stats/stats-share.ts, against a real etcd).
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StatsReport } from '../../src/api/stats-messages.js';
import { getStats } from '../../src/controlplane/stats/get-stats.js';
import { StatsBook } from '../../src/controlplane/stats/stats-book.js';
import { StatsShare } from '../../src/controlplane/stats/stats-share.js';
import { EtcdStore } from '../../src/controlplane/store/etcd-store.js';
import { nodeKey } from '../../src/controlplane/store/keys.js';
import { emptyBuckets, LATENCY_BOUNDS_MS } from '../../src/telemetry/latency-histogram.js';
import { startEtcd, type TestEtcd } from '../helpers/etcd.js';
import { waitFor } from '../helpers/wait.js';

let etcd: TestEtcd;
const stores: EtcdStore[] = [];
const log = pino({ level: 'silent' });

beforeAll(async () => {
  etcd = await startEtcd();
}, 120_000);

afterAll(async () => {
  for (const s of stores) await s.close();
  await etcd?.stop();
});

/** Two replicas: two stores on one etcd prefix, each with its own book. */
async function replicas(): Promise<[StatsShare, StatsShare, EtcdStore]> {
  const prefix = `/weft-stats-${process.pid}-${Date.now()}/`;
  const open = () => EtcdStore.open({ endpoints: [etcd.endpoint], prefix });
  const [a, b] = [await open(), await open()];
  stores.push(a, b);
  return [
    new StatsShare({ book: new StatsBook(), log, store: a }),
    new StatsShare({ book: new StatsBook(), log, store: b }),
    a,
  ];
}

function report(service: string, requests: number, successes: number): StatsReport {
  const buckets = emptyBuckets();
  buckets[3] = requests;
  return {
    startUnixMs: 0,
    endUnixMs: 10_000,
    series: [
      {
        kind: 'inbound',
        srcService: '',
        dstService: service,
        route: '',
        requests,
        successes,
        latencyBuckets: buckets,
        inFlight: 0,
        tcpOpened: 0,
        tcpOpen: 0,
        bytesIn: 0,
        bytesOut: 0,
      },
    ],
    foldedSeries: 0,
    latencyBoundsMs: [...LATENCY_BOUNDS_MS],
  };
}

/** A joined node's record, with a lease its workloads (and now its stats) hang on. */
async function joinNode(store: EtcdStore, name: string): Promise<string> {
  const lease = await store.grantLease(60_000);
  await store.put(nodeKey(name), { name, lease });
  return lease;
}

const orders = async (share: StatsShare) =>
  (await getStats(share, { window: '1m' })).services.find((r) => r.dstService === 'orders');

describe('stats across replicas on etcd', () => {
  it('each replica answers for the agents of both', async () => {
    const [a, b, store] = await replicas();
    await joinNode(store, 'node1');
    await joinNode(store, 'node2');
    a.report('node1', report('orders', 30, 30));
    b.report('node2', report('orders', 10, 0));
    for (const share of [a, b])
      await waitFor(
        'both agents in the answer',
        async () => (await orders(share))?.requests === 40,
      );
    expect(await orders(a)).toMatchObject({ requests: 40, successes: 30, nodes: 2 });
  });

  it('a node that moved to the other replica: the newest reports win, none counted twice', async () => {
    const [a, b, store] = await replicas();
    await joinNode(store, 'node1');
    a.report('node1', report('orders', 5, 5));
    await waitFor('the first report shared', async () => (await orders(b))?.requests === 5);
    b.report('node1', report('orders', 7, 7));
    await waitFor(
      "the new replica's reports in the other one",
      async () => (await orders(a))?.requests === 7,
    );
    expect(await orders(b)).toMatchObject({ requests: 7 });
  });

  it("a node whose lease ends takes its numbers out of the other replicas' answers", async () => {
    const [a, b, store] = await replicas();
    const lease = await joinNode(store, 'node1');
    await joinNode(store, 'node2');
    a.report('node1', report('orders', 5, 5));
    a.report('node2', report('users', 1, 1));
    await waitFor('node1 shared', async () => (await orders(b))?.requests === 5);
    await store.revokeLease(lease);
    await waitFor('node1 gone', async () => (await orders(b)) === undefined);
    // The sentinel: node2's numbers, under a lease still alive, are still there.
    const users = (await getStats(b, { window: '1m' })).services.map((r) => r.dstService);
    expect(users).toEqual(['users']);
  });

  it('refuses a window it does not offer, naming the ones it does', async () => {
    const [a] = await replicas();
    await expect(getStats(a, { window: '5m' })).rejects.toThrow(
      'window "5m" is not one of 1m, last',
    );
  });
});
