// The agent's DNS server in a lab host behind the real DNS capture rules: unmodified clients
// (glibc's getaddrinfo via getent) asking the host's nameserver 127.0.0.1:53 as a normal user
// get mesh names from the server, other names through it from the upstream, and a server
// that is not excluded from capture detects its own queries coming back instead of looping.
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureUser, Lab } from '../../src/lab/index.js';
import { WEFT_BIN } from '../helpers/agent-process.js';
import { requireRootAndTools } from '../helpers/prereqs.js';
import { waitFor } from '../helpers/wait.js';

const FIXTURE = fileURLToPath(new URL('../fixtures/dns-server.mjs', import.meta.url));
const APP_USER = 'weftapp';

type LogLine = Record<string, unknown> & { msg: string };

interface Running {
  child: ChildProcess;
  lines: LogLine[];
  waitFor(match: (l: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  stop(): Promise<void>;
}

let lab: Lab;
let dir: string;
let upstream: Running;
const running: Running[] = [];

function start(argv: string[], user: string): Running {
  const child = lab.spawn('a', [process.execPath, FIXTURE, ...argv], { user });
  const lines: LogLine[] = [];
  let buffered = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    buffered += chunk;
    for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
      const text = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      try {
        lines.push(JSON.parse(text) as LogLine);
      } catch {
        lines.push({ msg: text });
      }
    }
  });
  child.stderr?.setEncoding('utf8').on('data', (c: string) => {
    stderr += c;
  });
  // 'close' comes after the last stdout line: a line missing by then will never come.
  let closed = false;
  child.once('close', () => {
    closed = true;
  });
  const r: Running = {
    child,
    lines,
    waitFor: (match, timeoutMs = 10_000) =>
      waitFor(
        `a matching log line from ${argv.join(' ')}`,
        () => {
          const found = lines.find(match);
          if (found === undefined && closed)
            throw new Error(
              `${argv.join(' ')} exited (${child.exitCode ?? child.signalCode}) without the awaited line; stderr: ${stderr}`,
            );
          return found;
        },
        { timeoutMs, detail: () => `stderr: ${stderr}; lines: ${JSON.stringify(lines)}` },
      ),
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((res) => child.once('exit', res));
      // The child is `ip netns exec ... node` in its own process group: signal the group.
      if (child.pid !== undefined) process.kill(-child.pid, 'SIGTERM');
      await exited;
    },
  };
  running.push(r);
  return r;
}

async function getent(database: string, name: string, user = APP_USER) {
  return lab.exec('a', ['getent', database, name], { user, allowFailure: true, timeoutMs: 20_000 });
}

beforeAll(async () => {
  requireRootAndTools(['ip', 'iptables', 'ip6tables', 'getent', 'setpriv']);
  dir = mkdtempSync(join(tmpdir(), 'weft-dns-lab-'));
  chmodSync(dir, 0o755);
  await ensureUser('weft');
  await ensureUser(APP_USER);
  lab = await Lab.up({ name: `dns${randomBytes(2).toString('hex')}`, hosts: [{ name: 'a' }] });
  const config = join(dir, 'agent.json');
  writeFileSync(config, JSON.stringify({ capture: { dns: { enabled: true }, agentUser: 'weft' } }));
  await lab.exec('a', [process.execPath, WEFT_BIN, 'redirect', 'install', '--config', config]);
  // The host's nameserver (127.0.0.1:53, from the lab's resolv.conf) is a plain DNS server:
  // only the agent's user reaches it, everyone else is captured to 15053.
  upstream = start(['upstream', '127.0.0.1', '53'], 'root');
  await upstream.waitFor((l) => l.msg === 'upstream listening');
});

afterAll(async () => {
  for (const r of running) await r.stop().catch(() => {});
  await lab?.down();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('DNS through the capture rules', () => {
  it('resolves mesh names for an unmodified client, and forwards the rest as the agent user', async () => {
    const server = start(['server', '15053'], 'weft');
    const listening = await server.waitFor((l) => l.msg === 'dns server listening');
    expect(listening.listen).toEqual(['127.0.0.1:15053', '[::1]:15053']);
    // The lab's resolv.conf names 127.0.0.1: that is the default upstream, and it is logged.
    const chosen = await server.waitFor((l) => l.msg.startsWith('dns: forwarding names outside'));
    expect(chosen.upstreams).toEqual(['127.0.0.1:53']);

    const v4 = await getent('ahostsv4', 'echo.mesh');
    expect(v4.exitCode).toBe(0);
    expect(v4.stdout).toMatch(/^240\.240\.0\.1\s+STREAM\s+echo\.mesh$/m);
    const both = await getent('ahosts', 'Echo.Mesh');
    expect(both.stdout).toContain('240.240.0.1');
    expect(both.stdout).toContain('fd00:240::1');
    const v4only = await getent('ahosts', 'v4only.mesh');
    expect(v4only.stdout).toContain('240.240.0.2');
    expect(v4only.stdout).not.toContain(':');
    expect((await getent('ahostsv4', 'missing.mesh')).exitCode).not.toBe(0);

    const other = await getent('ahostsv4', 'www.example');
    expect(other.stdout).toMatch(/^192\.0\.2\.7\s+STREAM\s+www\.example$/m);
    // Mesh names never left the host; the other name reached the upstream through the server.
    const asked = upstream.lines.filter((l) => l.msg === 'upstream query').map((l) => l.name);
    expect(asked).toContain('www.example');
    expect(asked.filter((n) => String(n).toLowerCase().endsWith('.mesh'))).toEqual([]);
  });

  it('answers SERVFAIL and warns when its own forwarded queries are captured (not run as the agent user)', async () => {
    await running.find((r) => r.child.spawnargs.includes('server'))?.stop();
    const root = start(['server', '15053'], 'root');
    await root.waitFor((l) => l.msg === 'dns server listening');
    expect((await getent('ahostsv4', 'echo.mesh')).stdout).toContain('240.240.0.1');
    const lost = await getent('ahostsv4', 'loop.example');
    // Seen once in CI (exit 0, nothing else recorded): say what answered, should it recur.
    expect(
      lost.exitCode,
      `getent printed ${JSON.stringify(lost.stdout)}; the upstream was asked ${JSON.stringify(
        upstream.lines.filter((l) => l.msg === 'upstream query').map((l) => l.name),
      )}; the server logged ${JSON.stringify(root.lines.map((l) => l.msg))}`,
    ).not.toBe(0);
    await root.waitFor((l) => l.msg.startsWith('dns loop'));
  });
});
