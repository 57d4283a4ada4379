// Which verbs the CLI imports for a command line (src/cli/verbs.ts).
import { describe, expect, it } from 'vitest';
import { VERBS, verbsToLoad } from '../../src/cli/verbs.js';

const ALL = Object.keys(VERBS);

describe('verbsToLoad', () => {
  it.each([
    { args: ['agent', '--config', 'a.yaml'], want: ['agent'] },
    { args: ['agent', '--help'], want: ['agent'] },
    { args: ['controlplane', 'init'], want: ['controlplane'] },
    { args: ['lab', 'up'], want: ['lab'] },
    { args: [], want: ALL },
    { args: ['--help'], want: ALL },
    { args: ['--version'], want: ALL },
    { args: ['help', 'agent'], want: ALL },
    { args: ['agnet'], want: ALL },
  ])('$args -> $want', ({ args, want }) => {
    expect(verbsToLoad(args, ALL)).toEqual(want);
  });

  it('knows every verb the CLI documents', () => {
    expect(ALL).toEqual([
      'agent',
      'status',
      'redirect',
      'leave',
      'workloads',
      'controlplane',
      'token',
      'apply',
      'get',
      'delete',
      'node',
      'dashboard',
      'top',
      'tap',
      'lab',
    ]);
  });
});
