// Processes inside lab hosts: the argv that enters a namespace as a user, identities that
// survive pid reuse (pid + start time), and stopping them: SIGTERM, a grace, then SIGKILL.
import { readFileSync } from 'node:fs';
import { pidsInNetns } from './netns.js';
import { asUser, type LabCapability, type UserInfo } from './users.js';

/** Grace between SIGTERM and SIGKILL when a lab goes down. */
export const STOP_GRACE_MS = 1_000;
const POLL_MS = 20;

/** PATH for lab processes: the system one, as a caller's may point into /root. */
export const SYSTEM_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** `ip netns exec NS [setpriv ...] argv`: ip and setpriv exec in place, so the pid stays. */
export function netnsArgv(
  netns: string,
  user: UserInfo | undefined,
  argv: readonly string[],
  capabilities: readonly LabCapability[] = [],
): string[] {
  return ['netns', 'exec', netns, ...asUser(user, capabilities), ...argv];
}

/** Start time of a live (non-zombie) process, or undefined when there is none. */
export function readStartTime(pid: number): string | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) may hold spaces and ')': fields after it start at the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const state = fields[0];
  if (state === 'Z' || state === 'X') return undefined;
  return fields[19]; // field 22, starttime, in clock ticks since boot
}

export interface ProcessRef {
  pid: number;
  startTime: string;
}

/** True while the very process we started (not a later one with its pid) is alive. */
export function isRunning(ref: ProcessRef): boolean {
  return readStartTime(ref.pid) === ref.startTime;
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // ESRCH: already gone.
  }
}

/** Signals a process group we started (its leader verified), else the process alone. */
function signalRef(ref: ProcessRef, sig: NodeJS.Signals): void {
  if (!isRunning(ref)) return;
  try {
    process.kill(-ref.pid, sig);
  } catch {
    signal(ref.pid, sig);
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Stops the given process groups and every other process inside `namespaces`: SIGTERM to
 * all (or `first`: SIGKILL for a kill -9), then SIGKILL to what is left after `graceMs`. Returns the pids that were signalled.
 */
export async function stopAll(
  refs: readonly ProcessRef[],
  namespaces: readonly string[],
  graceMs = STOP_GRACE_MS,
  first: 'SIGTERM' | 'SIGKILL' = 'SIGTERM',
): Promise<number[]> {
  const live = refs.filter(isRunning);
  const strays = await pidsInNetns(namespaces);
  const signalled = new Set([...live.map((r) => r.pid), ...strays]);
  if (signalled.size === 0) return [];
  for (const ref of live) signalRef(ref, first);
  for (const pid of strays) signal(pid, first);

  const remaining = async () => [
    ...live.filter(isRunning).map((r) => r.pid),
    ...(await pidsInNetns(namespaces)).filter((pid) => readStartTime(pid) !== undefined),
  ];
  const deadline = Date.now() + graceMs;
  let left = await remaining();
  while (left.length > 0 && Date.now() < deadline) {
    // A process that entered a namespace after the first scan (an `ip netns exec` caught
    // between fork and setns) gets its SIGTERM too, rather than waiting out the grace.
    for (const pid of left) {
      if (signalled.has(pid)) continue;
      signalled.add(pid);
      signal(pid, 'SIGTERM');
    }
    await sleep(POLL_MS);
    left = await remaining();
  }
  // Past the grace: kill, and keep killing what appears (children forked meanwhile).
  const killDeadline = Date.now() + 3_000;
  while (left.length > 0 && Date.now() < killDeadline) {
    for (const ref of live) signalRef(ref, 'SIGKILL');
    for (const pid of left) signal(pid, 'SIGKILL');
    for (const pid of left) signalled.add(pid);
    await sleep(POLL_MS);
    left = await remaining();
  }
  return [...signalled];
}
