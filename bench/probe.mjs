// `node bench/probe.mjs [dir]`: the bench lab kept up for iterating on one figure. It builds the
// lab once, then serves commands written to <dir>/cmd (default /tmp/weft-probe), one at a time,
// appending results to <dir>/out:
//   measure SETUP [CONNECTIONS] [SECONDS] [close] [delay=MS]   wrk against a setup (direct,
//                                           haproxy, weft, weft-l7); `close`: a connection per
//                                           request (scenario 4); delay=15 with 16 connections:
//                                           about 1k req/s (scenario 1)
//   bulk SETUP [STREAMS] [SECONDS]          iperf3 through a setup (direct, haproxy, weft):
//                                           Gbit/s, each proxy's CPU seconds per GB and RSS
//   restart [bin=PATH] [profile | NODEFLAG...]   restart both agents on the current dist/ (or the
//                                           checkout of bin PATH: an old build to compare with;
//                                           profiled, or under the given node flags)
//   rss                                     both agents' VmRSS 5 s from now (bench scenario 5's
//                                           "idle, after start" when run right after restart)
//   stop                                    the profiled agents write their profiles; summary
//   counts                                  with agents restarted under --import=lib/count-hook.mjs:
//                                           what each L7 request made on each agent since the
//                                           last `counts` (promises, timers, listeners, ...)
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
import { cpuSeconds, rssMiB } from './lib/proc.mjs';

const dir = process.argv[2] ?? '/tmp/weft-probe';
mkdirSync(dir, { recursive: true });
const cmdFile = join(dir, 'cmd');
const out = (line) => appendFileSync(join(dir, 'out'), `${line}\n`);
const log = (msg) => out(`# ${msg}`);

const bench = await BenchLab.up(`pr${process.pid % 1000}`, log);
let profDir;
let loaded = 0;
/** The count hook's totals at the last `counts`, per host. */
const lastCounts = {};
out('ready');
try {
  for (;;) {
    if (!existsSync(cmdFile)) {
      await new Promise((r) => setTimeout(r, 200));
      continue;
    }
    const [cmd, ...args] = readFileSync(cmdFile, 'utf8').trim().split(/\s+/);
    rmSync(cmdFile);
    try {
      if (cmd === 'quit') break;
      if (cmd === 'measure') {
        const delay = args.find((a) => a.startsWith('delay='));
        const [setup, connections = '64', seconds = '5', close] = args.filter((a) => a !== delay);
        const pids = bench.proxyPids(setup);
        const before = pids.map(cpuSeconds);
        const r = await bench.wrk(setup, {
          connections: Number(connections),
          seconds: Number(seconds),
          close: close === 'close',
          delayMs: delay ? Number(delay.slice(6)) : 0,
        });
        const cpu = pids.map((pid, i) =>
          (((cpuSeconds(pid) - before[i]) * 1e6) / r.requests).toFixed(0),
        );
        loaded += r.requests;
        out(`  CPU µs per request: ${cpu.join(' + ')}`);
        out(
          `${setup} c=${connections}: ${r.rps.toFixed(0)} req/s p50 ${r.p50 / 1000} ms p99 ${r.p99 / 1000} ms errors ${r.errors} status ${r.status}`,
        );
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
          );
        }
        await bench.waitReady();
        loaded = 0;
        out(`restarted${bin ? ` on ${bin}` : ''}`);
      } else if (cmd === 'rss') {
        await new Promise((r) => setTimeout(r, 5_000));
        const p = bench.pids;
        out(
          `VmRSS MiB: client ${rssMiB(p.clientAgent).toFixed(1)}, server ${rssMiB(p.serverAgent).toFixed(1)}`,
        );
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
      } else if (cmd === 'counts') {
        // The hook writes every second: let the last requests' counts land first.
        await new Promise((r) => setTimeout(r, 1_500));
        for (const host of ['client', 'server']) {
          const now = JSON.parse(readFileSync(`/tmp/weft-counts/${host}.json`, 'utf8'));
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
  await bench.lab.down().catch(() => undefined);
  out('down');
}
