// Scenario 12: the agent as a master and 1 or 2 workers (issue 16). Every lab host gets both
// of the machine's cores, the client and server agents 1 then 2 workers (restarted with
// `workers: N`), alternated within every repetition: maximum L4 (opaque port) and L7 (http
// port) request rate (wrk, 64 connections, one thread per core), bulk TCP (iperf3, 1 stream),
// the agents' CPU, and the memory of master and workers (RSS, and PSS, which splits the node
// binary's shared pages that RSS counts once per process). The load generator, the upstream
// and both agents share the two cores: the machine's busy time says which side was short.

import { readFileSync, writeFileSync } from 'node:fs';
import { waitUntil } from '../../dist/lab/index.js';
import { cpuSeconds, machineBusySeconds, treeCpu, treeMemory, treePids } from './proc.mjs';
import { summarize } from './stats.mjs';

export const WORKER_COUNTS = [1, 2];
/** Both cores for every host, as two 2-core machines would have (minus the sharing). */
const BOTH_CORES = { client: '0,1', server: '0,1', server2: '0,1' };
const AGENT_HOSTS = ['client', 'server'];

/** Restarts the client and server agents with `n` workers, pinned to both cores. */
async function useWorkers(bench, n, log) {
  log(`scenario 12: the agents with ${n} worker(s)`);
  for (const host of AGENT_HOSTS) {
    const file = bench.mesh.configFile(host);
    const config = JSON.parse(readFileSync(file, 'utf8'));
    config.workers = n;
    writeFileSync(file, JSON.stringify(config, null, 2));
    await bench.lab.stopProcess(host, 'agent');
    await bench.mesh.startAgent(host);
  }
  await bench.settle();
  // Pinned once every worker is forked (taskset -a covers the threads of each process).
  await waitUntil(
    `${n} worker(s) under each agent`,
    async () => {
      const p = bench.pids;
      return [p.clientAgent, p.serverAgent].every((pid) => treePids(pid).length >= n + 1);
    },
    60_000,
  );
  await bench.pin();
  await bench.waitReady();
}

/** Peak of the client and server agents' summed RSS and PSS, sampled until stop(). */
function memorySampler(bench, everyMs = 500) {
  const p = bench.pids;
  const read = () => {
    const procs = [p.clientAgent, p.serverAgent].flatMap((pid) => treeMemory(pid));
    return {
      rss: procs.reduce((a, m) => a + m.rss, 0),
      pss: procs.reduce((a, m) => a + m.pss, 0),
    };
  };
  let peak = read();
  const timer = setInterval(() => {
    const now = read();
    peak = { rss: Math.max(peak.rss, now.rss), pss: Math.max(peak.pss, now.pss) };
  }, everyMs);
  return {
    stop() {
      clearInterval(timer);
      return peak;
    },
  };
}

/**
 * Runs `fn` and measures the cores each side used meanwhile: both agents, the upstream
 * (HAProxy), the whole machine; and the busiest worker's share of the client agent's CPU.
 */
async function measured(bench, fn) {
  const p = bench.pids;
  const agents = [p.clientAgent, p.serverAgent];
  const before = agents.map((pid) => treeCpu(pid));
  const up0 = cpuSeconds(p.upstream);
  const busy0 = machineBusySeconds();
  const t0 = Date.now();
  const res = await fn();
  const seconds = (Date.now() - t0) / 1000;
  const after = agents.map((pid) => treeCpu(pid));
  const delta = (i, pid) => (after[i].get(pid) ?? 0) - (before[i].get(pid) ?? 0);
  const agentSeconds = agents.reduce(
    (sum, _, i) => sum + [...after[i].keys()].reduce((s, pid) => s + delta(i, pid), 0),
    0,
  );
  const clientWorkers = [...after[0].keys()].filter((pid) => pid !== agents[0]);
  const workerSeconds = clientWorkers.map((pid) => delta(0, pid));
  const workersTotal = workerSeconds.reduce((a, b) => a + b, 0);
  return {
    res,
    agentSeconds,
    agentCores: agentSeconds / seconds,
    upstreamCores: (cpuSeconds(p.upstream) - up0) / seconds,
    machineCores: (machineBusySeconds() - busy0) / seconds,
    workerShare: workersTotal > 0 ? Math.max(...workerSeconds) / workersTotal : null,
  };
}

