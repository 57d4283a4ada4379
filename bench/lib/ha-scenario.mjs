// Scenario 6 against replicas (`npm run bench -- --ha-only`): the HA lab's control plane alone
// (three etcd members in their own hosts, three `weft controlplane --store etcd` replicas in
// theirs) and sim-agents.mjs on host cp1 spreading its simulated agents over the three: join,
// initial sync, changes acked by every agent, then replica cp3 killed with SIGKILL and the time
// until every agent it had resumed on another replica; etcd's CPU and memory beside the
// replicas'.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MeshLab } from '../../dist/lab/index.js';

const SIM = fileURLToPath(new URL('../sim-agents.mjs', import.meta.url));

export async function haScenario({ agents, changes, log }) {
  // <lab>-<host> must fit an interface name: "bhxxxx-etcd1" is 12 characters.
  const name = `bh${Math.random()
    .toString(36)
    .slice(2, 6)
    .replace(/[^a-z0-9]/g, 'x')}`;
  log(`scenario 6 (HA): building lab ${name}: etcd1-3, cp1-3`);
  const mesh = await MeshLab.up({ name, ha: true, nodes: [] });
  try {
    const pidsOf = (process) =>
      mesh.lab
        .processes()
        .filter((p) => p.name === process)
        .sort((a, b) => a.host.localeCompare(b.host));
    const replicas = pidsOf('controlplane');
    const members = pidsOf('etcd');
    const servers = mesh.ha.replicaAddresses;
    const victim = replicas.find((r) => r.host === 'cp3');
    log(`scenario 6 (HA): ${agents} simulated agents over ${servers.join(', ')}`);
    const child = mesh.lab.spawn('cp1', [
      process.execPath,
      SIM,
      '--servers',
      servers.join(','),
      '--credentials',
      join(mesh.lab.dir, 'cp1', 'admin'),
      '--cp-pids',
      replicas.map((r) => r.pid).join(','),
      '--etcd-pids',
      members.map((m) => m.pid).join(','),
      '--agents',
      String(agents),
      '--services',
      String(agents),
      '--per-agent',
      '10',
      '--changes',
      String(changes),
      '--kill-pid',
      String(victim.pid),
      '--kill-server',
      servers[2],
    ]);
    child.stderr.on('data', (d) => process.stderr.write(d));
    // Read before teardown, whatever the simulator's outcome: a failed run says why.
    const logLines = (needle) =>
      replicas.map(
        (r) =>
          readFileSync(r.logFile, 'utf8')
            .split('\n')
            .filter((l) => l.includes(needle)).length,
      );
    const result = await new Promise((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (d) => {
        out += d;
        const line = out.split('\n').find((l) => l.startsWith('{'));
        if (line) resolve(JSON.parse(line));
      });
      child.once('exit', (code) =>
        reject(
          new Error(
            `sim-agents exited with ${code}; per replica, streams ended for a full snapshot not taken in time: ${logLines('did not take its full snapshot').join(' / ')}`,
          ),
        ),
      );
    });
    child.stdin.end();
    await new Promise((r) => child.once('exit', r));
    // How often a replica counted etcd unreachable (and sent its agents away) under the load.
    result.storeLostEvents = logLines('"the store is unreachable');
    result.snapshotHoldLimits = logLines('did not take its full snapshot');
    return result;
  } finally {
    log('tearing the HA lab down');
    await mesh.lab.down().catch((err) => log(`teardown: ${err.message}`));
  }
}

export function haMarkdown(r) {
  const ms = (x) => (x == null ? '-' : x.toFixed(0));
  const s = (x) => (x == null ? '-' : x.toFixed(1));
  const k = r.killed;
  return [
    `## 6 (HA). ${r.agents} simulated agents over ${r.replicas} control plane replicas on a ${r.etcd?.members ?? '?'}-member etcd`,
    '',
    '| measure | value |',
    '|---|---|',
    `| join (${r.services} services applied, ${r.agents} nodes joined, spread over the replicas) | ${s(r.joinSeconds)} s |`,
    `| initial sync (all streams at once), every agent acked | ${s(r.initialSync.seconds)} s |`,
    `| change acked by every agent (${r.changes.length} changes): p99, median / worst change | ${ms(r.p99Ms.median)} / ${ms(r.p99Ms.max)} ms |`,
    `| change acked by every agent: worst "all acked" | ${ms(r.allAckedMs.max)} ms |`,
    `| replica killed (SIGKILL): its agents | ${k?.agents ?? '-'} |`,
    `| ... resumed on another replica: first / p50 / p99 / all | ${ms(k?.resumedMs.min)} / ${ms(k?.resumedMs.p50)} / ${ms(k?.resumedMs.p99)} / ${ms(k?.resumedMs.max)} ms |`,
    `| ... then a change through a survivor, acked by every agent (p99 / all) | ${ms(k?.changeAfterKillMs.p99)} / ${ms(k?.changeAfterKillMs.max)} ms |`,
    '',
    '| | replicas (sum of 3) | etcd (sum of 3 members) |',
    '|---|---|---|',
    `| CPU during the initial sync | ${s(r.initialSync.cpuSeconds)} s | ${s(r.initialSync.etcdCpuSeconds)} s |`,
    `| CPU of the simulator (one process receiving every snapshot) during the initial sync | ${s(r.initialSync.simCpuSeconds)} s | |`,
    `| RSS peak during the initial sync | ${ms(r.initialSync.rssMiBPeak)} MiB | ${ms(r.initialSync.etcdRssMiBPeak)} MiB |`,
    `| CPU share during the changes | ${s(r.controlPlane.cpuShareDuringChanges * 100)} % | ${s((r.etcd?.cpuShareDuringChanges ?? 0) * 100)} % |`,
    `| RSS idle, all agents connected | ${ms(r.controlPlane.rssMiBIdleConnected)} MiB | ${ms(r.etcd?.rssMiBIdleConnected)} MiB |`,
    `| RSS after the changes, per process | ${r.controlPlane.perReplicaRssMiB.map(ms).join(' / ')} MiB | ${(r.etcd?.perMemberRssMiB ?? []).map(ms).join(' / ')} MiB |`,
    '',
    `Replicas that counted etcd unreachable under the load (times, per replica): ${(r.storeLostEvents ?? []).join(' / ')}; streams ended for a full snapshot not taken in time: ${(r.snapshotHoldLimits ?? []).join(' / ')}; simulated agents that moved before the kill: ${r.unplannedMoves ?? '-'}.`,
    '',
    `The simulator itself: ${ms(r.simulatorRssMiB)} MiB. Each simulated agent waits a delay drawn from 0-250 ms (the first backoff of a real agent) before it dials its next replica.`,
    '',
  ].join('\n');
}
