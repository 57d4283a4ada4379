// Scenario 11: what the policy stages cost the common path. Scenario 2's method (wrk, 64
// connections, keep-alive, maximum rate) on weft's http port through a service's virtual IP:
// `bench` without a policy or route, `bench-policy` with a TrafficPolicy (timeouts, retries,
// breaker, outlier detection, a rate limit far above the rate) and an HTTPRoute (two rules, a
// header modifier), alternated within every repetition, the order rotating. Both agents' CPU
// per request is taken from /proc. With `--tap`, the second setup is instead `bench` with a
// `weft tap --local` attached to both agents (no filter, the default 100 records/s): what an
// open tap costs the request path.

import { once } from 'node:events';
import { join } from 'node:path';
import { WEFT_BIN } from '../../dist/lab/index.js';
import { cpuSeconds } from './proc.mjs';
import { summarize } from './stats.mjs';

export const POLICY_SETUPS = ['weft-vip', 'weft-policy'];
export const TAP_SETUPS = ['weft-vip', 'weft-vip-tapped'];

/** `weft tap --local` on both agents, output discarded; returns a function that ends them. */
function attachTaps(bench) {
  const taps = ['client', 'server'].map((host) =>
    bench.lab.spawn(host, [
      process.execPath,
      WEFT_BIN,
      'tap',
      '--local',
      '--socket',
      join(bench.lab.dir, host, 'tap', 'tap.sock'),
      '-o',
      'json',
    ]),
  );
  for (const t of taps) t.stdout?.resume();
  return async () => {
    for (const t of taps) t.kill('SIGTERM');
    await Promise.all(taps.map((t) => (t.exitCode === null ? once(t, 'close') : undefined)));
  };
}

/**
 * Requests the client agent counted outbound for bench-policy under its route's name: proof
 * that the route stage matched them (a request no rule matches counts under "default").
 */
async function routed(bench) {
  const r = await bench.lab.exec('client', ['curl', '-s', 'http://127.0.0.1:15020/metrics'], {
    allowFailure: true,
  });
  let n = 0;
  for (const line of r.stdout.split('\n')) {
    const m = /^weft_http_requests_total\{([^}]*)\} (\S+)$/.exec(line);
    if (!m) continue;
    const l = m[1];
    if (l.includes('direction="outbound"') && l.includes('dst_service="bench-policy"'))
      if (l.includes('route="bench-policy"')) n += Number(m[2]);
  }
  return n;
}

export async function policyCostScenario(bench, { reps, seconds, warmS, log, tap = false }) {
  const setups = tap ? TAP_SETUPS : POLICY_SETUPS;
  const [base, other] = setups;
  const raw = Object.fromEntries(
    setups.map((s) => [
      s,
      { rps: [], p99: [], errors: [], clientCpu: [], serverCpu: [], bothCpu: [] },
    ]),
  );
  const routedBefore = await routed(bench);
  for (let rep = 0; rep < reps; rep++) {
    const order = rep % 2 === 0 ? setups : [...setups].reverse();
    for (const setup of order) {
      log(`scenario 11, repetition ${rep + 1}/${reps}: ${setup}`);
      const target = setup === 'weft-vip-tapped' ? 'weft-vip' : setup;
      const detach = setup === 'weft-vip-tapped' ? attachTaps(bench) : undefined;
      await bench.wrk(target, { connections: 16, seconds: warmS });
      const p = bench.pids;
      const c0 = cpuSeconds(p.clientAgent);
      const s0 = cpuSeconds(p.serverAgent);
      const r = await bench.wrk(target, { connections: 64, seconds });
      await detach?.();
      const perK = r.requests / 1000;
      const into = raw[setup];
      into.rps.push(r.rps);
      into.p99.push(r.p99 / 1000);
      into.errors.push(r.errors + r.status);
      into.clientCpu.push((cpuSeconds(p.clientAgent) - c0) / perK);
      into.serverCpu.push((cpuSeconds(p.serverAgent) - s0) / perK);
      into.bothCpu.push(into.clientCpu.at(-1) + into.serverCpu.at(-1));
    }
  }
  const routedRequests = (await routed(bench)) - routedBefore;
  const sum = Object.fromEntries(
    Object.entries(raw).map(([setup, v]) => [
      setup,
      Object.fromEntries(Object.entries(v).map(([k, xs]) => [k, summarize(xs)])),
    ]),
  );
  // Paired within each repetition, so that the machine's drift cancels out. CPU per request
  // moves less with other work on the machine than a rate does.
  const paired = (key) => raw[other][key].map((v, i) => v / raw[base][key][i]);
  return {
    tap,
    setups,
    reps,
    seconds,
    raw,
    summary: sum,
    ratio: summarize(paired('rps')),
    cpuRatio: summarize(paired('bothCpu')),
    routedRequests,
  };
}