/** The client agent's master and workers, RSS and PSS each (MiB), at one moment. */
function agentMemory(bench) {
  const [master, ...workers] = treeMemory(bench.pids.clientAgent);
  return { master, workers };
}

export async function workersScenario(bench, { reps, seconds, bulkS, warmS, log }) {
  bench.cpu = BOTH_CORES;
  const keys = [
    'l4Rps',
    'l4Errors',
    'l4AgentCores',
    'l4MachineCores',
    'l4CpuPerK',
    'l7Rps',
    'l7P99',
    'l7Errors',
    'l7AgentCores',
    'l7UpstreamCores',
    'l7MachineCores',
    'l7CpuPerK',
    'l7WorkerShare',
    'gbps1',
    'bulkAgentCores',
    'bulkMachineCores',
    'idleRss',
    'idlePss',
    'peakRss',
    'peakPss',
  ];
  const raw = Object.fromEntries(
    WORKER_COUNTS.map((n) => [n, Object.fromEntries(keys.map((k) => [k, []]))]),
  );
  const breakdown = {};
  for (let rep = 0; rep < reps; rep++) {
    const order = rep % 2 === 0 ? WORKER_COUNTS : [...WORKER_COUNTS].reverse();
    for (const n of order) {
      await useWorkers(bench, n, log);
      const into = raw[n];
      // Memory before any load: start-up garbage collected within a few seconds.
      await new Promise((r) => setTimeout(r, 3_000));
      const idle = memorySampler(bench);
      const idleNow = idle.stop();
      into.idleRss.push(idleNow.rss);
      into.idlePss.push(idleNow.pss);
      log(`scenario 12, repetition ${rep + 1}/${reps}: ${n} worker(s)`);
      await bench.wrk('weft', { connections: 16, seconds: warmS });
      await bench.wrk('weft-l7', { connections: 16, seconds: warmS });

      const l4 = await measured(bench, () => bench.wrk('weft', { connections: 64, seconds }));
      into.l4Rps.push(l4.res.rps);
      into.l4Errors.push(l4.res.errors + l4.res.status);
      into.l4AgentCores.push(l4.agentCores);
      into.l4MachineCores.push(l4.machineCores);
      into.l4CpuPerK.push(l4.agentSeconds / (l4.res.requests / 1000));

      const sampler = memorySampler(bench);
      const l7 = await measured(bench, () => bench.wrk('weft-l7', { connections: 64, seconds }));
      const peak = sampler.stop();
      into.l7Rps.push(l7.res.rps);
      into.l7P99.push(l7.res.p99 / 1000);
      into.l7Errors.push(l7.res.errors + l7.res.status);
      into.l7AgentCores.push(l7.agentCores);
      into.l7UpstreamCores.push(l7.upstreamCores);
      into.l7MachineCores.push(l7.machineCores);
      into.l7CpuPerK.push(l7.agentSeconds / (l7.res.requests / 1000));
      into.l7WorkerShare.push(l7.workerShare);
      into.peakRss.push(peak.rss);
      into.peakPss.push(peak.pss);
      breakdown[n] = agentMemory(bench);

      const bulk = await measured(bench, () => bench.iperf('weft', { streams: 1, seconds: bulkS }));
      into.gbps1.push(bulk.res);
      into.bulkAgentCores.push(bulk.agentCores);
      into.bulkMachineCores.push(bulk.machineCores);
    }
  }
  const summary = Object.fromEntries(
    WORKER_COUNTS.map((n) => [n, Object.fromEntries(keys.map((k) => [k, summarize(raw[n][k])]))]),
  );
  // Paired within each repetition, so that the machine's drift cancels out.
  const paired = (key) => summarize(raw[2][key].map((v, i) => v / raw[1][key][i]));
  return {
    reps,
    seconds,
    bulkS,
    placement: BOTH_CORES,
    raw,
    summary,
    breakdown,
    ratio: {
      l4Rps: paired('l4Rps'),
      l7Rps: paired('l7Rps'),
      gbps1: paired('gbps1'),
      peakRss: paired('peakRss'),
      peakPss: paired('peakPss'),
      idleRss: paired('idleRss'),
      idlePss: paired('idlePss'),
    },
  };
}

