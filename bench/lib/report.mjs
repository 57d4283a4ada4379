// The run's figures as markdown tables (L4, L7): median [min-max] per setup, and weft's ratios.
import { ratio } from './stats.mjs';

const fmt = (v, digits) => (v == null ? '-' : v.toFixed(digits));
const cell = (s, d) =>
  s == null
    ? '-'
    : s.n > 1
      ? `${fmt(s.median, d)} [${fmt(s.min, d)}-${fmt(s.max, d)}]`
      : fmt(s.median, d);

export function markdown(result) {
  const lines = [];
  const m = result.machine;
  lines.push(`# weft benchmark, ${result.date}`);
  lines.push('');
  lines.push(
    `commit ${result.commit}; ${m.cores} cores, ${m.model}; Node ${m.node}; kernel ${m.kernel}; ${result.mode} run, ${result.repetitions} repetition(s) per figure (median [min-max]).`,
  );
  lines.push(`Placement: ${result.placement}`);
  lines.push('');
  for (const table of result.tables) {
    const w = table.weftLabel;
    const short = w === 'weft' ? 'weft' : w.replace(/^weft /, '');
    lines.push(`## ${table.title}`);
    lines.push('');
    // `bare Node`: bench/bare-relay.mjs, weft's design in bare Node, with none of weft's code
    // (runs before it have no such column).
    lines.push(
      `| figure | direct | haproxy | bare Node | ${w} | ${short}/direct | ${short}/haproxy | ${short}/bare |`,
    );
    lines.push('|---|---|---|---|---|---|---|---|');
    for (const row of table.rows) {
      const s = row.setups;
      const r = (of) => (row.noRatio ? null : ratio(s.weft?.median, of?.median));
      lines.push(
        `| ${row.label} | ${cell(s.direct, row.digits)} | ${cell(s.haproxy, row.digits)} | ${cell(s.bare, row.digits)} | ${cell(s.weft, row.digits)} | ${fmt(r(s.direct), 2)} | ${fmt(r(s.haproxy), 2)} | ${fmt(r(s.bare), 2)} |`,
      );
    }
    lines.push('');
    const c = result.httpCounted;
    if (table.id === 'l7' && c) {
      const l7 = c.bench > 0 && c['bench-grpc'] > 0;
      lines.push(
        `Requests the client agent counted in weft_http_requests_total (outbound): bench ${c.bench}, bench-grpc ${c['bench-grpc']}, bench-tcp ${c['bench-tcp']}. ${l7 ? "The L7 column went through weft's HTTP path" : "The L7 column did NOT go (all) through weft's HTTP path: it measured the opaque one"}; ${c['bench-tcp'] === 0 ? 'the L4 table stayed opaque.' : 'the L4 table did NOT stay opaque.'}`,
      );
      lines.push('');
    }
  }
  if (result.memory) {
    // RSS counts the node binary's pages once per process (master and each worker); PSS
    // splits the shared ones among them, so the PSS sum is what the agent holds. (Results
    // before PSS was measured hold one RSS list.)
    lines.push('| agent memory, master + workers (MiB, client / server host) | RSS | PSS |');
    lines.push('|---|---|---|');
    const pair = (v) => (v ? v.map((x) => x.toFixed(1)).join(' / ') : '-');
    // The bare Node relay's rows (weft's design with none of its code) after the agent's.
    const rows = Object.entries(result.memory);
    const bare = ([k]) => k.startsWith('bare Node');
    for (const [k, v] of [...rows.filter((r) => !bare(r)), ...rows.filter(bare)])
      lines.push(`| ${k} | ${pair(Array.isArray(v) ? v : v.rss)} | ${pair(v.pss)} |`);
  }
  const cp = result.controlPlane;
  if (cp) {
    lines.push('');
    lines.push(
      `Control plane: ${cp.agents} simulated agents (one process, one gRPC stream and node certificate each), ${cp.services} services, ${cp.endpoints} endpoints; ${cp.changes.length} changes (apply / a workload gone, alternating).`,
    );
    lines.push('');
    lines.push('| figure | value |');
    lines.push('|---|---|');
    lines.push(
      `| join ${cp.agents} nodes (token + CSR + Join each) | ${cp.joinSeconds.toFixed(1)} s |`,
    );
    lines.push(
      `| initial sync: full snapshot to every agent, streams opened ${cp.initialSync.wave >= cp.agents ? 'all at once' : `in waves of ${cp.initialSync.wave}`} | ${cp.initialSync.seconds.toFixed(1)} s, control plane CPU ${cp.initialSync.cpuSeconds.toFixed(1)} s, RSS peak ${cp.initialSync.rssMiBPeak.toFixed(0)} MiB |`,
    );
    lines.push(`| change until acked, p50 over agents (ms) | ${cell(cp.p50Ms, 1)} |`);
    lines.push(`| change until acked, p99 over agents (ms) | ${cell(cp.p99Ms, 1)} |`);
    lines.push(`| change until every agent acked (ms) | ${cell(cp.allAckedMs, 1)} |`);
    lines.push(
      `| control plane RSS, connected idle / peak (MiB) | ${cp.controlPlane.rssMiBIdleConnected.toFixed(0)} / ${cp.controlPlane.rssMiBPeak.toFixed(0)} |`,
    );
    lines.push(
      `| control plane CPU during the changes | ${cp.controlPlane.cpuSecondsDuringChanges.toFixed(2)} s (${(cp.controlPlane.cpuShareDuringChanges * 100).toFixed(0)} % of a core) |`,
    );
  }
  for (const f of result.failures ?? []) lines.push('', `FAILED: ${f}`);
  lines.push('');
  lines.push(`Duration of this run: ${(result.durationSeconds / 60).toFixed(1)} min.`);
  return `${lines.join('\n')}\n`;
}

