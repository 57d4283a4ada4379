// pipeBody: a body piped with back pressure, settled by how each side ends.
import { PassThrough, Readable, Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { BodyBroken, pipeBody } from '../../src/proxy/http/pipe-body.js';

function sink(opts: { highWaterMark?: number; slow?: boolean } = {}) {
  const chunks: Buffer[] = [];
  const pending: Array<() => void> = [];
  const w = new Writable({
    highWaterMark: opts.highWaterMark ?? 16 * 1024,
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk);
      if (opts.slow) pending.push(cb);
      else cb();
    },
  });
  const release = (): void => {
    for (const cb of pending.splice(0)) cb();
  };
  return { w, chunks, release };
}

describe('pipeBody', () => {
  it('with end: resolves once the destination finished, everything written', async () => {
    const { w, chunks } = sink();
    await pipeBody(Readable.from([Buffer.from('a'), Buffer.from('b')]), w, true);
    expect(Buffer.concat(chunks).toString()).toBe('ab');
    expect(w.writableFinished).toBe(true);
  });

  it('without end: resolves when the source ended and leaves the destination open', async () => {
    const { w, chunks } = sink();
    await pipeBody(Readable.from([Buffer.from('xyz')]), w, false);
    expect(Buffer.concat(chunks).toString()).toBe('xyz');
    expect(w.writableEnded).toBe(false);
  });

  it('a source already ended: resolves (and ends the destination when asked)', async () => {
    const src = new PassThrough();
    src.end();
    src.resume();
    await new Promise((r) => src.once('end', r));
    await pipeBody(src, sink().w, false);
    const { w } = sink();
    await pipeBody(src, w, true);
    expect(w.writableFinished).toBe(true);
  });

  it('a source that breaks off mid-body rejects and is unpiped', async () => {
    const src = new PassThrough();
    const { w } = sink();
    const piped = pipeBody(src, w, true);
    src.write('part');
    src.destroy(new Error('upstream reset'));
    await expect(piped).rejects.toThrow('upstream reset');
    expect(w.writableEnded).toBe(false);
  });

  it('a source closed without an error before its end rejects as broken', async () => {
    const src = new PassThrough();
    const piped = pipeBody(src, sink().w, false);
    src.destroy();
    await expect(piped).rejects.toBeInstanceOf(BodyBroken);
  });

  it('a destination that goes away rejects', async () => {
    const src = new PassThrough();
    const { w } = sink();
    const piped = pipeBody(src, w, true);
    src.write('x');
    w.destroy();
    await expect(piped).rejects.toBeInstanceOf(BodyBroken);
    await expect(pipeBody(new PassThrough(), w, true)).rejects.toBeInstanceOf(BodyBroken);
  });

  it('holds back pressure: a slow destination pauses the source within its buffers', async () => {
    const src = new PassThrough({ highWaterMark: 1024 });
    const { w, release } = sink({ highWaterMark: 1024, slow: true });
    const piped = pipeBody(src, w, true);
    let accepted = 0;
    while (src.write(Buffer.alloc(512))) accepted += 512;
    // The source's buffer filled while nothing was released: the pipe stopped reading.
    expect(accepted).toBeLessThan(8 * 1024);
    const drained = new Promise((r) => src.once('drain', r));
    const releaser = setInterval(release, 1);
    await drained;
    src.end();
    await piped;
    clearInterval(releaser);
  });

  it('tells onBytes the length of every chunk it writes', async () => {
    const { w, chunks } = sink();
    const seen: number[] = [];
    await pipeBody(Readable.from([Buffer.from('ab'), Buffer.from('cde')]), w, true, (n) =>
      seen.push(n),
    );
    expect(seen).toEqual([2, 3]);
    expect(Buffer.concat(chunks).toString()).toBe('abcde');
  });

  it('reads a source its owner paused (a counting reader waiting for it), beside that reader', async () => {
    const src = new PassThrough();
    let counted = 0;
    src.pause();
    src.on('data', (c: Buffer) => {
      counted += c.length;
    });
    src.end('body');
    const { w, chunks } = sink();
    await pipeBody(src, w, true);
    expect(Buffer.concat(chunks).toString()).toBe('body');
    expect(counted).toBe(4);
  });

  it('a late error on either side after it settled is not unhandled', async () => {
    const src = new PassThrough();
    const { w } = sink();
    src.end('done');
    await pipeBody(src, w, true);
    src.emit('error', new Error('late'));
    w.emit('error', new Error('late'));
  });
});
