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
    lines.push(`| figure | direct | haproxy | ${w} | ${short}/direct | ${short}/haproxy |`);
    lines.push('|---|---|---|---|---|---|');
    for (const row of table.rows) {
      const s = row.setups;
      const wd = row.noRatio ? null : ratio(s.weft?.median, s.direct?.median);
      const wh = row.noRatio ? null : ratio(s.weft?.median, s.haproxy?.median);
      lines.push(
        `| ${row.label} | ${cell(s.direct, row.digits)} | ${cell(s.haproxy, row.digits)} | ${cell(s.weft, row.digits)} | ${fmt(wd, 2)} | ${fmt(wh, 2)} |`,
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
    lines.push('| agent RSS (MiB, client / server host) | value |');
    lines.push('|---|---|');
    for (const [k, v] of Object.entries(result.memory))
      lines.push(`| ${k} | ${v.map((x) => x.toFixed(1)).join(' / ')} |`);
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