/** Scenario 10: an endpoint killed during a fixed-rate run, per setup. */
export function killMarkdown(k) {
  const setups = Object.keys(k.setups);
  const v = (fn) => setups.map((s) => fn(k.setups[s]) ?? '-').join(' | ');
  const ms = (x, d = 1) => (x == null ? null : x.toFixed(d));
  const kinds = (r) =>
    Object.entries(r.failures)
      .map(([kind, n]) => `${n} x ${kind}`)
      .join(', ') || 'none';
  const retries = (r) => {
    if (!r.retries) return 'none (no proxy)';
    const detail = r.retries.byReason
      ? Object.entries(r.retries.byReason)
          .filter(([, n]) => n > 0)
          .map(([why, n]) => `${why} ${n}`)
          .join(', ')
      : `${r.retries.redispatches} redispatched`;
    const denied = Object.entries(r.retries.denied ?? {})
      .filter(([, n]) => n > 0)
      .map(([why, n]) => `; denied: ${why} ${n}`)
      .join('');
    return `${r.retries.total}${detail ? ` (${detail}${denied})` : denied}`;
  };
  const rows = [
    ['requests sent', (r) => r.sent],
    ['the kill landed at (ms into the measured run)', (r) => ms(r.killAtMs, 0)],
    ['failed (not 200), as the client saw them', (r) => r.failed],
    ['of which sent after the kill', (r) => r.failedAfterKill],
    ['failures by kind', kinds],
    ['retries by the proxy', retries],
    [
      "kill -> last request reaching the dead endpoint's host (ms)",
      (r) => (r.avoided ? (ms(r.lastVictimRequestMs) ?? 'none after the kill') : 'never avoided'),
    ],
    ["requests reaching the dead endpoint's host after the kill", (r) => r.victimRequestsAfterKill],
    ['p50 / p99 before the kill (ms)', (r) => `${ms(r.p50Before, 2)} / ${ms(r.p99Before, 2)}`],
    ['p50 / p99 after the kill (ms)', (r) => `${ms(r.p50After, 2)} / ${ms(r.p99After, 2)}`],
    ['p99 of the requests sent in the second after the kill (ms)', (r) => ms(r.p99FirstSecond, 2)],
    ['max after the kill (ms)', (r) => ms(r.maxAfter)],
    [
      'slowest 250 ms window (by when sent) before / after the kill: its max (ms) @ its start (ms from the kill)',
      (r) =>
        [r.slowestWindowBefore, r.slowestWindowAfter]
          .map((w) => (w ? `${ms(w.maxMs)} @ ${w.atMs}` : '-'))
          .join(' / '),
    ],
    ['p99 of the whole run (ms)', (r) => ms(r.p99, 2)],
  ];
  return [
    `## 10. An endpoint killed: ${k.rate} GETs/s for ${k.seconds} s over two endpoints${k.appMs ? ` (the app takes ${k.appMs} ms per request)` : ''}, ${k.victim}'s app killed with kill -9 at ${k.killAtS} s`,
    '',
    `| figure | ${setups.join(' | ')} |`,
    `|---|${setups.map(() => '---').join('|')}|`,
    ...rows.map(([label, fn]) => `| ${label} | ${v(fn)} |`),
    '',
  ].join('\n');
}

/** Scenario 11: the L7 maximum rate with and without the policy stages. */
export function policyCostMarkdown(p) {
  const s = p.summary;
  const row = (label, key, d, scale = 1) => {
    const c = (x) =>
      x == null
        ? '-'
        : cell(
            {
              median: x.median * scale,
              min: x.min * scale,
              max: x.max * scale,
              n: x.n,
            },
            d,
          );
    const [base, other] = p.setups ?? ['weft-vip', 'weft-policy'];
    return `| ${label} | ${c(s[base][key])} | ${c(s[other][key])} |`;
  };
  return [
    p.tap
      ? `## 11 (--tap). An open tap's cost: weft L7 max rate (wrk, 64 connections, ${p.seconds} s) through a virtual IP, ${p.reps} repetition(s), median [min-max]`
      : `## 11. The policy stages' cost: weft L7 max rate (wrk, 64 connections, ${p.seconds} s) through a virtual IP, ${p.reps} repetition(s), median [min-max]`,
    '',
    p.tap
      ? '| figure | no tap | `weft tap --local` on both agents (100 records/s) |'
      : '| figure | without (`bench`) | TrafficPolicy + HTTPRoute (`bench-policy`) |',
    '|---|---|---|',
    row('max rate (req/s)', 'rps', 0),
    row('latency p99 (ms)', 'p99', 2),
    row('client agent CPU µs per request', 'clientCpu', 1, 1000),
    row('server agent CPU µs per request', 'serverCpu', 1, 1000),
    row('both agents CPU µs per request', 'bothCpu', 1, 1000),
    row('errors', 'errors', 0),
    '',
    p.tap
      ? `With / without a tap, paired per repetition: rate ${cell(p.ratio, 3)}, both agents' CPU per request ${cell(p.cpuRatio, 3)}.`
      : `With / without, paired per repetition: rate ${cell(p.ratio, 3)} (aim: at least 0.90), both agents' CPU per request ${cell(p.cpuRatio, 3)}. Requests the client agent counted under route \`bench-policy\`: ${p.routedRequests}.`,
    '',
  ].join('\n');
}
