// The agent's master with two workers on loopback (a plain relay: no control plane), as
// `weft agent` runs it: /metrics answers for the whole agent (the workers' counters summed,
// the master's own series once), /workers lists them, and a reload that would change what only
// a restart can is refused while the workers keep serving; the counts of workers that exited
// stay in /metrics (a counter never goes backwards). Forks the built worker
// (dist/agent/workers/worker-main.js): `npm run build:ts` first.
import { existsSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type AgentConfig, agentConfigSchema } from '../../src/agent/config.js';
import { type RunningMaster, startMaster } from '../../src/agent/workers/master.js';
import { nativeSocketOps } from '../../src/native/socket-ops.js';
import { freePorts } from '../helpers/free-ports.js';
import { waitFor } from '../helpers/wait.js';

const WORKER = fileURLToPath(new URL('../../dist/agent/workers/worker-main.js', import.meta.url));

let master: RunningMaster | undefined;
afterEach(async () => {
  await master?.stop(0);
  master = undefined;
});

beforeAll(() => {
  if (!existsSync(WORKER)) throw new Error(`${WORKER} is missing: run npm run build:ts first`);
});

interface Started {
  config: AgentConfig;
  metricsPort: number;
  adminPort: number;
  outboundPort: number;
}

async function start(): Promise<Started> {
  const [outbound, inbound, admin, tunnel, metrics, dns] = await freePorts(6);
  const config = agentConfigSchema.parse({
    hostname: 'master-test',
    addresses: ['127.0.0.1'],
    metrics: { address: '127.0.0.1' },
    workers: 2,
    capture: {
      outboundPort: outbound,
      inboundPort: inbound,
      dns: { port: dns },
      agentPorts: { admin, tunnel, metrics },
    },
  });
  const sink = new Writable({ write: (_c, _e, done) => done() });
  master = await startMaster(config, {
    socketOps: nativeSocketOps,
    log: pino(sink),
    workerEntry: WORKER,
  });
  return { config, metricsPort: metrics!, adminPort: admin!, outboundPort: outbound! };
}

const scrape = async (port: number) => (await fetch(`http://127.0.0.1:${port}/metrics`)).text();

function value(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.split(' ').pop());
}

function connectAndWaitClose(port: number): Promise<void> {
  return new Promise((resolve) => {
    const socket = netConnect({ host: '127.0.0.1', port });
    socket.on('error', () => {});
    socket.once('close', () => resolve());
  });
}

describe('the agent master', () => {
  it('answers /metrics for the whole agent: counters of both workers summed, its own once', async () => {
    const { metricsPort, adminPort, outboundPort } = await start();
    const listed = await fetch(`http://127.0.0.1:${adminPort}/workers`);
    const { workers } = (await listed.json()) as { workers: Array<{ state: string }> };
    expect(workers.map((w) => w.state)).toEqual(['serving', 'serving']);
    // Connections made straight to the capture port are refused by whichever worker took
    // them (one of two sockets in a SO_REUSEPORT group): the agent counts every one.
    await Promise.all(Array.from({ length: 20 }, () => connectAndWaitClose(outboundPort)));
    const series = 'weft_connections_refused_total{listener="outbound",reason="not_captured"}';
    await expect.poll(async () => value(await scrape(metricsPort), series)).toBe(20);
    const text = await scrape(metricsPort);
    expect(value(text, 'weft_agent_workers{state="serving"}')).toBe(2);
    expect(value(text, 'weft_agent_worker_restarts_total{reason="signal"}') ?? 0).toBe(0);
    // One series per name: merged, not one per process.
    expect(text.match(/^# TYPE weft_connections_refused_total /gm)).toHaveLength(1);
    expect(text.match(/^# TYPE process_resident_memory_bytes /gm)).toHaveLength(1);
  });

  it('refuses a reload that only a restart can apply; the workers keep serving', async () => {
    const { config, adminPort } = await start();
    const pids = async () =>
      (
        (await (await fetch(`http://127.0.0.1:${adminPort}/workers`)).json()) as {
          workers: Array<{ pid: number }>;
        }
      ).workers.map((w) => w.pid);
    const before = await pids();
    const next = { ...config, capture: { ...config.capture, outboundPort: 1 } };
    await expect(master!.reload(next)).rejects.toThrow(/a reload cannot change capture/);
    expect(await pids()).toEqual(before);
    // A reload it can take: new workers, the old ones gone once they drained (none held).
    expect(await master!.reload({ ...config, workers: 1 })).toBe(true);
    await waitFor('one new worker only', async () => {
      const now = await pids();
      return now.length === 1 && !before.includes(now[0]!);
    });
  });

  it('keeps the counts of workers that exited: a counter in /metrics never goes backwards', async () => {
    const { config, metricsPort, adminPort, outboundPort } = await start();
    await Promise.all(Array.from({ length: 20 }, () => connectAndWaitClose(outboundPort)));
    const series = 'weft_connections_refused_total{listener="outbound",reason="not_captured"}';
    await expect.poll(async () => value(await scrape(metricsPort), series)).toBe(20);
    const pids = async () =>
      (
        (await (await fetch(`http://127.0.0.1:${adminPort}/workers`)).json()) as {
          workers: Array<{ pid: number; generation: number }>;
        }
      ).workers;
    const before = (await pids()).map((w) => w.pid);
    // Both workers that counted them exit (a reload to one new worker).
    expect(await master!.reload({ ...config, workers: 1 })).toBe(true);
    await waitFor('the old workers gone', async () => {
      const now = await pids();
      return now.length === 1 && !before.includes(now[0]!.pid);
    });
    await connectAndWaitClose(outboundPort);
    const text = await scrape(metricsPort);
    expect(value(text, series)).toBe(21);
    // Gauges of the exited workers are not kept: only the new worker is counted.
    expect(value(text, 'weft_agent_workers{state="serving"}')).toBe(1);
  });
});
