// `npm run bench [-- --quick] [-- --profile] [-- --no-controlplane]`: weft against no mesh
// (direct) and against one HAProxy per host with mTLS, in one lab, setups alternated within
// every repetition: weft's opaque path (L4 table) and its HTTP path (L7 table: HTTP/1.1, h2c,
// gRPC); then the control plane with many simulated agents. Writes
// bench/results/<timestamp>.json and .md and prints the tables. Needs root. See bench/README.md.
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, release } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { lookupUser } from '../dist/lab/index.js';
import { BenchLab, CPU, OVERLOAD_APP } from './lib/bench-lab.mjs';
import { controlPlaneMarkdown, controlPlaneScenario } from './lib/controlplane-scenario.mjs';
import { analyzeProfile } from './lib/cpuprofile.mjs';
import { haMarkdown, haScenario } from './lib/ha-scenario.mjs';
import { killScenario } from './lib/kill-scenario.mjs';
import { policyCostScenario } from './lib/policy-cost.mjs';
import { agentMemory, memorySampler, totalCpuSeconds } from './lib/proc.mjs';
import { killMarkdown, markdown, policyCostMarkdown } from './lib/report.mjs';
import { summarize } from './lib/stats.mjs';
import { ensureTools } from './lib/tools.mjs';
import { workersMarkdown, workersScenario } from './lib/workers-scenario.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const RESULTS = join(ROOT, 'bench', 'results');
const argv = new Set(process.argv.slice(2));
const QUICK = argv.has('--quick');
const PROFILE = argv.has('--profile');
const CONTROL_PLANE = !argv.has('--no-controlplane');
/** Only the overload scenario (9), once: `npm run bench -- --overload-only`. */
const OVERLOAD_ONLY = argv.has('--overload-only');
/** Only scenario 10 (an endpoint killed), once: `npm run bench -- --kill-only`. */
const KILL_ONLY = argv.has('--kill-only');
/** Only scenario 11 (the policy stages' cost): `npm run bench -- --policy-cost-only`. */
const POLICY_COST_ONLY = argv.has('--policy-cost-only');
/** Only scenario 12 (1 and 2 workers, every host on both cores): `-- --workers-only`. */
const WORKERS_ONLY = argv.has('--workers-only');
/** Scenario 11 with a `weft tap` attached instead of a policy: `-- --policy-cost-only --tap`. */
const TAP = argv.has('--tap');
/** Only scenario 6 against three replicas on a three-member etcd: `-- --ha-only`. */
const HA_ONLY = argv.has('--ha-only');
/**
 * Only scenario 6 against one file-store control plane: `-- --controlplane-only`, with
 * `--cp-compare DIR` (another checkout's control plane, interleaved), `--plain-agents`
 * (simulated agents that announce no snapshot compression, as the previous release's),
 * `--cp-repetitions N` (default 3, quick 1), `--cp-agents N` and `--cp-node-options FLAGS`
 * (Node flags for the control plane, e.g. `--import=$PWD/bench/lib/heap-hook.mjs`) and
 * `--cp-env "K=V ..."` (more of its environment).
 */
