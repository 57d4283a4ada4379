// Transparent capture end to end, in lab hosts with real iptables rules: an unmodified client
// on host a talks to a server on host b; both agents relay the connection and log it.
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureUser, Lab } from '../../src/lab/index.js';
import { type AgentProcess, startAgentProcess, WEFT_BIN } from '../helpers/agent-process.js';
import { requireRootAndTools } from '../helpers/prereqs.js';

const BANNER = fileURLToPath(new URL('../fixtures/banner-server.mjs', import.meta.url));
const APP_USER = 'weftapp';

let lab: Lab;
let dir: string;
let agentA: AgentProcess;
let agentB: AgentProcess;
let appUid: number;
/** The agents' config (capture excludes outbound port 9090). */
let config: string;

/** Connects from `host` as `user` with a real client (netcat), sends a line, returns the reply. */
async function talk(host: string, address: string, port: number, user = APP_USER): Promise<string> {
  const r = await lab.exec(host, ['nc', '-N', '-w', '3', address, String(port)], {
    user,
    input: 'ping\n',
    allowFailure: true,
    timeoutMs: 10_000,
  });
  return r.stdout;
}

/** Lines logged for connections to `dst` (as "addr:port" or "[addr6]:port"). */
function connectionLines(agent: AgentProcess, direction: string, dst: string) {
  return agent.lines.filter(
    (l) => l.msg === 'connection' && l.direction === direction && l.dst === dst,
  );
}

/**
 * The positive sentinel of the negative tests: an app's connection from a to b:8080, which
 * both agents capture. Resolves once both logged it; a connection made earlier would have
 * been logged before it (each agent logs connections in the order they end).
 */
async function sentinel(): Promise<void> {
  const b = lab.host('b');
  const dst = `${b.address}:8080`;
  const [seenA, seenB] = [agentA.lines.length, agentB.lines.length];
  expect(await talk('a', b.address, 8080)).toContain('ping');
  const logged = (agent: AgentProcess, seen: number, direction: string) =>
    agent.waitFor(
      (l) =>
        l.msg === 'connection' &&
        l.direction === direction &&
        l.dst === dst &&
        agent.lines.indexOf(l) >= seen,
    );
  await Promise.all([logged(agentA, seenA, 'outbound'), logged(agentB, seenB, 'inbound')]);
}

function writeConfig(name: string, capture: Record<string, unknown>): string {
  const file = join(dir, name);
  writeFileSync(file, JSON.stringify({ capture }));
  return file;
}

beforeAll(async () => {
  requireRootAndTools(['ip', 'iptables', 'ip6tables', 'nc', 'setpriv']);
  dir = mkdtempSync(join(tmpdir(), 'weft-capture-'));
  chmodSync(dir, 0o755); // the agent runs as user weft and reads its config here
  await ensureUser('weft');
  appUid = (await ensureUser(APP_USER)).uid;
  lab = await Lab.up({
    name: `cap${randomBytes(2).toString('hex')}`,
    hosts: [
      { name: 'a' },
      {
        name: 'b',
        processes: [
          {
            name: 'banner',
            command: [process.execPath, BANNER, 'b', '8080', '9090', '22'],
            user: 'root',
          },
        ],
      },
    ],
  });
  config = writeConfig('agent.yaml', { outbound: { excludePorts: [9090] } });
  for (const host of ['a', 'b']) {
    await lab.exec(host, [process.execPath, WEFT_BIN, 'redirect', 'install', '--config', config]);
  }
  [agentA, agentB] = await Promise.all([
    startAgentProcess(lab, 'a', config),
    startAgentProcess(lab, 'b', config),
  ]);
});

