// Process-level calls Node lacks, for the master's re-exec (src/agent/workers/re-exec.ts and
// adopted-workers.ts): FD_CLOEXEC on the fds handed across the exec, waitpid for children
// libuv did not spawn.
import { addon } from './addon.js';

/** FD_CLOEXEC on (closed at the next exec) or off (kept across it). */
export function setCloexec(fd: number, on: boolean): void {
  addon.setCloexec(fd, on);
}

export const nativeProcessOps = {
  reap: (pid: number) => addon.reapChild(pid),
  kill: (pid: number, signal: NodeJS.Signals) => process.kill(pid, signal),
};