const fmt = (x, d) => (x == null ? '-' : x.toFixed(d));
const cell = (s, d, scale = 1) =>
  s == null
    ? '-'
    : s.n > 1
      ? `${fmt(s.median * scale, d)} [${fmt(s.min * scale, d)}-${fmt(s.max * scale, d)}]`
      : fmt(s.median * scale, d);

export function workersMarkdown(w) {
  const s = w.summary;
  const row = (label, key, d, scale = 1, ratio = w.ratio[key]) =>
    `| ${label} | ${cell(s[1][key], d, scale)} | ${cell(s[2][key], d, scale)} | ${ratio ? cell(ratio, 2) : ''} |`;
  const proc = (m) => `${m.rss.toFixed(1)} / ${m.pss.toFixed(1)}`;
  const split = (n) => {
    const b = w.breakdown[n];
    if (!b) return '-';
    return `master ${proc(b.master)}; ${b.workers.map((m, i) => `worker ${i + 1} ${proc(m)}`).join('; ')}`;
  };
  return [
    `## 12. The agent's workers: every host on both cores, agents with 1 and 2 workers alternated, ${w.reps} repetition(s), median [min-max]`,
    '',
    `wrk: 64 connections, ${w.seconds} s, one thread per core; iperf3: 1 stream, ${w.bulkS} s. The load generator, the upstream (HAProxy) and both agents share the machine's 2 cores; "machine busy" is all of it.`,
    '',
    '| figure | 1 worker | 2 workers | 2 / 1 (paired) |',
    '|---|---|---|---|',
    row('L4 (opaque) max rate (req/s)', 'l4Rps', 0),
    row('L4 errors', 'l4Errors', 0),
    row('L4 agents CPU (cores, both agents)', 'l4AgentCores', 2),
    row('L4 machine busy (cores of 2)', 'l4MachineCores', 2),
    row('L4 agents CPU µs per request', 'l4CpuPerK', 1, 1000),
    row('L7 (http) max rate (req/s)', 'l7Rps', 0),
    row('L7 latency p99 (ms)', 'l7P99', 2),
    row('L7 errors', 'l7Errors', 0),
    row('L7 agents CPU (cores, both agents)', 'l7AgentCores', 2),
    row('L7 upstream CPU (cores)', 'l7UpstreamCores', 2),
    row('L7 machine busy (cores of 2)', 'l7MachineCores', 2),
    row('L7 agents CPU µs per request', 'l7CpuPerK', 1, 1000),
    row("L7 busiest worker's share of the client agent's workers' CPU", 'l7WorkerShare', 2),
    row('TCP bulk, 1 connection (Gbit/s)', 'gbps1', 2),
    row('bulk: agents CPU (cores)', 'bulkAgentCores', 2),
    row('bulk: machine busy (cores of 2)', 'bulkMachineCores', 2),
    row('both agents RSS idle, after start (MiB)', 'idleRss', 1),
    row('both agents PSS idle, after start (MiB)', 'idlePss', 1),
    row('both agents RSS peak under L7 load (MiB)', 'peakRss', 1),
    row('both agents PSS peak under L7 load (MiB)', 'peakPss', 1),
    '',
    `Client agent after its last L7 run, RSS / PSS in MiB: 1 worker: ${split(1)}. 2 workers: ${split(2)}.`,
    '',
  ].join('\n');
}
