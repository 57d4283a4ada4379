// CPU and memory of processes from /proc: CPU seconds (user + system, all threads) and RSS,
// each of a process and its descendants (the agent is a master and its worker processes).
import { readdirSync, readFileSync } from 'node:fs';

const TICKS_PER_SECOND = 100; // USER_HZ on Linux

/** `pid` and every process under it. */
export function treePids(pid) {
  const all = [];
  const queue = [pid];
  while (queue.length > 0) {
    const p = queue.shift();
    all.push(p);
    queue.push(...children(p));
  }
  return all;
}

/** utime + stime of a process and its descendants (all threads), in seconds. A descendant
 * that exited meanwhile (a replaced worker) takes its seconds with it. */
export function cpuSeconds(pid) {
  return treePids(pid).reduce((sum, p) => sum + ownCpuSeconds(p), 0);
}

function ownCpuSeconds(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name may hold spaces: fields are counted after its closing parenthesis.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
  } catch {
    return 0;
  }
}

export const totalCpuSeconds = (pids) => pids.reduce((sum, pid) => sum + cpuSeconds(pid), 0);

/** Resident set size in MiB (VmRSS) of a process and its descendants. */
export function rssMiB(pid) {
  return treePids(pid).reduce((sum, p) => sum + ownRssMiB(p), 0);
}

function ownRssMiB(pid) {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1] ?? 0);
    return kb / 1024;
  } catch {
    return 0;
  }
}

function comm(pid) {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

function children(pid) {
  try {
    return readdirSync(`/proc/${pid}/task`).flatMap((tid) =>
      readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8')
        .split(' ')
        .filter(Boolean)
        .map(Number),
    );
  } catch {
    return [];
  }
}

/**
 * The process named `name` at or under `pid`: a lab process is started through `ip netns exec`
 * and setpriv, which exec but might fork on other versions, so the tree is searched.
 */
export function findProcess(pid, name) {
  const queue = [pid];
  while (queue.length > 0) {
    const p = queue.shift();
    // Node 26 names its main thread, and so the process, "node-MainThread".
    const c = comm(p);
    if (c === name || c.startsWith(`${name}-`)) return p;
    queue.push(...children(p));
  }
  throw new Error(`no process named ${name} under pid ${pid}`);
}

/** Samples the largest RSS of `pid` every `everyMs` until stop() is called. */
export function rssSampler(pid, everyMs = 250) {
  let peak = rssMiB(pid);
  const timer = setInterval(() => {
    peak = Math.max(peak, rssMiB(pid));
  }, everyMs);
  return {
    stop() {
      clearInterval(timer);
      return Math.max(peak, rssMiB(pid));
    },
  };
}

/**
 * RSS and PSS in MiB of `pid` (an agent's master) and of each process under it (its workers).
 * RSS counts the node binary's shared pages once per process; PSS (smaps_rollup) splits each
 * shared page among the processes that map it, so PSS sums to what the agent really holds.
 */
export function treeMemory(pid) {
  return treePids(pid).map((p) => {
    let pss = 0;
    let rssAnon = 0;
    try {
      const rollup = readFileSync(`/proc/${p}/smaps_rollup`, 'utf8');
      pss = Number(/^Pss:\s+(\d+)/m.exec(rollup)?.[1] ?? 0) / 1024;
      const status = readFileSync(`/proc/${p}/status`, 'utf8');
      rssAnon = Number(/^RssAnon:\s+(\d+)/m.exec(status)?.[1] ?? 0) / 1024;
    } catch {}
    return { pid: p, rss: ownRssMiB(p), rssAnon, pss };
  });
}

/** RSS and PSS in MiB of `pid` and its descendants, summed (an agent: master and workers). */
export function agentMemory(pid) {
  const procs = treeMemory(pid);
  return {
    rss: procs.reduce((a, m) => a + m.rss, 0),
    pss: procs.reduce((a, m) => a + m.pss, 0),
  };
}

/** Samples the largest RSS and PSS (each summed over `pid`'s tree) until stop() is called. */
export function memorySampler(pid, everyMs = 250) {
  let peak = agentMemory(pid);
  const sample = () => {
    const now = agentMemory(pid);
    peak = { rss: Math.max(peak.rss, now.rss), pss: Math.max(peak.pss, now.pss) };
  };
  const timer = setInterval(sample, everyMs);
  return {
    stop() {
      clearInterval(timer);
      sample();
      return peak;
    },
  };
}

/** CPU seconds of each process of `pid`'s tree, by pid (a worker's share of the agent's CPU). */
export function treeCpu(pid) {
  return new Map(treePids(pid).map((p) => [p, ownCpuSeconds(p)]));
}

/** The machine's busy CPU seconds (all cores, from /proc/stat: everything but idle and iowait). */
export function machineBusySeconds() {
  const cpu = readFileSync('/proc/stat', 'utf8')
    .split('\n')[0]
    .trim()
    .split(/\s+/)
    .slice(1)
    .map(Number);
  const total = cpu.slice(0, 8).reduce((a, b) => a + b, 0);
  return (total - cpu[3] - cpu[4]) / TICKS_PER_SECOND;
}

/**
 * Scheduling of a process and its descendants, all threads: time spent runnable but waiting for
 * a CPU (ns, /proc/PID/task/TID/schedstat's second field) and context switches, voluntary (it
 * slept: a wake-up each) and involuntary (preempted).
 */
export function schedFigures(pid) {
  const sum = { waitNs: 0, voluntary: 0, involuntary: 0 };
  for (const p of treePids(pid)) {
    let tids = [];
    try {
      tids = readdirSync(`/proc/${p}/task`);
    } catch {}
    for (const tid of tids) {
      try {
        sum.waitNs += Number(
          readFileSync(`/proc/${p}/task/${tid}/schedstat`, 'utf8').split(' ')[1],
        );
        const status = readFileSync(`/proc/${p}/task/${tid}/status`, 'utf8');
        sum.voluntary += Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(status)?.[1] ?? 0);
        sum.involuntary += Number(/^nonvoluntary_ctxt_switches:\s+(\d+)/m.exec(status)?.[1] ?? 0);
      } catch {}
    }
  }
  return sum;
}