const CONTROL_PLANE_ONLY = argv.has('--controlplane-only');
const argValue = (flag) => {
  const args = process.argv.slice(2);
  const i = args.indexOf(flag);
  return i < 0 ? undefined : args[i + 1];
};
const wholeArg = (flag) => {
  const v = argValue(flag);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${flag} needs a whole number of at least 1`);
  return n;
};
/** `--ha-agents N`: scenario 6 (HA) with N simulated agents instead of the plan's. */
const HA_AGENTS = (() => {
  const args = process.argv.slice(2);
  const i = args.indexOf('--ha-agents');
  if (i < 0) return undefined;
  const n = Number(args[i + 1]);
  if (!Number.isInteger(n) || n < 1)
    throw new Error('--ha-agents needs a whole number of at least 1');
  return n;
})();
/**
 * `--kill-app-ms N`: scenario 10's app holds each answer N ms (default 0), so that about
 * rate x N / 1000 / 2 requests are in flight at the endpoint that is killed.
 */
const KILL_APP_MS = (() => {
  const args = process.argv.slice(2);
  const i = args.indexOf('--kill-app-ms');
  if (i < 0) return 0;
  const ms = Number(args[i + 1]);
  if (!Number.isInteger(ms) || ms < 0) {
    console.error(
      'bench: --kill-app-ms needs a whole number of milliseconds, e.g. --kill-app-ms 50',
    );
    process.exit(2);
  }
  return ms;
})();
const SETUPS = ['direct', 'haproxy', 'bare', 'weft', 'bare-l7', 'weft-l7'];

/**
 * What each setup runs. `weft` is weft's opaque path (service `bench-tcp`, protocol tcp): the
 * L4 figures, comparable with runs from before the L7 engine. `weft-l7` is the same upstream
 * through the HTTP path (service `bench`, protocol http) and the gRPC service. `bare` and
 * `bare-l7` are the same two paths through bench/bare-relay.mjs: weft's design in bare Node,
 * with none of weft's code (HTTP/1.1 only: no h2c or gRPC).
 * http: scenarios 1, 2 (and 5); conn: 4; l4: 3; l7: 7 (h2c), 8 (gRPC).
 */
const SCENARIOS = {
  direct: ['http', 'conn', 'l4', 'l7'],
  haproxy: ['http', 'conn', 'l4', 'l7'],
  bare: ['http', 'conn', 'l4'],
  weft: ['http', 'conn', 'l4'],
  'bare-l7': ['http', 'conn'],
  'weft-l7': ['http', 'conn', 'l7'],
};
const H2 = { clients: 4, streams: 32 };
const GRPC_CONCURRENCY = 32;

const PLAN = QUICK
  ? {
      reps: 1,
      warmS: 2,
      firstWarmS: 8,
      latencyS: 4,
      maxS: 4,
      bulkS: 3,
      connS: 3,
      h2S: 3,
      grpcS: 3,
      simAgents: 200,
      simChanges: 4,
      overloadS: 5,
      kill: { rate: 400, seconds: 15, killAtS: 5, warmS: 2 },
      policyReps: 2,
      workersReps: 1,
    }
  : {
      reps: 3,
      warmS: 2,
      firstWarmS: 30,
      latencyS: 10,
      maxS: 10,
      bulkS: 6,
      connS: 6,
      h2S: 6,
      grpcS: 6,
      simAgents: 1000,
      simChanges: 10,
      overloadS: 10,
      kill: { rate: 400, seconds: 15, killAtS: 5, warmS: 2 },
      policyReps: 4,
      workersReps: 3,
    };

const started = Date.now();
const log = (msg) =>
  process.stderr.write(`[bench +${((Date.now() - started) / 1000).toFixed(0)}s] ${msg}\n`);

function preflight() {
  if (process.getuid?.() !== 0) {
    console.error(
      'bench: needs root (it builds network namespaces and iptables rules); run it with sudo',
    );
    process.exit(1);
  }
  try {
    readdirSync(join(ROOT, 'dist', 'cli'));
  } catch {
    console.error('bench: dist/ is missing; run `npm run build` first');
    process.exit(1);
  }
  ensureTools(log);
}

/**
 * Unmeasured load on a setup's paths before its scenarios: a proxy that has just started, or
 * sat idle while the other setups ran, pays for its first requests (weft's JIT compiles its
 * hot paths on the same core; HAProxy and the kernel warm caches and pools). Every setup gets
 * the same warm-up, every repetition, so the figures are the steady state of each. The first
 * repetition's is longer: fresh agents' CPU per L7 request falls for their first 30-45 s under
 * load while V8's optimizing compiler works (177 + 152 µs in the first 8 s, 119 + 112 after
 * 40 s, in one probe run), which 2 s would leave in that repetition's figures.
 */
async function warmUp(bench, setup, first) {
  await bench.wrk(setup, { connections: 16, seconds: first ? PLAN.firstWarmS : PLAN.warmS });
  await bench.wrk(setup, { connections: 16, seconds: 1, close: true });
  if (!SCENARIOS[setup].includes('l4')) return; // h2load and grpc-load warm up by themselves
  await bench.iperf(setup, { streams: 1, seconds: PLAN.warmS, omit: 0 });
}

/** The scenarios of one repetition for one setup; figures go into `into[key][setup]`. */
async function runScenarios(bench, setup, into, load) {
  const put = (key, v) => {
    into[key] ??= Object.fromEntries(SETUPS.map((s) => [s, []]));
    into[key][setup].push(v);
  };
  const runs = SCENARIOS[setup];
  const cpuDuring = async (fn, opts) => {
    const pids = bench.proxyPids(setup, opts);
    const before = totalCpuSeconds(pids);
    const res = await fn();
    return { res, cpu: totalCpuSeconds(pids) - before };
  };

  if (runs.includes('http')) {
    // 1. HTTP/1.1 at ~1,000 requests/s over 16 connections (15 ms pause per connection: wrk adds its timer slack).
    const s1 = await cpuDuring(() =>
      bench.wrk(setup, { connections: 16, seconds: PLAN.latencyS, delayMs: 15 }),
    );
    put('s1.rps', s1.res.rps);
    for (const p of ['p50', 'p90', 'p99', 'max']) put(`s1.${p}`, s1.res[p] / 1000);
    put('s1.errors', s1.res.errors + s1.res.status);
    if (setup !== 'direct') put('s1.cpu', s1.cpu / (s1.res.requests / 1000));

    // 2. HTTP/1.1 at maximum rate, 64 connections (agent RSS sampled under this load).
    const samplers = load.peaks[setup] ? load.samplers(setup) : [];
    const s2 = await cpuDuring(() => bench.wrk(setup, { connections: 64, seconds: PLAN.maxS }));
    if (samplers.length) load.peaks[setup].push(samplers.map((s) => s.stop()));
    put('s2.rps', s2.res.rps);
    put('s2.p99', s2.res.p99 / 1000);
    put('s2.errors', s2.res.errors + s2.res.status);
    if (setup !== 'direct') put('s2.cpu', s2.cpu / (s2.res.requests / 1000));
  }

  if (runs.includes('l4')) {
    // 3. TCP bulk, one connection and eight.
    put('s3.gbps1', await bench.iperf(setup, { streams: 1, seconds: PLAN.bulkS }));
    put('s3.gbps8', await bench.iperf(setup, { streams: 8, seconds: PLAN.bulkS }));
  }

  if (runs.includes('conn')) {
    // 4. A new connection per request. HAProxy's chain, in HTTP mode with `http-reuse
    // always`, answers each on connections it already holds to its peer and the app, as
    // weft's http port does (pooled tunnel session, keep-alive pool to the app); weft's opaque
    // port opens a tunnel stream and a connection to the app for each.
    const s4 = await cpuDuring(() =>
      bench.wrk(setup, { connections: 16, seconds: PLAN.connS, close: true }),
    );
    put('s4.cps', s4.res.rps);
    put('s4.errors', s4.res.errors + s4.res.status);
    if (setup !== 'direct') put('s4.cpu', s4.cpu / (s4.res.requests / 1000));
  }

  // A failure of 7 or 8 is reported and leaves a gap: the figures of the rest still count.
  const attempt = async (what, fn) => {
    try {
      await fn();
    } catch (err) {
      load.failures.push(`${what}, ${setup}: ${err.message}`);
      log(`${what}, ${setup} failed: ${err.message}`);
    }
  };
  if (runs.includes('l7')) {
    await attempt('scenario 7', () => h2Scenario(bench, setup, put, cpuDuring));
    await attempt('scenario 8', () => grpcScenario(bench, setup, put, cpuDuring));
  }
}

