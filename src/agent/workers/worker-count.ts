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
