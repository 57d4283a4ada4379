// `weft agent` imports only what the agent runs: the other verbs' modules (control plane, lab,
// resource CLI) cost the resident daemon memory for nothing (issue #15 item 2). Each process of
// a running agent loads only its own part: the master no data plane, a worker no control plane
// client, DNS server, admin, ASN.1 or schema library.
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { freePorts } from '../helpers/free-ports.js';
import { PINNED_NODE, ROOT } from '../helpers/node-runtime.js';
import { waitFor } from '../helpers/wait.js';

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'weft-cli-modules-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// A module hook that writes every module the process loads to $WEFT_TEST_MODULES, one a line.
const hook = join(dir, 'hook.mjs');
writeFileSync(
  hook,
  `import { registerHooks } from 'node:module';
import { appendFileSync } from 'node:fs';
registerHooks({ load(url, ctx, next) { appendFileSync(process.env.WEFT_TEST_MODULES, url + '\\n'); return next(url, ctx); } });
`,
);

/** Runs `weft ARGS` on the pinned runtime; returns its stdout and the modules it loaded. */
async function weft(args: string[]): Promise<{ stdout: string; modules: string[] }> {
  const list = join(dir, `modules-${args.join('-')}.txt`);
  writeFileSync(list, '');
  const { stdout } = await run(PINNED_NODE, ['--import', hook, join(ROOT, 'bin/weft'), ...args], {
    env: { ...process.env, WEFT_TEST_MODULES: list },
  });
  const modules = readFileSync(list, 'utf8').split('\n').filter(Boolean);
  return { stdout, modules: modules.map((m) => m.replace(`file://${ROOT}`, '')) };
}

// The same hook, one list per process (the master's workers inherit --import): $WEFT_TEST_MODULES
// is a directory. At exit each process also writes Node's own modules it loaded (<pid>.builtin).
const perProcessHook = join(dir, 'per-process-hook.mjs');
writeFileSync(
  perProcessHook,
  `import { registerHooks } from 'node:module';
import { appendFileSync } from 'node:fs';
import { writeFileSync } from 'node:fs';
registerHooks({ load(url, ctx, next) { appendFileSync(process.env.WEFT_TEST_MODULES + '/' + process.pid, url + '\\n'); return next(url, ctx); } });
process.on('exit', () => writeFileSync(process.env.WEFT_TEST_MODULES + '/' + process.pid + '.builtin', process.moduleLoadList.join('\\n')));
`,
);

/**
 * Runs `weft agent` (a master and one worker, on loopback, no control plane) until it is ready;
 * returns the modules its master and its worker loaded.
 */
interface ProcessModules {
  master: string[];
  worker: string[];
  /** Node's internal modules each loaded (process.moduleLoadList). */
  builtin: { master: string[]; worker: string[] };
}

