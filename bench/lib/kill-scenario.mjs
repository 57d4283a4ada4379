// Scenario 10: one of two endpoints of an HTTP service killed with kill -9 during a fixed-rate
// open-loop run, through weft (TrafficPolicy retries and outlier detection), the classic
// HAProxy setup (retries, redispatch, health checks) and direct (the client balances, nothing
// retries). Per setup: what the client saw (failures, latency before and after the kill), the
// retries its proxy made, and when the dead endpoint's host last got a request after the kill.
import { readFileSync, statSync } from 'node:fs';
import { connect } from 'node:net';
import { fileURLToPath } from 'node:url';
import { waitUntil } from '../../dist/lab/index.js';
import { CPU, PORTS } from './bench-lab.mjs';

const KILL_LOAD = fileURLToPath(new URL('../kill-load.mjs', import.meta.url));
/** The host whose app is killed; the other endpoint is the server host's. */
const VICTIM = 'server2';
export const KILL_SETUPS = ['weft', 'haproxy', 'direct'];

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const col = { sentAt: 0, ms: 1, status: 2, why: 3, by: 4 };

/** What each setup's client calls: weft the service's virtual IP, direct both endpoints. */
function urls(bench, setup) {
  if (setup === 'weft') return [`http://${bench.vips['bench-kill']}:${PORTS.kill}/`];
  if (setup === 'haproxy') return [`http://127.0.0.1:${PORTS.haKill}/`];
  return [bench.serverAddr, bench.server2Addr].map((a) => `http://${a}:${PORTS.plainKill}/`);
}

/** bench/kill-load.mjs on the client host's core, as the captured app user. */
async function load(bench, setup, { rate, warmS, seconds, startAt }) {
  const argv = ['taskset', '-c', CPU.client, process.execPath, KILL_LOAD];
  argv.push(String(startAt), String(rate), String(warmS), String(seconds));
  argv.push(...urls(bench, setup));
  const r = await bench.lab.exec('client', argv, {
    user: 'weftapp',
    timeoutMs: Math.max(0, startAt - Date.now()) + (warmS + seconds + 40) * 1000,
  });
  const line = r.stdout
    .trim()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .pop();
  if (!line) throw new Error(`kill-load printed no result: ${r.stdout} ${r.stderr}`);
  return JSON.parse(line);
}

/**
 * Unmeasured load at the run's rate until a whole second of it succeeds on both endpoints: the
 * restarted app is back in every balancer.
 */
async function ready(bench, setup, rate) {
  let last = 'none yet';
  await waitUntil(
    `both endpoints of scenario 10 through ${setup}`,
    async () => {
      const r = await load(bench, setup, {
        rate,
        warmS: 0,
        seconds: 1,
        startAt: Date.now() + 1000,
      });
      const failed = r.rows.filter((x) => x[col.status] !== 200).length;
      const by = new Set(r.rows.map((x) => x[col.by]));
      last = `${failed} failed, answered by ${[...by].join(', ')}`;
      return failed === 0 && by.has('server') && by.has(VICTIM);
    },
    120_000,
  ).catch((err) => {
    throw new Error(`${err.message} (last warm-up: ${last})`);
  });
}

/** weft_http_retries_total and _denied_total for bench-kill on the client agent, by reason. */
async function weftRetries(bench) {
  const r = await bench.lab.exec('client', ['curl', '-s', 'http://127.0.0.1:15020/metrics'], {
    allowFailure: true,
  });
  const out = { retries: {}, denied: {} };
  for (const line of r.stdout.split('\n')) {
    const m = /^weft_http_retries(_denied)?_total\{([^}]*)\} (\S+)$/.exec(line);
    if (!m?.[2].includes('dst_service="bench-kill"')) continue;
    const reason = /reason="([^"]*)"/.exec(m[2])?.[1] ?? '?';
    const into = m[1] ? out.denied : out.retries;
    into[reason] = (into[reason] ?? 0) + Number(m[3]);
  }
  return out;
}

