// What `weft controlplane migrate` does with what the etcd prefix holds already.
import { describe, expect, it } from 'vitest';
import {
  type MigrationMarker,
  type MigrationTarget,
  planMigrationTarget,
} from '../../src/controlplane/migrate/migration-marker.js';

const marker = (state: MigrationMarker['state']): MigrationMarker => ({
  state,
  from: '/var/lib/weft-cp',
  startedAt: 'then',
  fileStoreRevision: 10,
});

const cases: Array<[string, Parameters<typeof planMigrationTarget>[0], MigrationTarget]> = [
  ['an empty prefix', { keys: 0, overwrite: false }, { kind: 'write' }],
  ['an empty prefix, --overwrite', { keys: 0, overwrite: true }, { kind: 'write' }],
  [
    'an unfinished migration: redone without asking',
    { keys: 5, marker: marker('in-progress'), overwrite: false },
    { kind: 'clear-and-write', why: 'unfinished' },
  ],
  [
    'a finished migration',
    { keys: 5, marker: marker('done'), overwrite: false },
    { kind: 'refuse', why: 'migrated-already' },
  ],
  [
    'a finished migration, --overwrite',
    { keys: 5, marker: marker('done'), overwrite: true },
    { kind: 'clear-and-write', why: 'overwrite' },
  ],
  ['keys of another kind', { keys: 3, overwrite: false }, { kind: 'refuse', why: 'not-empty' }],
  [
    'keys of another kind, --overwrite',
    { keys: 3, overwrite: true },
    { kind: 'clear-and-write', why: 'overwrite' },
  ],
];

describe('planMigrationTarget', () => {
  for (const [what, input, plan] of cases)
    it(what, () => expect(planMigrationTarget(input)).toEqual(plan));
});