afterAll(async () => {
  await agentA?.stop();
  await agentB?.stop();
  await lab?.down();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('capture with iptables REDIRECT', () => {
  it('captures an app connection on host a to host b (IPv4) with the true destination and its owner', async () => {
    const b = lab.host('b');
    const reply = await talk('a', b.address, 8080);
    expect(reply).toMatch(/^b \S+\nping\n$/);
    const dst = `${b.address}:8080`;
    const out = await agentA.waitFor(
      (l) => l.msg === 'connection' && l.direction === 'outbound' && l.dst === dst,
    );
    expect(out.src_uid).toBe(appUid);
    expect(out.close_reason).toBe('done');
    expect(out.bytes_sent).toBe(5);
    // b's agent captured it inbound too: a's agent connects from its own user, which a's
    // rules exclude, but b's PREROUTING rules see a connection arriving for a local port.
    await agentB.waitFor(
      (l) => l.msg === 'connection' && l.direction === 'inbound' && l.dst === dst,
    );
  });

  it('captures IPv6 connections with the true destination', async () => {
    const b = lab.host('b');
    const reply = await talk('a', b.address6, 8080);
    expect(reply).toMatch(/^b .+\nping\n$/);
    const dst = `[${b.address6}]:8080`;
    const out = await agentA.waitFor(
      (l) => l.msg === 'connection' && l.direction === 'outbound' && l.dst === dst,
    );
    expect(out.src_uid).toBe(appUid);
    await agentB.waitFor(
      (l) => l.msg === 'connection' && l.direction === 'inbound' && l.dst === dst,
    );
  });

  it('does not capture the agent user, loopback, excluded ports or inbound port 22', async () => {
    const b = lab.host('b');
    const before = agentA.lines.length;
    // The agent's own user: excluded by -m owner on host a (b still captures it inbound).
    expect(await talk('a', b.address, 8080, 'weft')).toContain('ping');
    // An excluded outbound port.
    expect(await talk('a', b.address, 9090)).toContain('ping');
    // Loopback on host b itself.
    expect(await talk('b', '127.0.0.1', 8080)).toContain('ping');
    // Port 22 inbound on b, from a's agent user so that a does not capture it either.
    expect(await talk('a', b.address, 22, 'weft')).toContain('ping');
    await sentinel();
    // On a: nothing but the sentinel.
    expect(
      agentA.lines
        .slice(before)
        .filter((l) => l.msg === 'connection')
        .map((l) => l.dst),
    ).toEqual([`${b.address}:8080`]);
    expect(connectionLines(agentB, 'inbound', `${b.address}:22`)).toEqual([]);
    expect(connectionLines(agentB, 'outbound', `127.0.0.1:8080`)).toEqual([]);
  });

  it('after uninstall, traffic flows directly and the agents see nothing', async () => {
    const b = lab.host('b');
    for (const host of ['a', 'b']) {
      await lab.exec(host, [process.execPath, WEFT_BIN, 'redirect', 'uninstall']);
      for (const save of ['iptables-save', 'ip6tables-save']) {
        const rules = (await lab.exec(host, [save])).stdout;
        expect(rules).not.toMatch(/weft|WEFT_/);
      }
    }
    const beforeA = agentA.lines.length;
    const beforeB = agentB.lines.length;
    expect(await talk('a', b.address, 8080)).toContain('ping');
    // The sentinel needs capture back: once it is logged, the uncaptured call would have been.
    for (const host of ['a', 'b']) {
      await lab.exec(host, [process.execPath, WEFT_BIN, 'redirect', 'install', '--config', config]);
    }
    await sentinel();
    const logged = (agent: AgentProcess, from: number) =>
      agent.lines.slice(from).filter((l) => l.msg === 'connection').length;
    expect(logged(agentA, beforeA)).toBe(1); // the sentinel's line only
    expect(logged(agentB, beforeB)).toBe(1);
  });
});

describe('inbound capture with TPROXY', () => {
  it('delivers inbound connections to the transparent listener with their true destination, v4 and v6', async () => {
    const b = lab.host('b');
    await agentB.stop();
    const config = writeConfig('tproxy.yaml', { inboundMode: 'tproxy' });
    await lab.exec('b', [process.execPath, WEFT_BIN, 'redirect', 'install', '--config', config]);
    // IP_TRANSPARENT needs CAP_NET_ADMIN; under systemd the unit grants it as an ambient cap.
    agentB = await startAgentProcess(lab, 'b', config, ['net_admin']);
    for (const [address, dst] of [
      [b.address, `${b.address}:8080`],
      [b.address6, `[${b.address6}]:8080`],
    ] as const) {
      expect(await talk('a', address, 8080)).toMatch(/^b \S+\nping\n$/);
      const line = await agentB.waitFor(
        (l) => l.msg === 'connection' && l.direction === 'inbound' && l.dst === dst,
      );
      expect(line.close_reason).toBe('done');
    }
    await lab.exec('b', [process.execPath, WEFT_BIN, 'redirect', 'uninstall', '--config', config]);
    const rules =
      (await lab.exec('b', ['ip', 'rule', 'list'])).stdout +
      (await lab.exec('b', ['ip', '-6', 'rule', 'list'])).stdout;
    expect(rules).not.toMatch(/fwmark/);
  });
});