/** 7. HTTP/2 with prior knowledge at maximum rate, multiplexed. */
async function h2Scenario(bench, setup, put, cpuDuring) {
  const h2 = await cpuDuring(() => bench.h2load(setup, { ...H2, seconds: PLAN.h2S }));
  put('h2.rps', h2.res.rps);
  put('h2.p50', h2.res.p50);
  put('h2.p99', h2.res.p99);
  put('h2.errors', h2.res.errors);
  if (setup !== 'direct') put('h2.cpu', h2.cpu / (h2.res.requests / 1000));
}

/** 8. gRPC unary on one channel; haproxy and weft balance over server's and server2's endpoints. */
async function grpcScenario(bench, setup, put, cpuDuring) {
  const g = await cpuDuring(
    () => bench.grpc(setup, { seconds: PLAN.grpcS, concurrency: GRPC_CONCURRENCY, warmS: 1 }),
    { server2: true },
  );
  put('grpc.rps', g.res.rps);
  put('grpc.p50', g.res.p50Us / 1000);
  put('grpc.p99', g.res.p99Us / 1000);
  put('grpc.errors', g.res.errors);
  if (g.res.firstError) log(`gRPC ${setup}: ${g.res.errors} errors, first: ${g.res.firstError}`);
  if (setup !== 'direct') {
    put('grpc.share', (100 * (g.res.byEndpoint.server ?? 0)) / Math.max(1, g.res.calls));
    put('grpc.cpu', g.cpu / (g.res.calls / 1000));
  }
}

const HTTP1_ROWS = [
  ['s1.p50', '1. latency p50 at 1k req/s (ms)', 3],
  ['s1.p90', '1. latency p90 (ms)', 3],
  ['s1.p99', '1. latency p99 (ms)', 3],
  ['s1.max', '1. latency max (ms)', 2],
  ['s1.added.p50', '1. added over direct, p50 (ms)', 3, true],
  ['s1.added.p99', '1. added over direct, p99 (ms)', 3, true],
  ['s1.rps', '1. achieved rate (req/s)', 0],
  ['s2.rps', '2. max rate, 64 conns (req/s)', 0],
  ['s2.p99', '2. latency p99 at max rate (ms)', 2],
];

/**
 * Two tables of one run: the L4 one (weft's opaque port; the same rows as before the L7
 * engine) and the L7 one (weft's http port and the gRPC service). direct and haproxy have one
 * set of HTTP/1.1 runs, shown in both tables.
 */
const TABLES = [
  {
    id: 'l4',
    title: 'L4: weft on an opaque port (`bench-tcp`, protocol tcp)',
    weft: 'weft',
    weftLabel: 'weft',
    bare: 'bare',
    rows: [
      ...HTTP1_ROWS,
      ['s3.gbps1', '3. TCP bulk, 1 connection (Gbit/s)', 2],
      ['s3.gbps8', '3. TCP bulk, 8 connections (Gbit/s)', 2],
      ['s4.cps', '4. new connections/s (conn per request)', 0],
      ['s4.cpu', '4. proxy CPU s per 1k new connections (both hosts)', 4],
      ['s1.cpu', '5. proxy CPU s per 1k req at 1k req/s (both hosts)', 4],
      ['s2.cpu', '5. proxy CPU s per 1k req at max rate (both hosts)', 4],
      ['errors', 'errors (all wrk runs, summed per repetition)', 0, true],
    ],
  },
  {
    id: 'l7',
    title:
      "L7: weft on an `http` port (`bench`) and a `grpc` one (`bench-grpc`); direct and haproxy's rows 1, 2, 4 and 5 are the runs of the L4 table",
    weft: 'weft-l7',
    weftLabel: 'weft L7',
    bare: 'bare-l7',
    rows: [
      ...HTTP1_ROWS,
      ['s4.cps', '4. new connections/s (conn per request)', 0],
      ['s4.cpu', '4. proxy CPU s per 1k new connections (both hosts)', 4],
      ['s1.cpu', '5. proxy CPU s per 1k req at 1k req/s (both hosts)', 4],
      ['s2.cpu', '5. proxy CPU s per 1k req at max rate (both hosts)', 4],
      ['h2.rps', `7. h2c max rate, ${H2.clients} conns x ${H2.streams} streams (req/s)`, 0],
      ['h2.p50', '7. h2c latency p50 at max rate (ms)', 2],
      ['h2.p99', '7. h2c latency p99 at max rate (ms)', 2],
      ['h2.cpu', '7. h2c proxy CPU s per 1k req (both hosts)', 4],
      ['grpc.rps', `8. gRPC unary, 1 channel, ${GRPC_CONCURRENCY} in flight (calls/s)`, 0],
      ['grpc.p50', '8. gRPC latency p50 (ms)', 2],
      ['grpc.p99', '8. gRPC latency p99 (ms)', 2],
      [
        'grpc.share',
        "8. gRPC calls answered by server's endpoint (%, the rest by server2's)",
        1,
        true,
      ],
      ['grpc.cpu', '8. gRPC proxy CPU s per 1k calls (all hosts)', 4],
      ['l7.errors', 'errors (wrk, h2load and gRPC runs, summed per repetition)', 0, true],
    ],
  },
];

