// `weft lab`: bring a multi-host lab up and down, see what runs in it, run commands in its
// hosts. A thin shell over src/lab; everything here needs root.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { constants } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { WeftError } from '../../errors.js';
import {
  type DownReport,
  defaultLabSpec,
  Lab,
  type LabSpec,
  type LabStatus,
  parseLabSpec,
  upDemo,
} from '../../lab/index.js';
import { listNetns } from '../../lab/netns.js';
import { requireRoot } from '../../sys/run.js';

const DEFAULT_LAB = 'demo';

async function readSpec(file: string | undefined): Promise<LabSpec> {
  if (!file) return defaultLabSpec();
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new WeftError('WEFT_E_CONFIG', `cannot read ${file}: ${(err as Error).message}`);
  }
  return parseLabSpec(text, file);
}

async function labName(name: string | undefined, file: string | undefined): Promise<string> {
  if (name) return name;
  return file ? (await readSpec(file)).name : DEFAULT_LAB;
}

/** Columns padded to their widest cell. */
function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows
    .map((r) =>
      r
        .map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

function processTable(processes: LabStatus['processes']): string {
  return table([
    ['HOST', 'PROCESS', 'PID', 'USER', 'STATE', 'LOG'],
    ...processes.map((p) => [
      p.host,
      p.name,
      String(p.pid),
      p.user,
      p.running ? 'running' : 'dead',
      p.logFile,
    ]),
  ]);
}

function hostTable(status: LabStatus, withState: boolean): string {
  return table([
    ['HOST', 'NAMESPACE', 'ADDRESS', 'ADDRESS6', ...(withState ? ['STATE'] : [])],
    ...status.hosts.map((h) => [
      h.name,
      h.netns,
      h.address,
      h.address6,
      ...(withState ? [h.present ? 'up' : 'missing'] : []),
    ]),
  ]);
}

function summary(s: LabStatus): string {
  return `subnet ${s.subnet} and ${s.subnet6}, gateway ${s.gateway} and ${s.gateway6}`;
}

async function up(opts: { file?: string; ha?: boolean }): Promise<void> {
  if (opts.file !== undefined && opts.ha === true)
    throw new WeftError(
      'WEFT_E_USAGE',
      '--ha builds the demo lab with three etcd members and three control plane replicas; a spec (-f) lists its own hosts: use one or the other',
    );
  requireRoot('weft lab up');
  const lab = opts.file ? await Lab.up(await readSpec(opts.file)) : await upDemo({ ha: opts.ha });
  const status = await lab.status();
  const labFlag = lab.name === DEFAULT_LAB ? '' : ` --lab ${lab.name}`;
  const downArg = lab.name === DEFAULT_LAB ? '' : ` ${lab.name}`;
  const first = lab.hosts()[0]!.name;
  const lines = [
    `lab ${lab.name} is up: ${status.hosts.length} hosts, ${summary(status)}`,
    '',
    hostTable(status, false),
  ];
  if (status.processes.length > 0) lines.push('', processTable(status.processes));
  if (opts.file === undefined) {
    const cp = opts.ha === true ? 'cp1' : 'cp';
    const log = (host: string, name: string) =>
      status.processes.find((p) => p.host === host && p.name === name)?.logFile ?? '?';
    lines.push(
      '',
      opts.ha === true
        ? 'etcd1-3 run a three-member etcd cluster; cp1-3 run control plane replicas on it;\nnode1-3 joined them (each knows the three), capture their traffic and run agents.'
        : 'cp runs the control plane; node1-3 joined it, capture their traffic and run agents.',
      'node2 and node3 serve echo (http), node3 also banner (opaque tcp); node1 calls echo.',
      'try:',
      '  bin/weft lab exec node1 -- curl -s http://echo.mesh/   (again: node2 and node3 answer)',
      '  bin/weft lab exec node1 -- nc -N banner.mesh 7000 </dev/null',
      '  bin/weft lab exec node1 -- bin/weft status',
      '  bin/weft lab exec node1 -- curl -s http://127.0.0.1:15020/metrics',
      `  bin/weft lab exec ${cp} -- bin/weft top --credentials ${join(lab.dir, cp, 'admin')}`,
      `  tail -f ${log('node1', 'agent')}    (one JSON line per connection)`,
      `  tail -f ${log('node1', 'client')}`,
    );
    if (opts.ha === true)
      lines.push(
        '  bin/weft lab exec etcd1 -- etcdctl member list -w table',
        `  kill -9 the replica node1 is on (\`weft status\` names it; pids above), watch ${log('node1', 'agent')}`,
      );
  }
  lines.push(
    '',
    `run a command in a host:  bin/weft lab exec${labFlag} ${first} -- sh`,
    `see it:                   bin/weft lab status${downArg}`,
    `tear it down:             bin/weft lab down${downArg}`,
  );
  console.log(lines.join('\n'));
}

function describeDown(report: DownReport): string {
  if (!report.wasUp) return `lab ${report.name} is not up; nothing to remove`;
  const parts = [`${report.namespaces.length} namespaces`];
  if (report.stopped.length > 0) parts.push(`stopped ${report.stopped.length} processes`);
  return `lab ${report.name} is down: removed ${parts.join(', ')}`;
}

async function down(name: string | undefined, opts: { file?: string }): Promise<void> {
  requireRoot('weft lab down');
  const report = await Lab.teardown(await labName(name, opts.file));
  console.log(describeDown(report));
}

async function attach(name: string): Promise<Lab> {
  try {
    return await Lab.attach(name);
  } catch (err) {
    const leftovers = await listNetns(`${name}-`);
    if (leftovers.length === 0) throw err;
    throw new WeftError(
      'WEFT_E_NOT_FOUND',
      `lab ${name} has no state but its namespaces remain (${leftovers.join(', ')}); remove them with \`weft lab down ${name}\``,
    );
  }
}

async function status(name: string | undefined, opts: { file?: string; json?: boolean }) {
  requireRoot('weft lab status');
  const s = await (await attach(await labName(name, opts.file))).status();
  if (opts.json) {
    console.log(JSON.stringify(s, null, 2));
    return;
  }
  const lines = [
    `lab ${s.name}: ${s.up ? 'up' : 'broken (namespaces missing)'}, ${summary(s)}`,
    '',
    hostTable(s, true),
  ];
  lines.push('', s.processes.length > 0 ? processTable(s.processes) : 'no processes started');
  console.log(lines.join('\n'));
}

async function exec(host: string, argv: string[], opts: { lab: string; user?: string }) {
  requireRoot('weft lab exec');
  const lab = await attach(opts.lab);
  // With passThroughOptions commander hands over the `--` that ends weft's own options.
  const rest = argv[0] === '--' ? argv.slice(1) : argv;
  const command = rest.length > 0 ? rest : [existsSync('/bin/bash') ? 'bash' : 'sh'];
  const child = lab.spawn(host, command, { user: opts.user, inheritStdio: true });
  // The terminal's Ctrl-C reaches the command too; let it decide, and report its exit.
  const ignore = () => {};
  process.on('SIGINT', ignore);
  process.on('SIGQUIT', ignore);
  const [code, sig] = await new Promise<[number | null, NodeJS.Signals | null]>(
    (resolve, reject) => {
      child.once('error', reject);
      child.once('close', (c, s) => resolve([c, s]));
    },
  );
  process.off('SIGINT', ignore);
  process.off('SIGQUIT', ignore);
  process.exitCode = code ?? 128 + (sig ? constants.signals[sig] : 0);
}

export function registerLab(program: Command): void {
  const lab = program
    .command('lab')
    .description(
      'a multi-host lab on this machine: hosts as network namespaces on a private bridge',
    )
    .enablePositionalOptions();

  lab
    .command('up')
    .description('build a lab (the demo lab unless -f), replacing leftovers of one with its name')
    .option('-f, --file <spec>', 'lab spec (YAML)')
    .option(
      '--ha',
      'the demo with three control plane replicas (cp1-3) on a three-member etcd cluster (etcd1-3)',
    )
    .action(up);

  lab
    .command('down')
    .description('stop the processes and remove the namespaces, files and state of a lab')
    .argument('[name]', `lab name (default: the spec's with -f, else ${DEFAULT_LAB})`)
    .option('-f, --file <spec>', 'take the lab name from this spec')
    .action(down);

  lab
    .command('status')
    .description("show a lab's hosts, addresses and processes")
    .argument('[name]', `lab name (default: the spec's with -f, else ${DEFAULT_LAB})`)
    .option('-f, --file <spec>', 'take the lab name from this spec')
    .option('--json', 'print the status as JSON')
    .action(status);

  lab
    .command('exec')
    .description(
      'run a command inside a lab host (default: a shell); its exit code is passed through',
    )
    .usage('[--lab NAME] [--user USER] HOST -- COMMAND...')
    .argument('<host>', 'host name')
    .argument('[command...]', 'command and arguments')
    .option('--lab <name>', 'lab name', DEFAULT_LAB)
    .option('--user <user>', 'run as this user instead of root')
    .passThroughOptions()
    .action(exec);
}
