// What a master hands to the master it execs into on an upgrade (SIGUSR2): which fds are which
// listening sockets, its workers (which keep serving their connections across the exec, as
// children of the same pid), and where to go on from. Carried in one environment variable; the
// fds themselves stay open across the exec (FD_CLOEXEC cleared). Decide here, do in re-exec.ts.
import { z } from 'zod';
import { WeftError } from '../../errors.js';
import type { SlotSockets } from './listening-sockets.js';

/** The version of the hand-over below. A new master that does not read the running master's
 * version is not exec'd into (its `weft agent --check` lists the ones it reads). */
export const HANDOVER_VERSION = 1;
export const HANDOVER_ENV = 'WEFT_HANDOVER';

const fd = z.number().int().min(0);
const handoverSchema = z.object({
  version: z.literal(HANDOVER_VERSION),
  /** The listening sockets of worker slot i. */
  slots: z.array(z.object({ outbound: fd, inbound: fd, tunnel: fd })).min(1),
  /** systemd's sockets by name, as passed to the first master (LISTEN_FDNAMES). */
  passed: z.array(z.tuple([z.string(), z.array(fd)])),
  workers: z.array(
    z.object({
      pid: z.number().int().positive(),
      generation: z.number().int().positive(),
      state: z.enum(['starting', 'serving', 'retiring']),
      connections: z.number().int().min(0),
      build: z.string(),
      /** The master's end of its stdout pipe: its log lines keep coming through the master. */
      stdout: fd.optional(),
    }),
  ),
  nextGeneration: z.number().int().positive(),
  /** A file (v8-serialized RetiredCounts, worker-pool.ts) with the counts so far: too large
   * for the environment. Read and removed by the next image; absent if it could not be written. */
  countsFile: z.string().optional(),
  /** How many times this pid's master was replaced, and the code it came from. */
  execs: z.number().int().min(1),
  from: z.object({ build: z.string(), version: z.string() }),
});

export type Handover = z.infer<typeof handoverSchema>;
export type HandedWorker = Handover['workers'][number];

/** Every fd the hand-over names: they must stay open across the exec. */
export function handoverFds(h: Handover): number[] {
  const fds = new Set<number>();
  for (const s of h.slots as SlotSockets[])
    for (const f of [s.outbound, s.inbound, s.tunnel]) fds.add(f);
  for (const [, list] of h.passed) for (const f of list) fds.add(f);
  for (const w of h.workers) if (w.stdout !== undefined) fds.add(w.stdout);
  return [...fds];
}

export function encodeHandover(h: Handover): string {
  return JSON.stringify(h);
}

/**
 * The hand-over this master was exec'd with, removed from `env` (its workers must not see it);
 * undefined on a plain start. A malformed one is an error: the sockets and workers it named
 * cannot be known, and systemd's restart is the way out.
 */
export function takeHandover(env: Record<string, string | undefined>): Handover | undefined {
  const text = env[HANDOVER_ENV];
  delete env[HANDOVER_ENV];
  if (text === undefined || text === '') return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new WeftError('WEFT_E_INTERNAL', `${HANDOVER_ENV} is not JSON: restart the agent`);
  }
  const r = handoverSchema.safeParse(parsed);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new WeftError(
      'WEFT_E_INTERNAL',
      `${HANDOVER_ENV}: ${issue?.path.join('.') || '(root)'}: ${issue?.message}: restart the agent (systemctl restart weft-agent)`,
    );
  }
  return r.data;
}

/** What `weft agent --check` run with the new code printed (or how it failed). */
export interface CheckResult {
  exitCode: number | null;
  stdout: string;
  stderr: string;
}

export type UpgradeDecision = { kind: 'exec'; build: string } | { kind: 'refuse'; reason: string };

/**
 * Whether the running master may exec into the code on disk: the config must be one an upgrade
 * can take (reload-check.ts, `configRefusal`), and the new code must start (`weft agent --check`
 * exits 0) and read this master's hand-over.
 */
export function upgradeDecision(
  configRefusal: string | undefined,
  check: CheckResult,
): UpgradeDecision {
  if (configRefusal) return { kind: 'refuse', reason: configRefusal };
  if (check.exitCode !== 0) {
    // Its own `weft: WEFT_E_...` line, or the error Node printed (a module that does not
    // load fails before any code of weft's runs), else its last line.
    const lines = check.stderr.trim().split('\n').filter(Boolean);
    const last =
      lines.find((l) => /^(weft: |\w*Error: )/.test(l)) ?? lines.at(-1) ?? `exit ${check.exitCode}`;
    return {
      kind: 'refuse',
      reason: `the new code does not start (weft agent --check: ${last}): fix the install, the running agent is unchanged`,
    };
  }
  let out: { build?: unknown; handover?: unknown };
  try {
    out = JSON.parse(check.stdout.trim().split('\n').at(-1) ?? '') as typeof out;
  } catch {
    return {
      kind: 'refuse',
      reason: `weft agent --check printed no result: ${check.stdout.slice(0, 200)}`,
    };
  }
  const versions = Array.isArray(out.handover) ? out.handover : [];
  if (!versions.includes(HANDOVER_VERSION)) {
    return {
      kind: 'refuse',
      reason: `the new code does not take this master's hand-over (version ${HANDOVER_VERSION}; it reads ${versions.join(', ') || 'none'}): restart the agent (systemctl restart weft-agent) to run it`,
    };
  }
  return { kind: 'exec', build: typeof out.build === 'string' ? out.build : 'unknown' };
}
