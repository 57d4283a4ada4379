// What the control plane concludes from a node's silence, and what a heartbeat changes: silence
// marks workloads stale and keeps their health (it never makes them unhealthy), long silence
// removes them, a heartbeat clears any mark, including one an earlier version wrote.
import { describe, expect, it } from 'vitest';
import type { Workload } from '../../src/api/resources/index.js';
import {
  afterHeartbeat,
  judgeSilence,
  markedStale,
  type NodeVerdict,
} from '../../src/controlplane/sync/silence.js';

const limits = { workloadStaleAfter: 20_000, workloadRemoveAfter: 300_000 };

function workload(health: Workload['spec']['health'], status?: Workload['status']): Workload {
  return {
    apiVersion: 'weft/v1',
    kind: 'Workload',
    metadata: { name: 'node2-echo-8080' },
    spec: { service: 'echo', node: 'node2', address: '10.0.0.2', port: 8080, health, weight: 1 },
    ...(status ? { status } : {}),
  };
}

describe('judgeSilence', () => {
  const table: Array<[number, NodeVerdict]> = [
    [0, 'fresh'],
    [19_999, 'fresh'],
    [20_000, 'stale'],
    [120_000, 'stale'], // a two-minute partition: shown, not judged
    [299_999, 'stale'],
    [300_000, 'remove'],
  ];
  for (const [silentMs, verdict] of table) {
    it(`${silentMs} ms silent -> ${verdict}`, () =>
      expect(judgeSilence(silentMs, limits)).toBe(verdict));
  }
});

describe('markedStale', () => {
  const lastSeen = Date.parse('2026-01-02T03:04:05.000Z');
  const stale = { stale: true, reason: 'NodeSilent', lastSeen: '2026-01-02T03:04:05.000Z' };

  it('keeps the health the node reported', () => {
    for (const health of ['healthy', 'unhealthy', 'unknown'] as const) {
      expect(markedStale(workload(health), lastSeen)).toEqual(workload(health, stale));
    }
  });

  it('leaves a workload already marked stale alone', () => {
    expect(markedStale(workload('healthy', stale), lastSeen + 5_000)).toBeUndefined();
  });

  it("undoes an earlier version's override with the health the node reported", () => {
    const legacy = workload('unhealthy', {
      reason: 'NodeHeartbeatLost',
      reportedHealth: 'healthy',
    });
    expect(markedStale(legacy, lastSeen)).toEqual(workload('healthy', stale));
  });
});

describe('afterHeartbeat', () => {
  const stale = { stale: true, reason: 'NodeSilent', lastSeen: '2026-01-02T03:04:05.000Z' };
  const table: Array<
    [string, Workload, Workload['spec']['health'] | undefined, Workload | undefined]
  > = [
    ['same health, not marked: nothing to write', workload('healthy'), 'healthy', undefined],
    ['not in the heartbeat, not marked: nothing', workload('healthy'), undefined, undefined],
    ['a new health is written', workload('healthy'), 'unhealthy', workload('unhealthy')],
    ['a stale mark is cleared', workload('healthy', stale), 'healthy', workload('healthy')],
    [
      'a stale mark is cleared even when the workload is not reported',
      workload('healthy', stale),
      undefined,
      workload('healthy'),
    ],
    [
      'a stale mark is cleared with the new health',
      workload('healthy', stale),
      'unhealthy',
      workload('unhealthy'),
    ],
    [
      "an earlier version's override is undone",
      workload('unhealthy', { reason: 'NodeHeartbeatLost', reportedHealth: 'healthy' }),
      undefined,
      workload('healthy'),
    ],
  ];
  for (const [name, before, reported, after] of table) {
    it(name, () => expect(afterHeartbeat(before, reported)).toEqual(after));
  }
});
