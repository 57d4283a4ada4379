// The master's session updates to one worker, one at a time: while one is being written to the
// worker's IPC channel, later ones wait, and a newer snapshot replaces a waiting one (each is
// the whole state, v8-serialized). A worker that decodes slower than the control plane changes
// (10,000 endpoints registered in a minute: a version each time) used to get every version
// queued in the master's native memory, several MiB each: 250-400 MiB of a master in the bench
// lab. Now the master holds at most one waiting snapshot per worker, and the worker decodes
// only the newest. Certificates are never dropped, and order is kept (a certificate written
// after a snapshot still follows it, carrying the same or a newer trust bundle).
import type { MirrorUpdate } from './worker-messages.js';

/** Writes one update; calls `written` once the channel took it (or failed: nothing to wait for). */
export type WriteUpdate = (update: MirrorUpdate, written: () => void) => void;

export class UpdateFlow {
  private writing = false;
  private readonly waiting: MirrorUpdate[] = [];

  constructor(private readonly write: WriteUpdate) {}

  offer(update: MirrorUpdate): void {
    if (update.type === 'snapshot') {
      const older = this.waiting.findIndex((u) => u.type === 'snapshot');
      if (older !== -1) this.waiting.splice(older, 1);
    }
    this.waiting.push(update);
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
