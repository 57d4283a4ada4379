// How many workers the agent runs: `workers: N` from agent.yaml, else one per CPU the agent may
// run on (its affinity, which systemd's CPUAffinity= or taskset narrows), never fewer than one.
import { availableParallelism } from 'node:os';

export const MAX_WORKERS = 256;

export function workerCount(
  configured: number | undefined,
  cpus: number = availableParallelism(),
): number {
  if (configured !== undefined) return configured;
  return Math.min(MAX_WORKERS, Math.max(1, Math.floor(cpus)));
}

/**
 * How many worker slots serve the listening sockets: the workers wanted, and at least one per
 * socket systemd passed for a port. Its socket units (ReusePort=yes, one ListenStream= per
 * worker, rendered by install.sh) form a SO_REUSEPORT group per port, and the kernel hashes
 * connections to every socket in it: one nobody accepts on would hold its share forever.
 */
export function slotCount(
  configured: number | undefined,
  passedPerPort: number,
  cpus: number = availableParallelism(),
): number {
  return Math.max(workerCount(configured, cpus), passedPerPort);
}
