// onBodyEnd: what stream.finished() says of a readable body (its replacement on the inbound
// path), case by case: both are asked of the same stream and must agree.
import { finished, PassThrough, type Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { onBodyEnd } from '../../src/proxy/http/body-end.js';

type Outcome = { err: string | undefined; calls: number };

function watch(
  body: Readable,
  how: (b: Readable, cb: (err?: Error | null) => void) => void,
): () => Outcome {
  const seen: Outcome = { err: 'not called', calls: 0 };
  how(body, (err) => {
    seen.calls += 1;
    seen.err = err ? `${(err as NodeJS.ErrnoException).code ?? ''} ${err.message}` : undefined;
  });
  return () => seen;
}

const ours = (b: Readable, cb: (err?: Error | null) => void) => onBodyEnd(b, cb);
const node = (b: Readable, cb: (err?: Error | null) => void) =>
  finished(b, { writable: false }, cb);

const cases: Array<{
  name: string;
  before?: (b: PassThrough) => Promise<void>;
  after: (b: PassThrough) => void;
}> = [
  { name: 'read to its end', after: (b) => b.end('body') },
  { name: 'errored mid-body', after: (b) => b.destroy(new Error('upstream reset')) },
  { name: 'closed before its end, no error', after: (b) => b.destroy() },
  {
    name: 'already ended when watched',
    before: async (b) => {
      b.end('x');
      await new Promise((r) => b.once('end', r));
    },
    after: () => {},
  },
  {
    name: 'already destroyed when watched',
    before: async (b) => {
      b.destroy();
      await new Promise((r) => b.once('close', r));
    },
    after: () => {},
  },
  {
    name: 'already errored when watched',
    before: async (b) => {
      b.on('error', () => {});
      b.destroy(new Error('gone'));
      await new Promise((r) => b.once('close', r));
    },
    after: () => {},
  },
];

describe('onBodyEnd', () => {
  it.each(cases)('agrees with stream.finished: $name', async ({ before, after }) => {
    const results: Outcome[] = [];
    for (const how of [ours, node]) {
      const b = new PassThrough();
      b.on('error', () => {});
      b.resume();
      await before?.(b);
      const seen = watch(b, how);
      after(b);
      await new Promise((r) => setTimeout(r, 0));
      await new Promise((r) => setImmediate(r));
      results.push(seen());
    }
    expect(results[0]).toEqual(results[1]);
    expect(results[0]!.calls).toBe(1);
  });

  it('leaves no listener behind once called', async () => {
    const b = new PassThrough();
    b.resume();
    const counts = () => ['end', 'error', 'close'].map((e) => b.listenerCount(e));
    const before = counts();
    let called = false;
    onBodyEnd(b, () => {
      called = true;
    });
    b.end('x');
    await new Promise((r) => b.once('close', r));
    expect(called).toBe(true);
    expect(counts()).toEqual(before);
  });
});
