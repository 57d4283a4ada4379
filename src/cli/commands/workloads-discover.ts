// `weft workloads discover`: the host's listening TCP sockets (systeminformation) with the
// owning process, user and systemd unit (/proc/<pid>/cgroup), and the Service documents and
// agent.yaml `workloads` entries that would onboard them, ready to apply. weft's own sockets
// and loopback-only ones are listed as skipped unless --all. `--register NAME...` writes the
// named ones into agent.yaml and reloads the agent (SIGHUP).
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import si from 'systeminformation';
import { stringify } from 'yaml';
import { loadAgentConfig } from '../../agent/config.js';
import { WeftError } from '../../errors.js';
import { unitOfCgroupPath } from '../../native/systemd-unit.js';
import { table } from './table.js';
import {
  type Candidate,
  discoverCandidates,
  type ListeningSocket,
  type ProcessFacts,
  proposals,
} from './workloads-discover-plan.js';
import { agentsUsing, replaceFile, withWorkloads } from './workloads-discover-register.js';

const DEFAULT_AGENT_CONFIG = '/etc/weft/agent.yaml';

interface DiscoverOptions {
  all?: boolean;
  output: string;
  register?: string[];
  config: string;
}

export function registerWorkloads(program: Command): void {
  const workloads = program
    .command('workloads')
    .description("this host's applications as mesh workloads");
  workloads
    .command('discover')
    .description(
      "list this host's listening TCP sockets with their process, user and systemd unit, and propose Service documents and agent.yaml workloads",
    )
    .option('--all', "also propose loopback-only sockets and weft's own (skipped by default)")
    .option('-o, --output <format>', 'text (a table, then YAML to apply), yaml or json', 'text')
    .option(
      '--register <service...>',
      'write these proposed workloads into the agent config and reload the agent',
    )
    .option(
      '-c, --config <file>',
      'the agent config to read and, with --register, to change',
      process.env.WEFT_AGENT_CONFIG ?? DEFAULT_AGENT_CONFIG,
    )
    .action(async (opts: DiscoverOptions) => {
      if (!['text', 'yaml', 'json'].includes(opts.output))
        throw new WeftError(
          'WEFT_E_USAGE',
          `--output must be text, yaml or json, not ${opts.output}`,
        );
      const agentPorts = await agentPortsOf(opts.config);
      const candidates = discoverCandidates(await listening(), await processFacts(), {
        all: opts.all === true,
        agentPorts,
      });
      const proposed = proposals(candidates);
      if (opts.register) {
        await register(opts.config, opts.register, proposed.workloads, candidates);
        return;
      }
      if (opts.output === 'json') {
        console.log(JSON.stringify({ candidates, ...proposed }, null, 2));
        return;
      }
      if (opts.output === 'text') console.log(`${candidateTable(candidates)}\n`);
      console.log(proposalYaml(proposed));
    });
}

/** The agent's own ports, from its config when readable (else the defaults). */
async function agentPortsOf(file: string): Promise<number[]> {
  let config: ReturnType<typeof loadAgentConfig>;
  try {
    config = loadAgentConfig(file);
  } catch {
    config = loadAgentConfig();
  }
  const c = config.capture;
  return [
    c.outboundPort,
    c.inboundPort,
    c.dns.port,
    c.agentPorts.admin,
    c.agentPorts.tunnel,
    c.agentPorts.metrics,
  ];
}

async function listening(): Promise<ListeningSocket[]> {
  const connections = await si.networkConnections();
  return connections
    .filter((c) => c.protocol.startsWith('tcp') && c.state === 'LISTEN')
    .map((c) => ({
      address: c.localAddress.replace(/^\[|\]$/g, ''),
      port: Number(c.localPort),
      ...(c.pid > 0 ? { pid: c.pid } : {}),
    }))
    .filter((s) => Number.isInteger(s.port) && s.port > 0);
}

async function processFacts(): Promise<Map<number, ProcessFacts>> {
  const { list } = await si.processes();
  const facts = new Map<number, ProcessFacts>();
  await Promise.all(
    list.map(async (p) => {
      const unit = await readFile(`/proc/${p.pid}/cgroup`, 'utf8').then(
        (text) => unitOfCgroupPath(/^0::(.*)$/m.exec(text)?.[1] ?? ''),
        () => undefined,
      );
      facts.set(p.pid, {
        pid: p.pid,
        name: p.name,
        command: `${p.command} ${p.params}`.trim(),
        user: p.user,
        ...(unit ? { unit } : {}),
      });
    }),
  );
  return facts;
}

function candidateTable(candidates: readonly Candidate[]): string {
  if (candidates.length === 0) return 'no listening TCP sockets';
  return table(
    ['SERVICE', 'PORT', 'ADDRESSES', 'PID', 'PROCESS', 'USER', 'UNIT', 'PROTOCOL', 'PROPOSED'],
    candidates.map((c) => [
      c.service,
      String(c.port),
      c.addresses.join(','),
      c.pid === undefined ? '-' : String(c.pid),
      c.process ?? '-',
      c.user ?? '-',
      c.unit ?? '-',
      c.protocol,
      c.skipped === undefined ? 'yes' : `no (${c.skipped}; --all proposes it)`,
    ]),
  );
}

function proposalYaml(p: ReturnType<typeof proposals>): string {
  const services = p.services.map((s) => stringify(s).trimEnd()).join('\n---\n');
  return [
    '# Service documents: weft apply -f FILE',
    services === '' ? '# (none)' : services,
    '---',
    '# agent.yaml: add under workloads (or: weft workloads discover --register SERVICE...)',
    stringify({ workloads: p.workloads }).trimEnd(),
  ].join('\n');
}

async function register(
  file: string,
  names: readonly string[],
  workloads: ReturnType<typeof proposals>['workloads'],
  candidates: readonly Candidate[],
): Promise<void> {
  const unknown = names.filter((n) => !workloads.some((w) => w.service === n));
  if (unknown.length > 0) {
    const skipped = unknown.filter((n) => candidates.some((c) => c.service === n));
    throw new WeftError(
      'WEFT_E_USAGE',
      `nothing registered: ${unknown.join(', ')} ${unknown.length === 1 ? 'is' : 'are'} not proposed${skipped.length ? ` (${skipped.join(', ')}: skipped; add --all)` : ''}; proposed: ${[...new Set(workloads.map((w) => w.service))].join(', ') || 'none'}`,
    );
  }
  const chosen = workloads.filter((w) => names.includes(w.service));
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new WeftError(
      'WEFT_E_CONFIG',
      `cannot read ${file} (${(err as NodeJS.ErrnoException).code}): pass the agent's config with --config`,
    );
  }
  await replaceFile(file, withWorkloads(text, file, chosen));
  console.log(`${file}: added ${chosen.map((w) => w.name).join(', ')}`);
  const agents = await agentsUsing(file);
  for (const pid of agents) process.kill(pid, 'SIGHUP');
  console.log(
    agents.length > 0
      ? `reloaded the agent (SIGHUP to ${agents.join(', ')})`
      : 'no agent runs with this config: the workloads apply when it starts',
  );
}
