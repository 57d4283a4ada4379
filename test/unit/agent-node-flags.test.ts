// A worker is forked with the master's node flags but the master-only V8 flags
// (src/agent/node-flags.ts): the master's small young generation must not slow the workers.
import { describe, expect, it } from 'vitest';
import { MASTER_NODE_FLAGS, workerExecArgv } from '../../src/agent/node-flags.js';

describe('workerExecArgv', () => {
  it.each([
    ['no flags', [], []],
    ["the master's flags", [...MASTER_NODE_FLAGS], []],
    [
      'an --import hook and a profile, kept',
      ['--max-semi-space-size=1', '--import=/x/hook.mjs', '--cpu-prof'],
      ['--import=/x/hook.mjs', '--cpu-prof'],
    ],
    [
      'the flag with its value apart',
      ['--max-semi-space-size', '1', '--import', '/x/hook.mjs'],
      ['--import', '/x/hook.mjs'],
    ],
    ['the flag spelt with underscores', ['--max_semi_space_size=2', '--trace-gc'], ['--trace-gc']],
    ['other V8 sizes, kept', ['--max-old-space-size=256'], ['--max-old-space-size=256']],
  ])('%s', (_what, master, worker) => {
    expect(workerExecArgv(master)).toEqual(worker);
  });
});
