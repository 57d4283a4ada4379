// The master's updates to one worker (src/agent/workers/update-flow.ts): one write at a time; a
// newer snapshot replaces a waiting one; certificates are all delivered, in order.
import { describe, expect, it } from 'vitest';
import { UpdateFlow } from '../../src/agent/workers/update-flow.js';
import type { MirrorUpdate } from '../../src/agent/workers/worker-messages.js';

const snapshot = (n: number): MirrorUpdate => ({
  type: 'snapshot',
  snapshot: new Uint8Array([n]),
  trustBundlePem: `bundle ${n}`,
});
const certificate = (n: number): MirrorUpdate => ({
  type: 'certificate',
  role: { kind: 'node' },
  identity: { serial: String(n) } as never,
  trustBundlePem: `bundle ${n}`,
});
const name = (u: MirrorUpdate) => `${u.type[0]}${u.trustBundlePem.split(' ')[1]}`;

/** A flow over a channel that completes writes only when told to. */
function harness() {
  const written: string[] = [];
  const pending: (() => void)[] = [];
  const flow = new UpdateFlow((u, done) => {
    written.push(name(u));
    pending.push(done);
  });
  return { flow, written, finish: () => pending.shift()?.() };
}

describe('UpdateFlow', () => {
  it.each([
    // offered while the first write is in flight -> what the worker gets, in order
    ['snapshots: only the newest waits', [snapshot(1), snapshot(2), snapshot(3)], ['s1', 's3']],
    [
      'certificates: every one, in order',
      [certificate(1), certificate(2), certificate(3)],
      ['c1', 'c2', 'c3'],
    ],
    [
      'a newer snapshot drops the waiting one and follows the certificates before it',
      [snapshot(1), snapshot(2), certificate(3), snapshot(4)],
      ['s1', 'c3', 's4'],
    ],
    ['one snapshot: written at once', [snapshot(1)], ['s1']],
  ])('%s', (_what, offered, delivered) => {
    const { flow, written, finish } = harness();
    for (const u of offered) flow.offer(u);
    expect(written).toEqual([name(offered[0]!)]); // one write at a time
    while (flow.backlog > 0) finish();
    finish();
    expect(written).toEqual(delivered);
  });

  it('writes again at once after the channel took the last one', () => {
    const { flow, written, finish } = harness();
    flow.offer(snapshot(1));
    finish();
    flow.offer(snapshot(2));
    expect(written).toEqual(['s1', 's2']);
  });

  it('ignores a second completion of one write', () => {
    const written: string[] = [];
    let done: (() => void) | undefined;
    const flow = new UpdateFlow((u, d) => {
      written.push(name(u));
      done = d;
    });
    flow.offer(snapshot(1));
    flow.offer(snapshot(2));
    const first = done!;
    first();
    flow.offer(snapshot(3)); // waits: s2 is being written
    first(); // a stray second call must not start s3 beside s2
    expect(written).toEqual(['s1', 's2']);
  });
});
