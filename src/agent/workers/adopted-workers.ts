// The workers a previous image of this master forked, adopted after its exec (an upgrade,
// handover.ts). They are still this pid's children, serving their connections, but libuv did
// not spawn them: nothing would reap them (they would stay zombies) and there is no IPC channel
// to them. So: their log pipes are read on, they are told to retire with SIGUSR2 once the new
// workers serve (SIGTERM on a stop), and they are reaped with waitpid as they exit.
import { Socket } from 'node:net';
import { setCloexec } from '../../native/process-ops.js';
import type { Logger } from '../../sys/logger.js';
import type { HandedWorker } from './handover.js';
import { forwardLines } from './worker-lines.js';
import type { WorkerStatus } from './worker-pool.js';

/** How often exited ones are looked for (no SIGCHLD for them in Node). */
const REAP_EVERY_MS = 500;

export interface ProcessOps {
  /** waitpid(pid, WNOHANG): undefined while it runs; `gone` when it is not our child. */
  reap(pid: number): { code?: number; signal?: number; gone?: true } | undefined;
  kill(pid: number, signal: NodeJS.Signals): void;
}

interface Adopted extends HandedWorker {
  retiring: boolean;
}

export class AdoptedWorkers {
  private readonly live = new Map<number, Adopted>();
  private readonly timer: NodeJS.Timeout;
  private readonly waiters: Array<() => void> = [];

  constructor(
    handed: readonly HandedWorker[],
    private readonly deps: { log: Logger; writeLines: (lines: string) => void; ops: ProcessOps },
  ) {
    for (const w of handed) {
      this.live.set(w.pid, { ...w, retiring: w.state === 'retiring' });
      if (w.stdout !== undefined) {
        // Ours again only until this image execs in turn: not inherited by new workers.
        setCloexec(w.stdout, true);
        forwardLines(
          new Socket({ fd: w.stdout, readable: true, writable: false }),
          deps.writeLines,
        );
      }
    }
    this.timer = setInterval(() => this.reapExited(), REAP_EVERY_MS);
    this.timer.unref();
    this.reapExited();
  }

  get count(): number {
    return this.live.size;
  }

  status(): WorkerStatus[] {
    return [...this.live.values()].map((w) => ({
      pid: w.pid,
      generation: w.generation,
      state: w.retiring ? 'retiring' : w.state,
      connections: w.connections,
      build: w.build,
    }));
  }

  /** Handed on to the next image when this one execs in turn (an upgrade during a drain). */
  handover(): HandedWorker[] {
    return [...this.live.values()].map(({ retiring, ...w }) => ({
      ...w,
      state: retiring ? 'retiring' : w.state,
    }));
  }

  /** This image's workers serve: the adopted ones stop accepting and drain (SIGUSR2). */
  retire(): void {
    for (const w of this.live.values()) {
      if (w.retiring) continue;
      w.retiring = true;
      this.signal(w, 'SIGUSR2');
    }
    if (this.live.size > 0)
      this.deps.log.info({ pids: [...this.live.keys()] }, "retiring the previous master's workers");
  }

  /** A stop: they drain as a stop's workers do (SIGTERM), SIGKILL after `killAfterMs`. */
  async stop(killAfterMs: number): Promise<void> {
    for (const w of this.live.values()) this.signal(w, 'SIGTERM');
    const timer = setTimeout(() => {
      for (const w of this.live.values()) this.signal(w, 'SIGKILL');
    }, killAfterMs);
    timer.unref();
    await this.allExited();
    clearTimeout(timer);
    clearInterval(this.timer);
  }

  private allExited(): Promise<void> {
    if (this.live.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Signals only a pid still our unreaped child, never one the kernel gave to someone else. */
  private signal(w: Adopted, signal: NodeJS.Signals): void {
    if (!this.reapOne(w)) return;
    try {
      this.deps.ops.kill(w.pid, signal);
    } catch {
      // Exited in between: reaped on the next round.
    }
  }

  /** True while it runs; false once reaped (and forgotten). */
  private reapOne(w: Adopted): boolean {
    const end = this.deps.ops.reap(w.pid);
    if (end === undefined) return true;
    this.live.delete(w.pid);
    this.deps.log.info(
      { worker_pid: w.pid, generation: w.generation, code: end.code, signal: end.signal },
      'worker exited',
    );
    return false;
  }

  private reapExited(): void {
    for (const w of [...this.live.values()]) this.reapOne(w);
    if (this.live.size === 0) for (const resolve of this.waiters.splice(0)) resolve();
  }
}
