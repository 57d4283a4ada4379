// install.sh's wait for an agent upgrade to take: polls the agent's admin /workers until the
// master runs the new build (after its exec: the same pid, one more exec) and so do its serving
// workers, or the master reports the upgrade refused or failed (its reason), or the time is up.
// An agent older than master re-exec (no `master` in /workers) was reloaded instead: then a
// newer generation serving is what counts. Exits 0 when it took, 1 with the reason when not,
// 3 when the agent runs the new code but was restarted to get there (connections were cut).
// Usage: upgrade-wait.mjs ADMIN_URL BUILD BEFORE_JSON_FILE TIMEOUT_SECONDS
import { readFileSync } from 'node:fs';

/**
 * Where an upgrade stands, from /workers before it was asked for and now (undefined while the
 * admin does not answer: the master is exec'ing). Pure.
 * @returns {{ state: 'waiting' } | { state: 'done'; detail: string } | { state: 'failed'; reason: string; keepCode?: boolean }}
 */
export function upgradeState(before, now, build) {
  if (!now) return { state: 'waiting' };
  const serving = (now.workers ?? []).filter((w) => w.state === 'serving');
  if (before?.master && now.master) {
    // Another pid: the new master image died and systemd started the agent afresh (open
    // connections were cut). Once it serves the new build, that code stays on disk.
    if (now.master.pid !== before.master.pid) {
      if (now.master.build !== build || serving.length === 0) return { state: 'waiting' };
      return {
        state: 'failed',
        keepCode: true,
        reason: `the agent was restarted (pid ${before.master.pid} -> ${now.master.pid}), not upgraded in place: open connections were cut; it runs build ${build} now (the journal says why)`,
      };
    }
    const last = now.master.lastUpgrade;
    if (last && last.at !== before.master.lastUpgrade?.at)
      return { state: 'failed', reason: `upgrade ${last.outcome}: ${last.reason}` };
    if (now.master.execs <= before.master.execs) return { state: 'waiting' };
    if (now.master.build !== build)
      return {
        state: 'failed',
        reason: `the master runs build ${now.master.build}, not the installed ${build}`,
      };
    if (serving.length === 0 || serving.some((w) => w.build !== build)) return { state: 'waiting' };
    return {
      state: 'done',
      detail: `master pid ${now.master.pid} and ${serving.length} worker(s) run build ${build}`,
    };
  }
  const newest = Math.max(0, ...(before?.workers ?? []).map((w) => w.generation));
  const fresh = serving.filter((w) => w.generation > newest);
  if (fresh.length === 0) return { state: 'waiting' };
  return {
    state: 'done',
    detail: `new workers serve (generation ${fresh[0].generation}); the master itself runs its old code until systemctl restart weft-agent`,
  };
}

async function main() {
  const [url, build, beforeFile, timeout] = process.argv.slice(2);
  if (!url || !build || !beforeFile || !timeout) {
    console.error('usage: upgrade-wait.mjs ADMIN_URL BUILD BEFORE_JSON_FILE TIMEOUT_SECONDS');
    process.exit(2);
  }
  let before;
  try {
    before = JSON.parse(readFileSync(beforeFile, 'utf8'));
  } catch {
    before = undefined;
  }
  const deadline = Date.now() + Number(timeout) * 1000;
  let last = { state: 'waiting' };
  while (Date.now() < deadline) {
    const now = await fetch(`${url}/workers`, { signal: AbortSignal.timeout(3_000) })
      .then((r) => (r.ok ? r.json() : undefined))
      .catch(() => undefined);
    last = upgradeState(before, now, build);
    if (last.state === 'done') {
      console.log(last.detail);
      process.exit(0);
    }
    if (last.state === 'failed') {
      console.error(last.reason);
      // 3: it runs the new code all the same (keep it on disk); 1: it runs the previous code.
      process.exit(last.keepCode ? 3 : 1);
    }
    await new Promise((r) => setTimeout(r, 300));
  }
  console.error(`not within ${timeout} s: the agent does not run build ${build} yet`);
  process.exit(1);
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