/** Latency each proxy adds over direct, paired within a repetition; errors summed. */
function addDerived(raw) {
  for (const p of ['p50', 'p99']) {
    const d = raw[`s1.${p}`];
    raw[`s1.added.${p}`] = Object.fromEntries(
      SETUPS.map((s) => [s, s === 'direct' ? [] : d[s].map((v, i) => v - d.direct[i])]),
    );
  }
  const sum = (keys, setup) => {
    const series = keys.map((k) => raw[k]?.[setup] ?? []);
    const n = Math.max(...series.map((v) => v.length));
    return Array.from({ length: n }, (_, i) => series.reduce((a, v) => a + (v[i] ?? 0), 0));
  };
  raw.errors = {};
  raw['l7.errors'] = {};
  for (const s of SETUPS) {
    raw.errors[s] = SCENARIOS[s].includes('l4')
      ? sum(['s1.errors', 's2.errors', 's4.errors'], s)
      : [];
    raw['l7.errors'][s] =
      s === 'weft' || s === 'bare'
        ? []
        : sum(['s1.errors', 's2.errors', 's4.errors', 'h2.errors', 'grpc.errors'], s);
  }
}

/** A table's rows: median [min-max] per column, its weft column taken from its weft setup. */
function tableRows(table, raw) {
  return table.rows.map(([key, label, digits, noRatio]) => ({
    key,
    label,
    digits,
    noRatio: noRatio === true,
    setups: {
      direct: summarize(raw[key]?.direct ?? []),
      haproxy: summarize(raw[key]?.haproxy ?? []),
      bare: summarize(raw[key]?.[table.bare] ?? []),
      weft: summarize(raw[key]?.[table.weft] ?? []),
    },
  }));
}

/**
 * 9. Overload: an app of fixed capacity (8 at a time, 50 ms each: 160/s) offered twice that,
 * open loop, without and with adaptive concurrency: goodput and the latency of the requests
 * the app answered (the rest are shed fast with 503 overloaded, or wait in its queue).
 */
async function overloadScenario(bench) {
  const rate = (2 * OVERLOAD_APP.capacity * 1000) / OVERLOAD_APP.serviceMs;
  const out = { app: OVERLOAD_APP, rate, seconds: PLAN.overloadS };
  for (const ac of [false, true]) {
    log(`scenario 9: overload at ${rate}/s, adaptive concurrency ${ac ? 'on' : 'off'}`);
    out[ac ? 'adaptive' : 'plain'] = await bench.overload({
      ac,
      rate,
      seconds: PLAN.overloadS,
      warmS: 3,
    });
  }
  return out;
}

function overloadMarkdown(o) {
  const row = (label, r) =>
    `| ${label} | ${r.sent} | ${r.ok} | ${r.shed} | ${r.errors} | ${r.goodput.toFixed(0)} | ${r.p50?.toFixed(1) ?? '-'} | ${r.p99?.toFixed(1) ?? '-'} |`;
  return [
    `## 9. Overload: an app of capacity ${(o.app.capacity * 1000) / o.app.serviceMs}/s (${o.app.capacity} x ${o.app.serviceMs} ms) offered ${o.rate}/s for ${o.seconds} s`,
    '',
    '| weft L7 | sent | 200 | shed (503 overloaded) | other errors | goodput (200/s) | p50 of 200s (ms) | p99 of 200s (ms) |',
    '|---|---|---|---|---|---|---|---|',
    row('without adaptive concurrency', o.plain),
    row('with adaptiveConcurrency (defaults)', o.adaptive),
    '',
  ].join('\n');
}

