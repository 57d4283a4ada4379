// The native addon's mallocTrim (native/src/malloc-trim.cc) gives freed C heap memory back to
// the kernel: the pages an agent keeps after a burst of traffic (issue #15 item 2).
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { defaultAddonPath } from '../../src/native/load-addon.js';
import { PINNED_NODE } from '../helpers/node-runtime.js';

const run = promisify(execFile);

// In a child of its own, so that the test runner's heap does not blur the figures: 64 MiB of
// 16 KiB buffers (below glibc's mmap threshold, so in the C heap), one more kept alive above
// them so that free() alone cannot shrink the heap, then everything else freed. Polls (with a
// deadline) until trimming has given at least half of it back: V8 may free backing stores on a
// background thread after gc().
const CHILD = `
const { readFileSync } = require('node:fs');
const addon = require(process.argv[1]);
const anonKiB = () => Number(/RssAnon:\\s+(\\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))[1]);
let bufs = [];
for (let i = 0; i < 4096; i++) bufs.push(Buffer.allocUnsafeSlow(16 * 1024).fill(1));
const pin = Buffer.allocUnsafeSlow(16 * 1024).fill(1);
const before = anonKiB();
bufs = null;
globalThis.gc();
const deadline = Date.now() + 20000;
(function poll() {
  const released = addon.mallocTrim();
  const after = anonKiB();
  if (before - after >= 32 * 1024 || Date.now() > deadline) {
    console.log(JSON.stringify({ before, after, released, pin: pin.length }));
    return;
  }
  globalThis.gc();
  setTimeout(poll, 100);
})();
`;

describe('mallocTrim', () => {
  it('returns freed C heap memory to the kernel', async () => {
    const { stdout } = await run(PINNED_NODE, ['--expose-gc', '-e', CHILD, defaultAddonPath]);
    const r = JSON.parse(stdout) as { before: number; after: number; released: boolean };
    expect(r.released).toBe(true);
    expect(r.before - r.after).toBeGreaterThanOrEqual(32 * 1024);
  });
});