/** The client-side HAProxy's retries and redispatches (`show stat`, backend kill_out). */
function haproxyRetries(bench) {
  return new Promise((resolve, reject) => {
    let text = '';
    const s = connect(bench.killStatsSocket, () => s.end('show stat\n'));
    s.on('data', (d) => {
      text += d;
    });
    s.on('error', reject);
    s.on('close', () => {
      const [head, ...rows] = text.replace(/^# /, '').trim().split('\n');
      const names = head.split(',');
      const row = rows
        .map((l) => Object.fromEntries(l.split(',').map((v, i) => [names[i], v])))
        .find((r) => r.pxname === 'kill_out' && r.svname === 'BACKEND');
      if (!row) return reject(new Error(`no kill_out backend in HAProxy's stats: ${text}`));
      resolve({ retries: Number(row.wretr), redispatches: Number(row.wredis) });
    });
  });
}

/**
 * When requests reached the victim's host after `since` (ms since the epoch): weft's agent
 * there logs one inbound request record per try it got (its app gone: answered
 * `weft-undelivered`), HAProxy one line per request (health checks of /health left out).
 */
function victimArrivals(setup, logFile, offset, since) {
  const text = readFileSync(logFile, 'utf8').slice(offset);
  const at = [];
  for (const line of text.split('\n')) {
    if (setup === 'weft') {
      if (!line.startsWith('{')) continue;
      let r;
      try {
        r = JSON.parse(line);
      } catch {
        continue;
      }
      if (r.msg !== 'request' || r.direction !== 'inbound' || r.dst_service !== 'bench-kill')
        continue;
      at.push(r.time - (r.duration_ms ?? 0));
    } else {
      const m = /^(\d+)\.(\d{3}) (\S+) (\d+)/.exec(line);
      if (m && m[3] !== '/health') at.push(Number(m[1]) * 1000 + Number(m[2]));
    }
  }
  return at.filter((t) => t >= since).sort((a, b) => a - b);
}

const pct = (sorted, p) =>
  sorted.length === 0
    ? null
    : sorted[Math.min(sorted.length, Math.ceil((p / 100) * sorted.length)) - 1];

/** Width of the timeline's windows (ms). */
const WINDOW_MS = 250;

/**
 * The run in windows of requests by when they were sent, relative to the kill: [start (ms),
 * requests, failed, p99 (ms), max (ms)]. Tells a stall the kill caused from one of the machine.
 */
function timeline(rows, killedAt) {
  const windows = new Map();
  for (const r of rows) {
    const w = Math.floor((r[col.sentAt] - killedAt) / WINDOW_MS) * WINDOW_MS;
    if (!windows.has(w)) windows.set(w, []);
    windows.get(w).push(r);
  }
  return [...windows.entries()]
    .sort(([a], [b]) => a - b)
    .map(([w, rs]) => {
      const ms = rs.map((r) => r[col.ms]).sort((a, b) => a - b);
      const failed = rs.filter((r) => r[col.status] !== 200).length;
      return [w, rs.length, failed, pct(ms, 99), ms.at(-1)];
    });
}

/** The client's view of one run: failures by kind, latency before and after the kill. */
function clientView(rows, killedAt) {
  const failures = {};
  for (const r of rows) {
    if (r[col.status] === 200) continue;
    const kind = `${r[col.status] || 'no answer'}${r[col.why] ? ` ${r[col.why]}` : ''}`;
    failures[kind] = (failures[kind] ?? 0) + 1;
  }
  const ms = (xs) => xs.map((r) => r[col.ms]).sort((a, b) => a - b);
  const before = ms(rows.filter((r) => r[col.sentAt] < killedAt));
  const after = ms(rows.filter((r) => r[col.sentAt] >= killedAt));
  const firstSecond = ms(
    rows.filter((r) => r[col.sentAt] >= killedAt && r[col.sentAt] < killedAt + 1000),
  );
  const all = ms(rows);
  const windows = timeline(rows, killedAt);
  const worst = (xs) => xs.reduce((a, w) => (a === undefined || w[4] > a[4] ? w : a), undefined);
  const slowBefore = worst(windows.filter((w) => w[0] < 0));
  const slowAfter = worst(windows.filter((w) => w[0] >= 0));
  return {
    timeline: windows,
    slowestWindowBefore: slowBefore && { atMs: slowBefore[0], maxMs: slowBefore[4] },
    slowestWindowAfter: slowAfter && { atMs: slowAfter[0], maxMs: slowAfter[4] },
    sent: rows.length,
    failed: rows.filter((r) => r[col.status] !== 200).length,
    failedAfterKill: rows.filter((r) => r[col.status] !== 200 && r[col.sentAt] >= killedAt).length,
    failures,
    p50Before: pct(before, 50),
    p99Before: pct(before, 99),
    p50After: pct(after, 50),
    p99After: pct(after, 99),
    p99FirstSecond: pct(firstSecond, 99),
    maxAfter: after.at(-1) ?? null,
    p99: pct(all, 99),
  };
}

/** One setup's run: load at `rate` for `seconds`, the victim's app killed at `killAtS`. */
async function killRun(bench, setup, { rate, seconds, killAtS, warmS, log }) {
  await ready(bench, setup, rate);
  const victimLog =
    setup === 'direct'
      ? undefined
      : bench.logFile(VICTIM, setup === 'weft' ? 'agent' : 'haproxy-kill');
  const offset = victimLog ? statSync(victimLog).size : 0;
  const retriesBefore =
    setup === 'weft'
      ? await weftRetries(bench)
      : setup === 'haproxy'
        ? await haproxyRetries(bench)
        : undefined;
  // The client starts at a wall-clock time, so the kill lands at a known moment of its run:
  // `killAtS` into the measured part, after its own warm-up.
  const startAt = Date.now() + 3_000;
  const running = load(bench, setup, { rate, warmS, seconds, startAt });
  running.catch(() => {});
  await sleep(startAt + (warmS + killAtS) * 1000 - Date.now());
  const pid = bench.pid(VICTIM, 'kill', 'node');
  const killedAt = Date.now();
  process.kill(pid, 'SIGKILL');
  log(`scenario 10, ${setup}: killed ${VICTIM}'s app (pid ${pid}) at +${killAtS} s`);
  let out;
  try {
    out = await running;
  } finally {
    // Back for the next setup whatever happened (the load is over: nothing reaches it now).
    await bench.restartKillApp(VICTIM);
  }
  await sleep(1_000); // weft's access log is flushed within about 200 ms
  const view = clientView(out.rows, killedAt);
  let retries;
  if (setup === 'weft') {
    const after = await weftRetries(bench);
    const delta = (a, b) =>
      Object.fromEntries(Object.entries(a).map(([k, v]) => [k, v - (b[k] ?? 0)]));
    retries = {
      total: Object.values(delta(after.retries, retriesBefore.retries)).reduce((a, b) => a + b, 0),
      byReason: delta(after.retries, retriesBefore.retries),
      denied: delta(after.denied, retriesBefore.denied),
    };
  } else if (setup === 'haproxy') {
    const after = await haproxyRetries(bench);
    retries = {
      total: after.retries - retriesBefore.retries,
      redispatches: after.redispatches - retriesBefore.redispatches,
    };
  }
  // When the dead endpoint last got a request: its host's log (weft, haproxy); direct's client
  // keeps sending to it to the end.
  const arrivals = victimLog
    ? victimArrivals(setup, victimLog, offset, killedAt)
    : out.rows.filter((r, i) => i % 2 === 1 && r[col.sentAt] >= killedAt).map((r) => r[col.sentAt]);
  return {
    ...view,
    lateStartMs: out.started - startAt - warmS * 1000,
    killAtMs: killedAt - out.started,
    retries,
    victimRequestsAfterKill: arrivals.length,
    lastVictimRequestMs: arrivals.length ? arrivals.at(-1) - killedAt : null,
    avoided: setup !== 'direct',
  };
}

/** Scenario 10 for every setup, once, in the order of KILL_SETUPS. */
export async function killScenario(bench, { rate, seconds, killAtS, warmS, appMs, log }) {
  const out = { rate, seconds, killAtS, appMs, victim: VICTIM, setups: {} };
  for (const setup of KILL_SETUPS) {
    log(`scenario 10: ${rate}/s for ${seconds} s through ${setup}, kill -9 at ${killAtS} s`);
    out.setups[setup] = await killRun(bench, setup, { rate, seconds, killAtS, warmS, log });
  }
  return out;
}