async function controlPlaneScale(bench) {
  log(`scenario 6: ${PLAN.simAgents} simulated agents against the control plane`);
  const cpPid = bench.pids.controlPlane;
  const child = bench.lab.spawn('cp', [
    process.execPath,
    join(ROOT, 'bench', 'sim-agents.mjs'),
    '--server',
    '127.0.0.1:15012',
    '--credentials',
    join(bench.lab.dir, 'cp', 'admin'),
    '--cp-pid',
    String(cpPid),
    '--agents',
    String(PLAN.simAgents),
    '--services',
    String(PLAN.simAgents),
    '--per-agent',
    '10',
    '--changes',
    String(PLAN.simChanges),
    '--real-nodes',
    'client,server',
  ]);
  child.stderr.on('data', (d) => process.stderr.write(d));
  const result = await new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      const line = out.split('\n').find((l) => l.startsWith('{'));
      if (line) resolve(JSON.parse(line));
    });
    child.once('exit', (code) => reject(new Error(`sim-agents exited with ${code}`)));
  });
  // The real agents acked the state with every simulated service and endpoint: measure them.
  const p = bench.pids;
  await new Promise((r) => setTimeout(r, 2_000));
  const loaded = bothAgents(p);
  child.stdin.end();
  await new Promise((r) => child.once('exit', r));
  return { result, loaded };
}

/** RSS and PSS (MiB) of a process on the client and one on the server host, each summed over
 * its tree (an agent: master and workers): RSS counts the node binary's shared pages once per
 * process, PSS splits them. */
function bothHosts(clientPid, serverPid) {
  const [client, server] = [agentMemory(clientPid), agentMemory(serverPid)];
  return { rss: [client.rss, server.rss], pss: [client.pss, server.pss] };
}

function bothAgents(p) {
  return bothHosts(p.clientAgent, p.serverAgent);
}

/** The monotonic clock in µs: V8 stamps a profile's samples with it. */
const monotonicUs = () => Number(process.hrtime.bigint() / 1000n);

async function profileAgents(bench, dir) {
  const weft = lookupUser('weft');
  const runs = [
    ['http', () => bench.wrk('weft', { connections: 64, seconds: 10 })],
    ['http-l7', () => bench.wrk('weft-l7', { connections: 64, seconds: 10 })],
    ['tcp', () => bench.iperf('weft', { streams: 8, seconds: 8 })],
    ['new-connections', () => bench.wrk('weft', { connections: 16, seconds: 8, close: true })],
  ];
  const out = {};
  for (const [name, load] of runs) {
    for (const host of ['client', 'server']) {
      const hostDir = join(dir, name, host);
      mkdirSync(hostDir, { recursive: true });
      chownSync(join(dir, name), weft.uid, weft.gid);
      chownSync(hostDir, weft.uid, weft.gid);
      await bench.lab.stopProcess(host, 'agent');
      // The profile is written when the agent exits after SIGTERM's drain. Node's own file
      // names (with the pid): the workers inherit the master's flags, so a fixed
      // --cpu-prof-name would have the master's profile overwrite its worker's.
      await bench.startAgentUnder(host, ['--cpu-prof', `--cpu-prof-dir=${hostDir}`]);
    }
    await bench.waitReady();
    log(`profiling the agents under ${name} load`);
    const window = { fromUs: monotonicUs() };
    const result = await load();
    window.toUs = monotonicUs();
    // A long grace: the profile is written after the drain, and a SIGKILL would lose it.
    for (const host of ['client', 'server']) await bench.lab.stopProcess(host, 'agent', 30_000);
    // Only the load window counts: start-up (module loading, joining) is left out.
    out[name] = { load: result, seconds: (window.toUs - window.fromUs) / 1e6 };
    for (const host of ['client', 'server']) {
      // Each process of the agent, the busiest (the worker, which serves) first.
      const hostDir = join(dir, name, host);
      const processes = readdirSync(hostDir)
        .filter((f) => f.endsWith('.cpuprofile'))
        .map((f) => ({ file: f, ...analyzeProfile(join(hostDir, f), { top: 25, ...window }) }))
        .sort((a, b) => b.busyMs - a.busyMs);
      out[name][host] = {
        ...processes[0],
        others: processes.slice(1).map(({ file, busyMs }) => ({ file, busyMs })),
      };
    }
  }
  // Leave plain agents behind for whatever runs next.
  for (const host of ['client', 'server']) {
    await bench.mesh.startAgent(host);
    await bench.pinAgent(host);
  }
  return out;
}

function profileMarkdown(profiles) {
  const lines = ['# Agent CPU profiles (load window only)', ''];
  const pct = (x) => (x == null ? '-' : (x * 100).toFixed(1));
  for (const [load, run] of Object.entries(profiles)) {
    const requests = run.load?.requests;
    const what = requests ? `${requests} requests` : `${run.load?.toFixed?.(2) ?? '?'} Gbit/s`;
    lines.push(`## ${load} load: ${what} in ${run.seconds.toFixed(1)} s`, '');
    for (const host of ['client', 'server']) {
      const p = run[host];
      const perRequest = requests
        ? `, ${((p.busyMs * 1000) / requests).toFixed(1)} µs per request`
        : '';
      const others = p.others.length
        ? ` (its busiest process, ${p.file}; the others: ${p.others.map((o) => `${o.file} ${(o.busyMs / 1000).toFixed(2)} s`).join(', ')})`
        : '';
      lines.push(
        `### ${host} agent: ${(p.busyMs / 1000).toFixed(2)} s busy of ${(p.totalMs / 1000).toFixed(2)} s${perRequest}${others}`,
        '',
      );
      lines.push('| self ms | % of busy | function | where |', '|---|---|---|---|');
      for (const t of p.top)
        lines.push(`| ${t.ms.toFixed(0)} | ${pct(t.shareOfBusy)} | ${t.name} | ${t.where} |`);
      lines.push('', 'Callers of the heaviest native functions:', '');
      for (const c of p.callers)
        lines.push(
          `- ${c.native}: ${c.from.map((t) => `${t.name} ${t.where} ${t.ms.toFixed(0)} ms`).join('; ')}`,
        );
      lines.push('', "Inclusive time of weft's own functions:", '');
      lines.push('| ms | % of busy | function | where |', '|---|---|---|---|');
      for (const t of p.weft.slice(0, 12))
        lines.push(`| ${t.ms.toFixed(0)} | ${pct(t.shareOfBusy)} | ${t.name} | ${t.where} |`);
      lines.push('');
    }
  }
  return `${lines.join('\n')}\n`;
}

