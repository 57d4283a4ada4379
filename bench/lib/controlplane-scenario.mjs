// Scenario 6 alone against one file-store control plane (`npm run bench -- --controlplane-only`):
// a lab with the control plane's host only, and sim-agents.mjs in it, repeated on a fresh data
// directory each time. With `--cp-compare DIR` the control plane of another checkout (an old
// build: its bin/weft) runs in turn with this one, interleaved (new, old, then old, new, ...),
// so that CPU figures taken on a shared machine compare like with like; `--plain-agents` adds
// runs whose simulated agents do not announce compressed snapshots (an agent of the previous
// release on this control plane).
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CONTROL_PLANE_NODE_FLAGS } from '../../dist/controlplane/node-flags.js';
import { MeshLab, WEFT_BIN } from '../../dist/lab/index.js';
import { summarize } from './stats.mjs';

const SIM = fileURLToPath(new URL('../sim-agents.mjs', import.meta.url));

/**
 * variants: [{ label, bin, simArgs }]; each repetition runs every variant once, in an order
 * that alternates between repetitions.
 */
export async function controlPlaneScenario({
  agents,
  changes,
  repetitions,
  variants,
  nodeFlags = '',
  env = {},
  log,
}) {
  const name = `bc${Math.random()
    .toString(36)
    .slice(2, 6)
    .replace(/[^a-z0-9]/g, 'x')}`;
  log(`scenario 6 (control plane only): lab ${name}`);
  const mesh = await MeshLab.up({ name, nodes: [] });
  const runs = [];
  try {
    for (let rep = 0; rep < repetitions; rep++) {
      const order = rep % 2 === 0 ? variants : [...variants].reverse();
      for (const variant of order) {
        log(`scenario 6: repetition ${rep + 1}/${repetitions}, ${variant.label}`);
        const pid = await restartControlPlane(mesh, variant.bin, nodeFlags, env);
        const result = await simulate(mesh, pid, { agents, changes, simArgs: variant.simArgs });
        runs.push({ label: variant.label, repetition: rep, result });
        log(
          `  initial sync ${result.initialSync.seconds.toFixed(1)} s, control plane CPU ${result.initialSync.cpuSeconds.toFixed(1)} s, RSS peak ${result.initialSync.rssMiBPeak.toFixed(0)} MiB, simulator CPU ${result.initialSync.simCpuSeconds.toFixed(1)} s`,
        );
      }
    }
    await mesh.lab.stopProcess('cp', 'controlplane');
  } finally {
    await mesh.lab.down().catch(() => undefined);
  }
  return { agents, changes, repetitions, variants, runs };
}

function nodeOptions(extra) {
  const prof = process.env.WEFT_LAB_CPU_PROF_DIR;
  return [prof ? `--cpu-prof --cpu-prof-dir=${prof}` : '', extra].filter(Boolean).join(' ');
}