async function runningAgentModules(): Promise<ProcessModules> {
  const [outbound, inbound, dns, admin, tunnel, metrics] = await freePorts(6);
  const lists = mkdtempSync(join(dir, 'agent-'));
  const config = join(lists, 'agent.yaml');
  writeFileSync(
    config,
    [
      'hostname: modules-test',
      'addresses: [127.0.0.1]',
      'workers: 1',
      `dataDir: ${lists}/data`,
      'metrics: { address: 127.0.0.1 }',
      'capture:',
      `  outboundPort: ${outbound}`,
      `  inboundPort: ${inbound}`,
      `  dns: { port: ${dns} }`,
      `  agentPorts: { admin: ${admin}, tunnel: ${tunnel}, metrics: ${metrics} }`,
      '',
    ].join('\n'),
  );
  const agent = spawn(
    PINNED_NODE,
    ['--import', perProcessHook, join(ROOT, 'bin/weft'), 'agent', '--config', config],
    { env: { ...process.env, WEFT_TEST_MODULES: lists }, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  agent.stderr.on('data', (d) => {
    stderr += d;
  });
  const exited = new Promise((resolve) => agent.once('exit', resolve));
  try {
    await waitFor(
      'the agent to be ready',
      async () => {
        if (agent.exitCode !== null) throw new Error(`weft agent exited: ${stderr}`);
        return (await fetch(`http://127.0.0.1:${admin}/ready`).catch(() => undefined))?.ok;
      },
      { timeoutMs: 60_000 },
    );
  } finally {
    agent.kill('SIGTERM');
    await exited;
  }
  const lines = (file: string) =>
    readFileSync(join(lists, file), 'utf8').split('\n').filter(Boolean);
  const byPid = readdirSync(lists)
    .filter((f) => /^\d+$/.test(f))
    .map((pid) => ({
      pid,
      modules: lines(pid).map((m) => m.replace(`file://${ROOT}`, '')),
    }));
  const master = byPid.find((p) => p.modules.includes('dist/cli/commands/agent.js'));
  const worker = byPid.find((p) => p.modules.includes('dist/agent/workers/worker-main.js'));
  if (!master || !worker) throw new Error(`no module list of the master or the worker in ${lists}`);
  return {
    master: master.modules,
    worker: worker.modules,
    builtin: { master: lines(`${master.pid}.builtin`), worker: lines(`${worker.pid}.builtin`) },
  };
}

const REQUEST_SERIES = new Set([
  'dist/proxy/http/request-series.js',
  'dist/proxy/http/request-telemetry.js',
]);

describe('weft agent loads only the agent', () => {
  it('imports neither the control plane, the lab nor the other verbs', async () => {
    const { stdout, modules } = await weft(['agent', '--help']);
    expect(stdout).toContain('--config <file>');
    // Sentinel: the hook saw the agent's own modules, so an empty list cannot pass.
    expect(modules).toContain('dist/cli/commands/agent.js');
    const foreign = modules.filter(
      (m) =>
        m.startsWith('dist/controlplane/') ||
        m.startsWith('dist/lab/') ||
        (m.startsWith('dist/cli/commands/') && m !== 'dist/cli/commands/agent.js') ||
        m.includes('node_modules/etcd3/') ||
        // the agent runs `ip` at start through node:child_process (src/sys/run.ts)
        m.includes('node_modules/execa/'),
    );
    expect(foreign).toEqual([]);
  });

  it("loads only each process's part: the master no data plane, a worker no control plane", async () => {
    const { master, worker, builtin } = await runningAgentModules();
    // Sentinels: each list holds its process's own entry, so an empty list cannot pass.
    expect(master).toContain('dist/agent/workers/master.js');
    expect(worker).toContain('dist/proxy/data-plane.js');
    // ... and packages in the form the filters below look for.
    expect(master.some((m) => m.startsWith('node_modules/zod/'))).toBe(true);
    expect(worker.some((m) => m.startsWith('node_modules/undici/'))).toBe(true);
    // The master holds the sockets and the control plane session; it serves no connection.
    const dataPlane = master.filter(
      (m) =>
        m === 'dist/proxy/data-plane.js' ||
        (/^dist\/proxy\/(http|tunnel|outbound|inbound|balance|resilience|routing)\//.test(m) &&
          // the names of the request series, which the master's stats readout reads
          !REQUEST_SERIES.has(m)) ||
        m.includes('node_modules/undici/') ||
        // The agent's CSRs are DER written by src/api/key-and-csr.ts: no ASN.1 library.
        m.includes('node_modules/@peculiar/') ||
        m.includes('node_modules/tsyringe/'),
    );
    expect(dataPlane).toEqual([]);
    // A worker gets its view from the master: no gRPC, protobuf, certificates to make, resource
    // validation or YAML; DNS, admin and /metrics are the master's.
    const controlPlane = worker.filter(
      (m) =>
        (m.startsWith('dist/controlplane-client/') &&
          m !== 'dist/controlplane-client/mesh-view.js') ||
        m.startsWith('dist/controlplane/') ||
        m.startsWith('dist/dns/') ||
        m.startsWith('dist/cli/') ||
        m === 'dist/agent/admin-server.js' ||
        m === 'dist/agent/config.js' ||
        m === 'dist/api/resources/index.js' ||
        m === 'dist/api/resources/kinds.js' ||
        m.includes('node_modules/@grpc/') ||
        m.includes('node_modules/protobufjs/') ||
        m.includes('node_modules/@peculiar/') ||
        m.includes('node_modules/yaml/') ||
        m.includes('node_modules/commander/') ||
        m.includes('node_modules/dns-packet/') ||
        // undici's Pool and Client only (local-http1.ts), not its fetch and WebSocket.
        m.includes('node_modules/undici/lib/web/') ||
        // No schema library: the master sends each snapshot's effective TrafficPolicies with
        // it (session-publisher.ts), and what the data path reads of resources and agent.yaml
        // (durations, defaults, limits) comes from zod-free files.
        m.includes('node_modules/zod/') ||
        m === 'dist/api/resources/traffic-policy.js' ||
        m === 'dist/proxy/limits/limits-schema.js',
    );
    expect(controlPlane).toEqual([]);
    // Neither loads prom-client's package entry, which brings its Pushgateway, Summary, cluster
    // aggregation and, for exemplars, the OpenTelemetry API (src/telemetry/prom.ts).
    expect(worker.some((m) => m.startsWith('node_modules/prom-client/lib/'))).toBe(true);
    const promEntry = (list: string[]) =>
      list.filter(
        (m) =>
          m === 'node_modules/prom-client/index.js' ||
          m.includes('node_modules/@opentelemetry/') ||
          m.includes('node_modules/tdigest/'),
      );
    expect({ master: promEntry(master), worker: promEntry(worker) }).toEqual({
      master: [],
      worker: [],
    });
    // Neither loads Node's own fetch and WebSocket (its bundled undici, 7 MiB): an ESM import
    // of node:http does, reading http's lazy WebSocket getter (src/sys/node-http.ts).
    expect(builtin.master).toContain('NativeModule net'); // sentinel: the list is Node's
    const fetchOf = (list: string[]) => list.filter((m) => m.includes('internal/deps/undici'));
    expect({ master: fetchOf(builtin.master), worker: fetchOf(builtin.worker) }).toEqual({
      master: [],
      worker: [],
    });
  });

  it('still lists every verb in `weft --help`', async () => {
    const { stdout } = await weft(['--help']);
    for (const verb of [
      'agent',
      'status',
      'redirect',
      'leave',
      'controlplane',
      'token',
      'apply',
      'get',
      'delete',
      'node',
      'lab',
    ])
      expect(stdout).toMatch(new RegExp(`^\\s+${verb}\\b`, 'm'));
  });
});