function gitCommit() {
  try {
    const head = execFileSync('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD'], {
      encoding: 'utf8',
    }).trim();
    const dirty = execFileSync(
      'git',
      ['-C', ROOT, 'status', '--porcelain', '--', 'src', 'native'],
      { encoding: 'utf8' },
    ).trim();
    return dirty ? `${head} (with uncommitted changes in src/)` : head;
  } catch {
    return 'unknown';
  }
}

async function main() {
  preflight();
  const stamp = new Date()
    .toISOString()
    .replace(/[:.]/g, '-')
    .replace(/-\d{3}Z$/, 'Z');
  const name = `bn${Math.random()
    .toString(36)
    .slice(2, 6)
    .replace(/[^a-z0-9]/g, 'x')}`; // <lab>-<host> must fit an interface name
  if (HA_ONLY) return onlyHa(stamp);
  if (CONTROL_PLANE_ONLY) return onlyControlPlane(stamp);
  const bench = await BenchLab.up(name, log, { killAppMs: KILL_APP_MS });
  if (OVERLOAD_ONLY)
    return onlyOne(bench, stamp, 'overload', overloadScenario, (o) => overloadMarkdown(o));
  if (KILL_ONLY) return onlyOne(bench, stamp, 'kill', runKill, killMarkdown);
  if (POLICY_COST_ONLY)
    return onlyOne(bench, stamp, 'policy-cost', runPolicyCost, policyCostMarkdown);
  if (WORKERS_ONLY) return onlyOne(bench, stamp, 'workers', runWorkers, workersMarkdown);
  const raw = {};
  let overload;
  let kill;
  let policyCost;
  const memory = {};
  let controlPlane;
  let profiles;
  let httpCounted;
  const failures = [];
  try {
    // Settle: the agents' start-up garbage is collected within a few seconds.
    await new Promise((r) => setTimeout(r, 5_000));
    const p0 = bench.pids;
    memory['idle, after start'] = bothAgents(p0);
    const bareIdle = bothHosts(p0.clientBare, p0.serverBare);
    const load = {
      peaks: { weft: [], 'weft-l7': [], bare: [], 'bare-l7': [] },
      failures,
      // Each side's peak RSS and PSS while scenario 2 runs: the agents (master and workers
      // summed), or the bare Node relays.
      samplers: (setup) =>
        setup.startsWith('bare')
          ? [memorySampler(p0.clientBare), memorySampler(p0.serverBare)]
          : [memorySampler(p0.clientAgent), memorySampler(p0.serverAgent)],
    };
    for (let rep = 0; rep < PLAN.reps; rep++) {
      // Rotate the order each repetition so that no setup always runs first or last.
      const order = SETUPS.map((_, i) => SETUPS[(i + rep) % SETUPS.length]);
      for (const setup of order) {
        log(`repetition ${rep + 1}/${PLAN.reps}: ${setup}`);
        await warmUp(bench, setup, rep === 0);
        await runScenarios(bench, setup, raw, load);
      }
    }
    const peak = (setup) => ({
      rss: [0, 1].map((i) => Math.max(...load.peaks[setup].map((p) => p[i].rss))),
      pss: [0, 1].map((i) => Math.max(...load.peaks[setup].map((p) => p[i].pss))),
    });
    memory['under load (peak during scenario 2, opaque port)'] = peak('weft');
    memory['under load (peak during scenario 2, http port)'] = peak('weft-l7');
    await new Promise((r) => setTimeout(r, 5_000));
    memory['idle, after the load'] = bothAgents(p0);
    // The same design in bare Node (bench/bare-relay.mjs), one process per host.
    memory['bare Node relay (one process): idle, after start'] = bareIdle;
    memory['bare Node relay: peak during scenario 2, opaque'] = peak('bare');
    memory['bare Node relay: peak during scenario 2, HTTP'] = peak('bare-l7');
    httpCounted = await bench.httpRequestsCounted();
    addDerived(raw);
    try {
      overload = await overloadScenario(bench);
    } catch (err) {
      failures.push(`scenario 9: ${err.message}`);
    }
    try {
      kill = await runKill(bench);
    } catch (err) {
      failures.push(`scenario 10: ${err.message}`);
    }
    try {
      policyCost = await runPolicyCost(bench);
    } catch (err) {
      failures.push(`scenario 11: ${err.message}`);
    }
    if (PROFILE) {
      const dir = join(RESULTS, `${stamp}-profile`);
      mkdirSync(dir, { recursive: true });
      chmodSync(dir, 0o755);
      // A failure here (or in scenario 6) is reported; the figures so far are still written.
      try {
        profiles = await profileAgents(bench, dir);
        writeFileSync(join(dir, 'summary.md'), profileMarkdown(profiles));
        process.stdout.write(profileMarkdown(profiles));
      } catch (err) {
        failures.push(`profile: ${err.message}`);
        // Plain agents again, for scenario 6.
        for (const host of ['client', 'server']) {
          await bench.lab.stopProcess(host, 'agent', 30_000).catch(() => false);
          await bench.mesh.startAgent(host);
          await bench.pinAgent(host);
        }
        await bench.waitReady();
      }
    }
    if (CONTROL_PLANE) {
      try {
        const cp = await controlPlaneScale(bench);
        controlPlane = cp.result;
        memory[`with ${cp.result.services} services and ${cp.result.endpoints} endpoints loaded`] =
          cp.loaded;
      } catch (err) {
        failures.push(`scenario 6: ${err.message}`);
      }
    }
  } finally {
    log('tearing the lab down');
    await bench.lab.down().catch((err) => log(`teardown: ${err.message}`));
    rmSync(bench.dir, { recursive: true, force: true }); // configs and throwaway certificates
  }
  const result = {
    date: new Date().toISOString(),
    commit: gitCommit(),
    mode: QUICK ? 'quick' : 'full',
    repetitions: PLAN.reps,
    plan: PLAN,
    machine: {
      cores: cpus().length,
      model: cpus()[0]?.model ?? 'unknown',
      node: process.version,
      kernel: release(),
    },
    placement: `client host (wrk, h2load, iperf3 and gRPC clients, client-side HAProxy, client agent, client bare Node relay) pinned to CPU ${CPU.client}; server and server2 hosts (upstream HAProxy, iperf3 and gRPC servers, server-side HAProxy, server bare Node relay, their agents) pinned to CPU ${CPU.server}; each agent is a master and 1 worker (both pinned, CPU and RSS summed); control plane and simulated agents unpinned. The machine is shared: other work may run on the same cores.`,
    tables: TABLES.map((t) => ({
      id: t.id,
      title: t.title,
      weftLabel: t.weftLabel,
      rows: tableRows(t, raw),
    })),
    httpCounted,
    raw,
    memory,
    controlPlane,
    overload,
    kill,
    policyCost,
    profiles: profiles
      ? Object.fromEntries(Object.entries(profiles).map(([k, v]) => [k, v]))
      : undefined,
    failures,
    durationSeconds: (Date.now() - started) / 1000,
  };
  mkdirSync(RESULTS, { recursive: true });
  const md =
    markdown(result) +
    (overload ? `\n${overloadMarkdown(overload)}` : '') +
    (kill ? `\n${killMarkdown(kill)}` : '') +
    (policyCost ? `\n${policyCostMarkdown(policyCost)}` : '');
  writeFileSync(join(RESULTS, `${stamp}.json`), `${JSON.stringify(result, null, 2)}\n`);
  writeFileSync(join(RESULTS, `${stamp}.md`), md);
  process.stdout.write(md);
  log(`wrote bench/results/${stamp}.json and .md`);
  if (failures.length > 0) {
    console.error(`bench: parts failed:\n  ${failures.join('\n  ')}`);
    process.exitCode = 1;
  }
}

