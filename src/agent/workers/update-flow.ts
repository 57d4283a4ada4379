// The master's session updates to one worker, one at a time: while one is being written to the
// worker's IPC channel, later ones wait, and a newer snapshot merges into a waiting one (each
// carries what changed since the one before: mirror-delta.ts). A worker that decodes slower
// than the control plane changes (10,000 endpoints registered in a minute: a version each
// time) used to get every version queued in the master's native memory, several MiB each:
// 250-400 MiB of a master in the bench lab. Now the master holds at most one waiting snapshot
// per worker, and the worker applies the changes of all the versions it missed at once.
// Certificates are never dropped, and order is kept (a certificate written after a snapshot
// still follows it, carrying the same or a newer trust bundle).
import { mergeChanges } from './mirror-delta.js';
import type { MirroredSnapshot, MirrorUpdate } from './worker-messages.js';

/** Writes one update; calls `written` once the channel took it (or failed: nothing to wait for). */
export type WriteUpdate = (update: MirrorUpdate, written: () => void) => void;

export class UpdateFlow {
  private writing = false;
  private readonly waiting: MirrorUpdate[] = [];

  constructor(private readonly write: WriteUpdate) {}

  offer(update: MirrorUpdate): void {
    const i =
      update.type === 'snapshot' ? this.waiting.findIndex((u) => u.type === 'snapshot') : -1;
    const older = this.waiting[i];
    if (update.type === 'snapshot' && older?.type === 'snapshot') {
      this.waiting.splice(i, 1);
      this.waiting.push({ ...update, snapshot: mergeSnapshots(older.snapshot, update.snapshot) });
    } else this.waiting.push(update);
    if (!this.writing) this.next();
  }

  /** Updates offered and not yet handed to the channel (for tests). */
  get backlog(): number {
    return this.waiting.length;
  }

  private next(): void {
    const update = this.waiting.shift();
    if (update === undefined) {
      this.writing = false;
      return;
    }
    this.writing = true;
    let done = false;
    this.write(update, () => {
      if (done) return;
      done = true;
      this.next();
    });
  }
}

/** One version's changes that do what `older`'s then `newer`'s do. */
export function mergeSnapshots(older: MirroredSnapshot, newer: MirroredSnapshot): MirroredSnapshot {
  if (newer.baseVersion === undefined) return newer;
  const mesh = newer.mesh ?? older.mesh;
  return {
    version: newer.version,
    baseVersion: older.baseVersion,
    trustBundlePem: newer.trustBundlePem,
    resources: mergeChanges(older.resources, newer.resources),
    services: mergeChanges(older.services, newer.services),
    ...(mesh ? { mesh } : {}),
  };
}
