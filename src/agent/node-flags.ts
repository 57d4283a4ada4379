// The V8 flags of the agent's processes, where a measurement showed their worth (issue #15).
// The master serves no connection: its young generation (semi-spaces V8 grows to 16 MiB while
// start-up allocates) holds nothing after start, and 1 MiB semi-spaces cut it by 12-13 MiB idle
// (bench lab, bench/probe.mjs rss). A worker keeps V8's default: its CPU per L7 request rose
// with 1 MiB in 3 of 3 interleaved runs, with 4 MiB in 3 of 4 (+8-30 %, for 4 MiB idle). With
// 8 MiB its peak under scenario 2's L7 load fell 35-50 MiB RSS (188-206 -> 140-176), but its
// CPU per request was within 5 % in 5 of 8 interleaved pairs and 19-44 % higher in 3 (a
// machine at load 5-9): not applied until a quiet run settles it. --optimize-for-size halved
// that peak (to 92-100 MiB) for twice the CPU per request; MALLOC_ARENA_MAX=2 changed nothing
// measurable. Flags must be on node's command line (V8 sizes the heap when the process
// starts), so the systemd unit and the lab start the master with them, and a worker (forked
// with the master's execArgv by default) is forked without them.
export const MASTER_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=1'];

/** Flags that only the master takes, by name (as `--name=value` or `--name value`). */
const MASTER_ONLY = new Set(MASTER_NODE_FLAGS.map((f) => f.split('=')[0]!));

/** A worker's node flags: the master's own (--import hooks, profiling, ...) but its master-only
 * ones. */
export function workerExecArgv(masterArgv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < masterArgv.length; i++) {
    const arg = masterArgv[i]!;
    const name = arg.split('=')[0]!;
    if (!MASTER_ONLY.has(name.replaceAll('_', '-'))) out.push(arg);
    else if (!arg.includes('=')) i += 1; // `--flag value`: its value goes with it
  }
  return out;
}