/** 10. An endpoint killed with kill -9 during a fixed-rate run (weft, haproxy, direct). */
function runKill(bench) {
  return killScenario(bench, { ...PLAN.kill, appMs: KILL_APP_MS, log });
}

/** 11. The L7 maximum rate with and without a TrafficPolicy and an HTTPRoute, alternated. */
function runPolicyCost(bench) {
  return policyCostScenario(bench, {
    reps: PLAN.policyReps,
    seconds: PLAN.maxS,
    warmS: PLAN.warmS,
    log,
    tap: TAP,
  });
}

/** 12. 1 and 2 workers per agent, every host on both cores, alternated. */
function runWorkers(bench) {
  return workersScenario(bench, {
    reps: PLAN.workersReps,
    seconds: PLAN.maxS,
    bulkS: PLAN.bulkS,
    warmS: PLAN.warmS,
    log,
  });
}

/**
 * `--overload-only`, `--kill-only`, `--policy-cost-only`, `--workers-only`: one scenario alone, written as
 * bench/results/<stamp>-<what>.{json,md}.
 */
async function onlyOne(bench, stamp, what, run, toMarkdown) {
  let figures;
  try {
    figures = await run(bench);
  } finally {
    log('tearing the lab down');
    await bench.lab.down().catch((err) => log(`teardown: ${err.message}`));
    rmSync(bench.dir, { recursive: true, force: true });
  }
  const result = {
    date: new Date().toISOString(),
    commit: gitCommit(),
    mode: `${what}-only${QUICK ? ', quick' : ''}`,
    [what === 'policy-cost' ? 'policyCost' : what]: figures,
    durationSeconds: (Date.now() - started) / 1000,
  };
  const md = `commit ${result.commit}, ${result.date}\n\n${toMarkdown(figures)}`;
  mkdirSync(RESULTS, { recursive: true });
  writeFileSync(join(RESULTS, `${stamp}-${what}.json`), `${JSON.stringify(result, null, 2)}\n`);
  writeFileSync(join(RESULTS, `${stamp}-${what}.md`), `${md}\n`);
  process.stdout.write(`${md}\n`);
}