/** A fresh data directory and a control plane from `bin` (a checkout's bin/weft) on it. */
async function restartControlPlane(mesh, bin = WEFT_BIN, nodeFlags = '', env = {}) {
  const { lab } = mesh;
  await lab.stopProcess('cp', 'controlplane');
  const dir = join(lab.dir, 'cp');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const started = await lab.startProcess('cp', {
    name: 'controlplane',
    // This checkout's control plane with its V8 flags, as its systemd unit starts it; another
    // checkout's (--cp-compare) as that one's lab did before the flags (none).
    command: [
      process.execPath,
      ...(bin === WEFT_BIN ? CONTROL_PLANE_NODE_FLAGS : []),
      bin,
      'controlplane',
      '--data-dir',
      dir,
    ],
    // --profile: each run's control plane writes its V8 CPU profile when it stops;
    // --cp-node-options: Node flags for it (e.g. --import=bench/lib/heap-hook.mjs).
    // --cp-env: more of its environment (e.g. glibc's MALLOC_ARENA_MAX=2).
    env: {
      ...(nodeOptions(nodeFlags).length > 0 ? { NODE_OPTIONS: nodeOptions(nodeFlags) } : {}),
      ...env,
    },
  });
  const deadline = Date.now() + 60_000;
  for (;;) {
    const r = await mesh.weft('cp', ['get', 'services', ...mesh.adminArgs], {
      allowFailure: true,
    });
    if (r.exitCode === 0) return started.pid;
    if (Date.now() > deadline) throw new Error(`the control plane (${bin}) never answered`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function simulate(mesh, cpPid, { agents, changes, simArgs = [] }) {
  const child = mesh.lab.spawn('cp', [
    process.execPath,
    SIM,
    '--server',
    '127.0.0.1:15012',
    '--credentials',
    join(mesh.lab.dir, 'cp', 'admin'),
    '--cp-pid',
    String(cpPid),
    '--agents',
    String(agents),
    '--services',
    String(agents),
    '--per-agent',
    '10',
    '--changes',
    String(changes),
    ...simArgs,
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
  // With every agent connected: the control plane's V8 heap, if it runs bench/lib/heap-hook.mjs
  // (it writes every 2 s).
  await new Promise((r) => setTimeout(r, 2_500));
  try {
    result.controlPlane.heap = JSON.parse(readFileSync(`/tmp/weft-heap/${cpPid}.json`, 'utf8'));
  } catch {}
  if (process.env.WEFT_BENCH_SMAPS) writeSmaps(cpPid, process.env.WEFT_BENCH_SMAPS);
  child.stdin.end();
  await new Promise((r) => child.once('exit', r));
  return result;
}

export function controlPlaneMarkdown(f) {
  const cell = (xs, digits) => {
    const s = summarize(xs);
    if (s === null) return '-';
    return `${s.median.toFixed(digits)} [${s.min.toFixed(digits)}-${s.max.toFixed(digits)}]`;
  };
  const labels = f.variants.map((v) => v.label);
  const of = (label) => f.runs.filter((r) => r.label === label).map((r) => r.result);
  const row = (title, pick, digits) =>
    `| ${title} | ${labels.map((l) => cell(of(l).map(pick), digits)).join(' | ')} |`;
  return [
    `## 6. Control plane at fleet size, alone: ${f.agents} simulated agents, ${f.agents} services, ${f.agents * 10} endpoints; ${f.repetitions} repetitions, variants interleaved`,
    '',
    `| figure (median [min-max]) | ${labels.join(' | ')} |`,
    `|---|${labels.map(() => '---').join('|')}|`,
    row('initial sync, every agent acked its full snapshot (s)', (r) => r.initialSync.seconds, 1),
    row('control plane CPU during it (s)', (r) => r.initialSync.cpuSeconds, 1),
    row('control plane RSS as the streams open (MiB)', (r) => r.initialSync.rssMiBAtOpen, 0),
    row('control plane RSS peak during it (MiB)', (r) => r.initialSync.rssMiBPeak, 0),
    row('simulator CPU during it (s)', (r) => r.initialSync.simCpuSeconds, 1),
    row('control plane RSS, connected idle (MiB)', (r) => r.controlPlane.rssMiBIdleConnected, 0),
    ...(f.runs.some((r) => r.result.controlPlane.heap)
      ? [
          row(
            'control plane V8 heap used, connected idle (MiB)',
            (r) => r.controlPlane.heap && r.controlPlane.heap.heapUsed / 1048576,
            0,
          ),
          row(
            'control plane V8 heap total, connected idle (MiB)',
            (r) => r.controlPlane.heap && r.controlPlane.heap.heapTotal / 1048576,
            0,
          ),
          row(
            'control plane external + array buffers, connected idle (MiB)',
            (r) =>
              r.controlPlane.heap &&
              (r.controlPlane.heap.external + r.controlPlane.heap.arrayBuffers) / 1048576,
            0,
          ),
        ]
      : []),
    ...(f.changes > 0
      ? [
          row(
            'change until every agent acked, median over changes (ms)',
            (r) => r.allAckedMs?.median,
            1,
          ),
        ]
      : []),
    '',
  ].join('\n');
}

/** Debugging aid: the control plane's largest mappings by RSS, with every agent connected. */
function writeSmaps(pid, file) {
  const text = readFileSync(`/proc/${pid}/smaps`, 'utf8');
  const maps = [];
  let cur;
  for (const line of text.split('\n')) {
    if (/^[0-9a-f]+-[0-9a-f]+ /.test(line)) {
      cur = { head: line, rss: 0 };
      maps.push(cur);
    } else if (line.startsWith('Rss:') && cur) cur.rss = Number(line.split(/\s+/)[1]);
  }
  maps.sort((a, b) => b.rss - a.rss);
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  writeFileSync(
    file,
    `${status}\n${maps
      .slice(0, 40)
      .map((m) => `${m.rss} kB ${m.head}`)
      .join('\n')}\n`,
  );
}
