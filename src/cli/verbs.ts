// The CLI's verbs, each loaded only when asked for: `weft agent` (the resident daemon) must not
// pay in memory for the control plane, the lab or the resource schemas the other verbs import.
import type { Command } from 'commander';

type Register = (program: Command) => void;

/** Verb name -> its module's register function, in the order `weft --help` lists them. */
export const VERBS: Readonly<Record<string, () => Promise<Register>>> = {
  // Host side
  agent: async () => (await import('./commands/agent.js')).registerAgent,
  status: async () => (await import('./commands/status.js')).registerStatus,
  redirect: async () => (await import('./commands/redirect.js')).registerRedirect,
  leave: async () => (await import('./commands/leave.js')).registerLeave,
  workloads: async () => (await import('./commands/workloads-discover.js')).registerWorkloads,
  // Control plane side
  controlplane: async () => (await import('./commands/controlplane.js')).registerControlplane,
  token: async () => (await import('./commands/token.js')).registerToken,
  apply: async () => (await import('./commands/apply.js')).registerApply,
  get: async () => (await import('./commands/get.js')).registerGet,
  delete: async () => (await import('./commands/delete.js')).registerDelete,
  node: async () => (await import('./commands/node.js')).registerNode,
  dashboard: async () => (await import('./commands/dashboard.js')).registerDashboard,
  top: async () => (await import('./commands/top.js')).registerTop,
  tap: async () => (await import('./commands/tap.js')).registerTap,
  // Development
  lab: async () => (await import('./commands/lab.js')).registerLab,
};

/**
 * Which verbs to register for a command line: only the one named first when it is a verb,
 * else all of them (`weft`, `weft --help`, `weft help agent`, a mistyped verb), so that help
 * and "unknown command" read exactly as they do with every verb loaded.
 */
export function verbsToLoad(args: readonly string[], verbs: readonly string[]): string[] {
  const first = args[0];
  return first !== undefined && verbs.includes(first) ? [first] : [...verbs];
}