/** `--controlplane-only`: scenario 6 against one control plane, in a lab of its own host. */
async function onlyControlPlane(stamp) {
  if (PROFILE) {
    const profDir = join(RESULTS, `${stamp}-controlplane-profile`);
    mkdirSync(profDir, { recursive: true, mode: 0o777 });
    chmodSync(profDir, 0o777);
    process.env.WEFT_LAB_CPU_PROF_DIR = profDir;
    log(`control plane profiles (one per run, in run order): ${profDir}`);
  }
  const compare = argValue('--cp-compare');
  const variants = [{ label: 'this checkout', simArgs: [] }];
  if (argv.has('--plain-agents'))
    variants.push({ label: 'this checkout, plain agents', simArgs: ['--plain', '1'] });
  if (compare !== undefined)
    variants.push({ label: `${compare}`, bin: join(compare, 'bin', 'weft'), simArgs: [] });
  const figures = await controlPlaneScenario({
    agents: wholeArg('--cp-agents') ?? PLAN.simAgents,
    changes: PLAN.simChanges,
    repetitions: wholeArg('--cp-repetitions') ?? (QUICK ? 1 : 3),
    variants,
    nodeFlags: argValue('--cp-node-options') ?? '',
    env: Object.fromEntries(
      (argValue('--cp-env') ?? '')
        .split(/\s+/)
        .filter(Boolean)
        .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
    ),
    log,
  });
  const result = {
    date: new Date().toISOString(),
    commit: gitCommit(),
    mode: `controlplane-only${QUICK ? ', quick' : ''}`,
    machine: { cores: cpus().length, model: cpus()[0]?.model ?? 'unknown', node: process.version },
    controlPlaneOnly: figures,
    durationSeconds: (Date.now() - started) / 1000,
  };
  const md = `commit ${result.commit}, ${result.date}\n\n${controlPlaneMarkdown(figures)}`;
  mkdirSync(RESULTS, { recursive: true });
  writeFileSync(
    join(RESULTS, `${stamp}-controlplane.json`),
    `${JSON.stringify(result, null, 2)}\n`,
  );
  writeFileSync(join(RESULTS, `${stamp}-controlplane.md`), `${md}\n`);
  process.stdout.write(`${md}\n`);
}

/** `--ha-only`: scenario 6 against replicas, in its own lab (no data path lab is built). */
async function onlyHa(stamp) {
  // --profile: the replicas' own CPU profiles (cp1 and cp2: cp3 is killed with SIGKILL).
  const profDir = PROFILE ? join(RESULTS, `${stamp}-ha-profile`) : undefined;
  if (profDir !== undefined) {
    mkdirSync(profDir, { recursive: true, mode: 0o777 });
    chmodSync(profDir, 0o777);
    process.env.WEFT_LAB_CPU_PROF_DIR = profDir;
  }
  const figures = await haScenario({
    agents: HA_AGENTS ?? PLAN.simAgents,
    changes: PLAN.simChanges,
    log,
  });
  if (profDir !== undefined) {
    const summary = readdirSync(profDir)
      .filter((f) => f.endsWith('.cpuprofile'))
      .map((f) => {
        const p = analyzeProfile(join(profDir, f), { top: 30 });
        const rows = (list) => list.map((t) => `| ${t.ms.toFixed(0)} | ${t.name} ${t.where} |`);
        return [
          `## ${f}: ${p.busyMs.toFixed(0)} ms busy of ${p.totalMs.toFixed(0)}`,
          '',
          '| self ms | function |',
          '|---|---|',
          ...rows(p.top),
          '',
          '| inclusive ms | weft function |',
          '|---|---|',
          ...rows(p.weft),
          '',
        ].join('\n');
      })
      .join('\n');
    writeFileSync(join(profDir, 'summary.md'), summary);
    log(`replica profiles: ${join(profDir, 'summary.md')}`);
  }
  const result = {
    date: new Date().toISOString(),
    commit: gitCommit(),
    mode: `ha-only${QUICK ? ', quick' : ''}`,
    machine: { cores: cpus().length, model: cpus()[0]?.model ?? 'unknown', node: process.version },
    controlPlaneHa: figures,
    durationSeconds: (Date.now() - started) / 1000,
  };
  const md = `commit ${result.commit}, ${result.date}\n\n${haMarkdown(figures)}`;
  mkdirSync(RESULTS, { recursive: true });
  writeFileSync(join(RESULTS, `${stamp}-ha.json`), `${JSON.stringify(result, null, 2)}\n`);
  writeFileSync(join(RESULTS, `${stamp}-ha.md`), `${md}\n`);
  process.stdout.write(`${md}\n`);
}

main().catch((err) => {
  console.error(`bench: ${err?.stack ?? err}`);
  process.exit(1);
});
