// The record `weft controlplane migrate` keeps in etcd: written first ("in-progress") and last
// ("done", in the same transaction as the CA), so that a migration that failed half-way is
// seen (replicas refuse to start on it; running migrate again redoes it) and a finished one
// tells from which revision on etcd's history is a history agents can hold versions of.
export interface MigrationMarker {
  state: 'in-progress' | 'done';
  /** The data directory it came from (for messages). */
  from: string;
  startedAt: string;
  /** The file store's revision when it was read: the newest version its agents can hold. */
  fileStoreRevision: number;
  /**
   * Once done: changes at or before this revision are not history an agent's version can be
   * a delta base in (agents from the file store hold versions of another store's history), so
   * every agent holding an older version gets a full snapshot.
   */
  historyAfter?: number;
  finishedAt?: string;
}

export type MigrationTarget =
  /** Nothing under the prefix: write. */
  | { kind: 'write' }
  /** A migration that did not finish, or --overwrite: delete what is there, then write. */
  | { kind: 'clear-and-write'; why: 'unfinished' | 'overwrite' }
  | { kind: 'refuse'; why: 'not-empty' | 'migrated-already' };

/** What migrate does with what the etcd prefix holds already. */
export function planMigrationTarget(t: {
  keys: number;
  marker?: MigrationMarker;
  overwrite: boolean;
}): MigrationTarget {
  if (t.keys === 0) return { kind: 'write' };
  if (t.marker?.state === 'in-progress') return { kind: 'clear-and-write', why: 'unfinished' };
  if (t.overwrite) return { kind: 'clear-and-write', why: 'overwrite' };
  return { kind: 'refuse', why: t.marker?.state === 'done' ? 'migrated-already' : 'not-empty' };
}
