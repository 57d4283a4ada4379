// What changed in a keyed map between two snapshot versions, as the master tells its workers:
// the entries set (new or replaced) and the keys removed. The master finds them by identity (an
// accepted delta keeps the objects of unchanged resources, and the effective TrafficPolicies
// of unchanged documents), so a change of one endpoint among 10,000 sends one endpoint, and a
// worker keeps its objects of everything else (what it compiled from them stays valid).
export interface MapChanges<T> {
  set: Map<string, T>;
  removed: string[];
}

/** The changes from `before` (undefined: nothing) to `after`; `map` shapes what is sent. */
export function diffMaps<T, U = T>(
  before: ReadonlyMap<string, T> | undefined,
  after: ReadonlyMap<string, T>,
  map: (value: T) => U = (value) => value as unknown as U,
): MapChanges<U> {
  const set = new Map<string, U>();
  for (const [key, value] of after) if (before?.get(key) !== value) set.set(key, map(value));
  const removed: string[] = [];
  if (before) for (const key of before.keys()) if (!after.has(key)) removed.push(key);
  return { set, removed };
}

/** One set of changes that does what `older` then `newer` do. */
export function mergeChanges<T>(older: MapChanges<T>, newer: MapChanges<T>): MapChanges<T> {
  const set = new Map(older.set);
  const removed = new Set(older.removed);
  for (const key of newer.removed) {
    set.delete(key);
    removed.add(key);
  }
  for (const [key, value] of newer.set) {
    set.set(key, value);
    removed.delete(key);
  }
  return { set, removed: [...removed] };
}

/** Applies changes to a map in place. */
export function applyChanges<T>(target: Map<string, T>, changes: MapChanges<T>): void {
  for (const key of changes.removed) target.delete(key);
  for (const [key, value] of changes.set) target.set(key, value);
}
