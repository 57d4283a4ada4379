// The agent's /metrics as an operator scrapes it, from a whole agent in this process (a plain
// relay: no control plane) on loopback ports chosen free: the process metrics tell the real
// event-loop lag, counters are counters, and connections refused at accept are counted by
// listener and reason.
import { connect as netConnect } from 'node:net';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { type RunningAgent, startAgent } from '../../src/agent/agent.js';
import { agentConfigSchema } from '../../src/agent/config.js';
import { nativeSocketOps } from '../../src/native/socket-ops.js';
import { freePorts } from '../helpers/free-ports.js';
import { waitFor } from '../helpers/wait.js';

let agent: RunningAgent | undefined;
afterEach(async () => {
  await agent?.stop(0);
  agent = undefined;
});

/** Ports the kernel says are free now (bound to 0, then released). */
interface Started {
  metricsPort: number;
  outboundPort: number;
  lines: Array<Record<string, unknown>>;
}

async function start(extra: Record<string, unknown> = {}): Promise<Started> {
  const [outbound, inbound, admin, tunnel, metrics, dns] = await freePorts(6);
  const config = agentConfigSchema.parse({
    hostname: 'metrics-test',
    addresses: ['127.0.0.1'],
    metrics: { address: '127.0.0.1' },
    capture: {
      outboundPort: outbound,
      inboundPort: inbound,
      dns: { port: dns },
      agentPorts: { admin, tunnel, metrics },
    },
    ...extra,
  });
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(l));
      done();
    },
  });
  agent = await startAgent(config, { socketOps: nativeSocketOps, log: pino(sink) });
  return { metricsPort: metrics!, outboundPort: outbound!, lines };
}

async function scrape(port: number): Promise<string> {
  return (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
}

function value(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.split(' ').pop());
}

/** A connection made straight to a capture port (not redirected): the agent closes it. */
function connectAndWaitClose(port: number): Promise<void> {
  return new Promise((resolve) => {
    const socket = netConnect({ host: '127.0.0.1', port });
    socket.on('error', () => {});
    socket.once('close', () => resolve());
  });
}

describe('agent /metrics', () => {
  it('reports the real event-loop lag of an idle agent, not its sampling interval', async () => {
    const { metricsPort } = await start();
    // The monitor's figures cover the time since the previous scrape: scrape until one holds
    // samples (an empty window reports a max of 0), and judge that same scrape.
    await scrape(metricsPort);
    const text = await waitFor('a scrape with event-loop samples', async () => {
      const t = await scrape(metricsPort);
      return Number(value(t, 'nodejs_eventloop_lag_max_seconds')) > 0 && t;
    });
    // An idle loop runs its timers within a millisecond or so of when they are due; the old
    // figures were the sampling interval itself (about 0.1 s) however idle the agent was.
    for (const q of ['min', 'p50', 'mean']) {
      expect(value(text, `nodejs_eventloop_lag_${q}_seconds`), q).toBeLessThan(0.02);
    }
    // A blocked loop still shows: the lag is measured, not just made small.
    const until = Date.now() + 300;
    while (Date.now() < until) {
      // busy: the monitor's timer cannot run
    }
    // No wait needed: the overdue timer runs in the loop's timers phase, before the scrape's
    // connection is even accepted, so this very scrape holds the late sample.
    expect(value(await scrape(metricsPort), 'nodejs_eventloop_lag_max_seconds')).toBeGreaterThan(
      0.2,
    );
  });

  it('exports tunnel handshakes as a counter named _total', async () => {
    const { metricsPort } = await start();
    const text = await scrape(metricsPort);
    expect(text).toContain('# TYPE weft_tunnel_handshakes_total counter');
    expect(value(text, 'weft_tunnel_handshakes_total')).toBe(0);
    expect(text).not.toMatch(/^weft_tunnel_handshakes /m);
  });

  it('counts connections refused at accept by listener and reason', async () => {
    const { metricsPort, outboundPort } = await start();
    for (let i = 0; i < 3; i++) await connectAndWaitClose(outboundPort);
    const series = 'weft_connections_refused_total{listener="outbound",reason="not_captured"}';
    await expect.poll(async () => value(await scrape(metricsPort), series)).toBe(3);
  });
});
