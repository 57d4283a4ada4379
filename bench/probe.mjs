// `node bench/probe.mjs [dir]`: the bench lab kept up for iterating on one figure. It builds the
// lab once, then serves commands written to <dir>/cmd (default /tmp/weft-probe), one at a time,
// appending results to <dir>/out:
//   measure SETUP [CONNECTIONS] [SECONDS] [close] [delay=MS]   wrk against a setup (direct,
//                                           haproxy, bare, weft, bare-l7, weft-l7; bare: weft's
//                                           design in bare Node, bench/bare-relay.mjs); `close`: a connection per
//                                           request (scenario 4); delay=15 with 16 connections:
//                                           about 1k req/s (scenario 1). Per proxy: CPU, and time
//                                           runnable but waiting for a CPU, sleeps (wake-ups) and
//                                           preemptions, per request; on weft's setups also each
//                                           agent process's peak RSS / RssAnon / PSS meanwhile
//   h2load SETUP [CLIENTS] [STREAMS] [SECONDS]   h2load (h2c) against direct, haproxy or weft-l7
//   grpc SETUP [CONCURRENCY] [SECONDS]      grpc-load on one channel (direct, haproxy, weft-l7)
//   bulk SETUP [STREAMS] [SECONDS]          iperf3 through a setup (direct, haproxy, bare, weft):
//                                           Gbit/s, each proxy's CPU seconds per GB and RSS
//   restart [bin=PATH] [profile | NODEFLAG...] [NAME=VALUE...]   restart both agents on the
//                                           current dist/ (NAME=VALUE: their environment; or the
//                                           checkout of bin PATH: an old build to compare with;
//                                           profiled, or under the given node flags)
//   rss                                     5 s from now, each agent's master and workers: VmRSS,
//                                           RssAnon and PSS (sums: bench scenario 5's "idle, after
//                                           start" when run right after restart); with agents
//                                           restarted under --import=lib/heap-hook.mjs also each
//                                           process's V8 heap used / total and modules loaded
//   services [AGENTS]                       load 1,000 services and 10 endpoints per simulated
//                                           agent (default 1,000 agents, as bench scenario 6),
//                                           held until `unload`
//   unload                                  end the simulated agents of `services`
//   stop                                    the profiled agents write their profiles; summary
//   counts                                  with agents restarted under --import=lib/count-hook.mjs:
//                                           what each L7 request made on each agent (master and
//                                           workers) since the last `counts` or `restart`
//                                           (promises, timers, listeners, ...)
//   stalls                                  with agents restarted under --import=lib/stall-hook.mjs:
//                                           each agent process's collections and event-loop stalls
//                                           during the last measure
//   quit                                    tear the lab down
// Not a benchmark: figures for a change go through `npm run bench`.
import {
  appendFileSync,
  chownSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { lookupUser } from '../dist/lab/index.js';
import { BenchLab } from './lib/bench-lab.mjs';
import { analyzeProfile } from './lib/cpuprofile.mjs';
import { cpuSeconds, rssMiB, schedFigures, treeMemory, treePids } from './lib/proc.mjs';
import { ensureTools } from './lib/tools.mjs';

const dir = process.argv[2] ?? '/tmp/weft-probe';
mkdirSync(dir, { recursive: true });
const cmdFile = join(dir, 'cmd');
const out = (line) => appendFileSync(join(dir, 'out'), `${line}\n`);
const log = (msg) => out(`# ${msg}`);

ensureTools(log);
const bench = await BenchLab.up(`pr${process.pid % 1000}`, log);
let profDir;
let loaded = 0;
/** Wall-clock bounds of the last `measure` (for `stalls`). */
let lastWindow;
/** The simulated agents of `services`, held until `unload`. */
let simulated;
/** The count hook's totals at the last `counts`, per host. */
const lastCounts = {};
out('ready');
try {
  for (;;) {
    if (!existsSync(cmdFile)) {
      await new Promise((r) => setTimeout(r, 200));
      continue;
    }
    let [cmd, ...args] = readFileSync(cmdFile, 'utf8').trim().split(/\s+/);
    rmSync(cmdFile);
    try {
      if (cmd === 'quit') break;
      if (cmd === 'measure') {
        const delay = args.find((a) => a.startsWith('delay='));
        const [setup, connections = '64', seconds = '5', close] = args.filter((a) => a !== delay);
        const pids = bench.proxyPids(setup);
        const before = pids.map(cpuSeconds);
        // weft's agents: each process's largest RSS / RssAnon / PSS during the run (the bench's
        // "peak during scenario 2" row, per process).
        const peaks = setup.startsWith('weft')
          ? [bench.pids.clientAgent, bench.pids.serverAgent].map((pid) => processPeaks(pid))
          : [];
        const schedBefore = pids.map(schedFigures);
        lastWindow = { from: Date.now() };
        const r = await bench.wrk(setup, {
          connections: Number(connections),
          seconds: Number(seconds),
          close: close === 'close',
          delayMs: delay ? Number(delay.slice(6)) : 0,
        });
        const cpu = pids.map((pid, i) =>
          (((cpuSeconds(pid) - before[i]) * 1e6) / r.requests).toFixed(0),
        );
        lastWindow.to = Date.now();
        const sched = pids.map((pid, i) => {
          const [a, b] = [schedBefore[i], schedFigures(pid)];
          const per = (x) => ((b[x] - a[x]) / r.requests).toFixed(2);
          return `${((b.waitNs - a.waitNs) / 1e3 / r.requests).toFixed(1)} µs waiting, ${per('voluntary')} sleeps, ${per('involuntary')} preemptions`;
        });
        loaded += r.requests;
        out(`  CPU µs per request: ${cpu.join(' + ')}`);
        for (const [i, host] of ['client', 'server'].entries())
          if (peaks[i]) out(`  peak ${memoryLine(host, peaks[i].stop())}`);
        out(
          `  per request, runnable waiting for a CPU / sleeps / preemptions: ${sched.join(' + ')}`,
        );
        out(`  window ${lastWindow.from} ${lastWindow.to}`);
        out(
          `${setup} c=${connections}: ${r.rps.toFixed(0)} req/s p50 ${r.p50 / 1000} ms p99 ${r.p99 / 1000} ms errors ${r.errors} status ${r.status}`,
        );
      } else if (cmd === 'h2load' || cmd === 'grpc') {
        const pids = bench.proxyPids(args[0], { server2: cmd === 'grpc' });
        const before = pids.map(cpuSeconds);
        const r =
          cmd === 'h2load'
            ? await bench.h2load(args[0], {
                clients: Number(args[1] ?? 4),
                streams: Number(args[2] ?? 32),
                seconds: Number(args[3] ?? 5),
              })
            : await bench.grpc(args[0], {
                concurrency: Number(args[1] ?? 32),
                seconds: Number(args[2] ?? 5),
                warmS: 1,
              });
        const n = r.requests ?? r.calls;
        const cpu = pids.map((pid, i) => (((cpuSeconds(pid) - before[i]) * 1e6) / n).toFixed(0));
        out(`  CPU µs per request: ${cpu.join(' + ')}`);
        out(`${cmd} ${args.join(' ')}: ${JSON.stringify(r)}`);
      } else if (cmd === 'bulk') {
        const [setup, streams = '1', seconds = '5'] = args;
        const pids = bench.proxyPids(setup);
        const before = pids.map(cpuSeconds);
        const gbits = await bench.iperf(setup, {
          streams: Number(streams),
          seconds: Number(seconds),
        });
        // iperf3 leaves its first second out of the rate; the CPU covers all of it.
        const gb = (gbits / 8) * (Number(seconds) + 1);
        const cpu = pids.map((pid, i) => ((cpuSeconds(pid) - before[i]) / gb).toFixed(2));
        const rss = pids.map((pid) => rssMiB(pid).toFixed(0));
        out(
          `${setup} P=${streams}: ${gbits.toFixed(2)} Gbit/s, CPU s per GB: ${cpu.join(' + ')}, RSS MiB after: ${rss.join(' + ')}`,
        );
      } else if (cmd === 'restart') {
        const bin = args[0]?.startsWith('bin=') ? args.shift().slice(4) : undefined;
        // NAME=VALUE arguments are environment variables of the agents (MALLOC_ARENA_MAX=2).
        const env = Object.fromEntries(
          args.filter((a) => /^[A-Z_][A-Z0-9_]*=/.test(a)).map((a) => a.split(/=(.*)/s, 2)),
        );
        args = args.filter((a) => !/^[A-Z_][A-Z0-9_]*=/.test(a));
        const flags = [];
        if (args[0] === 'profile') {
          profDir = join(dir, `prof-${Date.now()}`);
          flags.push('--cpu-prof');
        } else flags.push(...args);
        const weft = lookupUser('weft');
        for (const host of ['client', 'server']) {
          await bench.lab.stopProcess(host, 'agent');
          // One directory per host, Node's own file names (with the pid): the master's workers
          // inherit its flags, so a fixed --cpu-prof-name would have them overwrite one another.
          const hostDir = profDir && join(profDir, host);
          if (args[0] === 'profile') {
            mkdirSync(hostDir, { recursive: true });
            chownSync(profDir, weft.uid, weft.gid);
            chownSync(hostDir, weft.uid, weft.gid);
          }
          await bench.startAgentUnder(
            host,
            [...flags, ...(args[0] === 'profile' ? [`--cpu-prof-dir=${hostDir}`] : [])],
            bin,
            env,
          );
        }
        await bench.waitReady();
        loaded = 0;
        for (const host of Object.keys(lastCounts)) delete lastCounts[host];
        out(`restarted${bin ? ` on ${bin}` : ''}`);
      } else if (cmd === 'rss') {
        await new Promise((r) => setTimeout(r, 5_000));
        const p = bench.pids;
        for (const [host, pid] of [
          ['client', p.clientAgent],
          ['server', p.serverAgent],
        ])
          out(memoryLine(host, treeMemory(pid)));
      } else if (cmd === 'services') {
        simulated = await loadServices(bench, Number(args[0] ?? 1000));
        out(`loaded: ${JSON.stringify(simulated.result.initialSync ?? {})}`);
      } else if (cmd === 'unload') {
        simulated?.child.stdin.end();
        if (simulated) await new Promise((r) => simulated.child.once('exit', r));
        simulated = undefined;
        out('unloaded');
      } else if (cmd === 'stop') {
        for (const host of ['client', 'server']) await bench.lab.stopProcess(host, 'agent', 30_000);
        for (const host of ['client', 'server']) {
          // The master's and each worker's: the busiest first.
          const files = readdirSync(join(profDir, host)).filter((f) => f.endsWith('.cpuprofile'));
          const all = files
            .map((f) => ({ f, a: analyzeProfile(join(profDir, host, f), { top: 40 }) }))
            .sort((x, y) => y.a.busyMs - x.a.busyMs);
          for (const { f, a } of all) {
            writeFileSync(join(profDir, host, `${f}.json`), JSON.stringify(a, null, 1));
            out(`${host}: ${f} busy ${a.busyMs.toFixed(0)} ms`);
          }
          out(`${host}: profiles in ${profDir}/${host} (${loaded} requests since restart)`);
        }
      } else if (cmd === 'stalls') {
        // With agents restarted under --import=lib/stall-hook.mjs: each agent process's
        // collections and event-loop stalls during the last measure.
        await new Promise((r) => setTimeout(r, 1_500));
        for (const line of stallLines(bench, lastWindow)) out(line);
      } else if (cmd === 'counts') {
        // The hook writes every second: let the last requests' counts land first.
        await new Promise((r) => setTimeout(r, 1_500));
        for (const host of ['client', 'server']) {
          // The master's and its workers' totals (one file per process), summed.
          const pid = host === 'client' ? bench.pids.clientAgent : bench.pids.serverAgent;
          const now = {};
          for (const p of treePids(pid)) {
            let counts;
            try {
              counts = JSON.parse(readFileSync(`/tmp/weft-counts/${p}.json`, 'utf8'));
            } catch {
              continue; // not started under the hook, or not written yet
            }
            for (const [k, v] of Object.entries(counts)) now[k] = (now[k] ?? 0) + v;
          }
          const before = lastCounts[host] ?? {};
          lastCounts[host] = now;
          const streams = (now.HTTP2STREAM ?? 0) - (before.HTTP2STREAM ?? 0);
          const per = Object.keys(now)
            .map((k) => [k, ((now[k] - (before[k] ?? 0)) / streams).toFixed(2)])
            .filter(([, v]) => v !== '0.00')
            .map(([k, v]) => `${k} ${v}`);
          out(`${host}: per request (${streams} HTTP/2 streams): ${per.join(', ')}`);
        }
      } else out(`unknown command ${cmd}`);
    } catch (err) {
      out(`error: ${err.stack}`);
    }
    out('done');
  }
} finally {
  simulated?.child.stdin.end();
  await bench.lab.down().catch(() => undefined);
  out('down');
}

/** One line per agent: the sums, then master and each worker (RSS / RssAnon / PSS, MiB), with
 * the V8 heap the heap hook wrote for that process if it runs (bench/lib/heap-hook.mjs). */
function memoryLine(host, procs) {
  const mib = (x) => x.toFixed(1);
  const sum = (k) => procs.reduce((a, m) => a + m[k], 0);
  const parts = procs.map((m, i) => {
    let heap = '';
    try {
      const h = JSON.parse(readFileSync(`/tmp/weft-heap/${m.pid}.json`, 'utf8'));
      const b = (x) => mib(x / 1048576);
      heap = `, heap ${b(h.heapUsed)} / ${b(h.heapTotal)}, external ${b(h.external)}, ${h.modules} modules`;
    } catch {}
    return `${i === 0 ? 'master' : `worker ${i}`} ${mib(m.rss)} / ${mib(m.rssAnon)} / ${mib(m.pss)}${heap}`;
  });
  return `${host}: RSS ${mib(sum('rss'))} PSS ${mib(sum('pss'))} MiB (RSS / RssAnon / PSS: ${parts.join('; ')})`;
}

/** Samples each process of `pid`'s tree every 250 ms; stop() gives each one's largest RSS,
 * RssAnon and PSS (each taken on its own: they need not peak at once). */
function processPeaks(pid) {
  const peak = new Map();
  const sample = () => {
    for (const m of treeMemory(pid)) {
      const p = peak.get(m.pid);
      peak.set(
        m.pid,
        p
          ? {
              pid: m.pid,
              rss: Math.max(p.rss, m.rss),
              rssAnon: Math.max(p.rssAnon, m.rssAnon),
              pss: Math.max(p.pss, m.pss),
            }
          : m,
      );
    }
  };
  sample();
  const timer = setInterval(sample, 250);
  return {
    stop() {
      clearInterval(timer);
      sample();
      return [...peak.values()];
    },
  };
}

/** Scenario 6's simulated agents (bench/sim-agents.mjs) with no changes: every agent of the
 * lab gets `agents` services with 10 endpoints each. */
async function loadServices(bench, agents) {
  const child = bench.lab.spawn('cp', [
    process.execPath,
    join(import.meta.dirname, 'sim-agents.mjs'),
    '--server',
    '127.0.0.1:15012',
    '--credentials',
    join(bench.lab.dir, 'cp', 'admin'),
    '--cp-pid',
    String(bench.pids.controlPlane),
    '--agents',
    String(agents),
    '--services',
    String(agents),
    '--per-agent',
    '10',
    '--changes',
    '0',
    '--real-nodes',
    'client,server',
  ]);
  child.stderr.on('data', (d) => log(String(d).trim()));
  const result = await new Promise((resolve, reject) => {
    let text = '';
    child.stdout.on('data', (d) => {
      text += d;
      const line = text.split('\n').find((l) => l.startsWith('{'));
      if (line) resolve(JSON.parse(line));
    });
    child.once('exit', (code) => reject(new Error(`sim-agents exited with ${code}`)));
  });
  return { child, result };
}

/** Per agent process: collections (count, total and largest pause by kind) and event-loop
 * stalls (a 10 ms timer more than 1 ms late: count over 1 and 5 ms, total, largest, and how
 * many overlap a collection of that process) within `window` (stall-hook.mjs's records). */
function stallLines(bench, window) {
  if (!window?.to) return ['no measure yet'];
  const lines = [];
  for (const host of ['client', 'server']) {
    const pid = host === 'client' ? bench.pids.clientAgent : bench.pids.serverAgent;
    for (const p of treePids(pid)) {
      let events;
      try {
        events = readFileSync(`/tmp/weft-stall/${p}.jsonl`, 'utf8')
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l))
          .filter((e) => e.t >= window.from && e.t <= window.to);
      } catch {
        continue;
      }
      const gcs = events.filter((e) => e.gc);
      const stalls = events.filter((e) => e.stall !== undefined);
      const byKind = {};
      for (const g of gcs) {
        const kind = g.forced ? `forced ${g.gc}` : g.gc;
        byKind[kind] ??= { n: 0, ms: 0, max: 0 };
        const k = byKind[kind];
        k.n += 1;
        k.ms += g.ms;
        k.max = Math.max(k.max, g.ms);
      }
      const gcText = Object.entries(byKind)
        .map(([k, v]) => `${k} ${v.n} (${v.ms.toFixed(1)} ms, max ${v.max.toFixed(2)})`)
        .join(', ');
      // A stall is the EVERY_MS window before the late timer ran: a collection in it explains it.
      const withGc = stalls.filter((s) =>
        gcs.some((g) => g.t + g.ms >= s.t - 10 && g.t <= s.t + s.stall),
      ).length;
      const sum = stalls.reduce((a, s) => a + s.stall, 0);
      const max = stalls.reduce((a, s) => Math.max(a, s.stall), 0);
      const over5 = stalls.filter((s) => s.stall > 5).length;
      const role = events[0]?.role ?? '?';
      lines.push(
        `${host} ${role} ${p}: gc ${gcText || 'none'}; stalls >1 ms ${stalls.length} (>5 ms ${over5}, total ${sum.toFixed(1)} ms, max ${max.toFixed(1)}), ${withGc} with a gc`,
      );
    }
  }
  return lines;
}
