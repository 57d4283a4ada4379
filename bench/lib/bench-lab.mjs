// The benchmark's lab: host `client` and host `server` (plus `cp` for weft's control plane),
// the upstream and iperf3 servers on `server`, one HAProxy per host, weft's capture and agents
// on both, and the placement of every process on the machine's cores.
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MeshLab, WEFT_BIN, waitUntil } from '../../dist/lab/index.js';
import { makeCerts } from './certs.mjs';
import { findProcess } from './proc.mjs';

const BENCH = fileURLToPath(new URL('..', import.meta.url));

/** Ports on the server host. weft's are registered workloads; the rest bypass capture. */
export const PORTS = {
  weftHttp: 8080, // upstream, reached through weft
  plainHttp: 8081, // the same upstream, for direct and haproxy
  weftIperf: 5201,
  plainIperf: 5202,
  tlsHttp: 18443, // server-side HAProxy
  tlsTcp: 18444,
  haHttp: 18001, // client-side HAProxy on 127.0.0.1
  haTcp: 18002,
};

/** CPU placement: each lab "host" gets one core, as two one-core machines would. */
export const CPU = { client: '0', server: '1' };

const RESOURCES = `apiVersion: weft/v1
kind: Service
metadata: { name: bench }
spec: { ports: [{ port: ${PORTS.weftHttp}, protocol: http }] }
---
apiVersion: weft/v1
kind: Service
metadata: { name: bulk }
spec: { ports: [{ port: ${PORTS.weftIperf}, protocol: tcp }] }
`;

function template(name, values) {
  let text = readFileSync(join(BENCH, 'haproxy', `${name}.cfg.tmpl`), 'utf8');
  for (const [k, v] of Object.entries(values)) text = text.replaceAll(`{{${k}}}`, String(v));
  return text;
}

export class BenchLab {
  constructor(mesh, dir) {
    this.mesh = mesh;
    this.lab = mesh.lab;
    this.dir = dir;
    this.serverAddr = mesh.lab.host('server').address;
  }

  static async up(name, log) {
    const dir = `/tmp/weft-bench-${name}`;
    mkdirSync(dir, { recursive: true });
    chmodSync(dir, 0o755);
    const resources = join(dir, 'services.yaml');
    writeFileSync(resources, RESOURCES);
    const upstreamCfg = join(dir, 'upstream.cfg');
    writeFileSync(
      upstreamCfg,
      template('upstream', { WEFT_PORT: PORTS.weftHttp, PLAIN_PORT: PORTS.plainHttp }),
    );
    chmodSync(upstreamCfg, 0o644);
    const bypass = [PORTS.plainHttp, PORTS.plainIperf, PORTS.tlsHttp, PORTS.tlsTcp];
    log('building the lab (cp, client, server) with the real CLI');
    const mesh = await MeshLab.up({
      name,
      nodes: [
        { name: 'client' },
        {
          name: 'server',
          workloads: [
            {
              service: 'bench',
              port: PORTS.weftHttp,
              command: ['haproxy', '-f', upstreamCfg, '-db'],
            },
            {
              service: 'bulk',
              port: PORTS.weftIperf,
              command: ['iperf3', '-s', '-p', String(PORTS.weftIperf)],
            },
          ],
        },
      ],
      resourceFiles: [resources],
      // The direct and haproxy setups use ports left out of capture on both hosts, so the
      // three setups share the same hosts, upstream and iptables (a few rule matches each).
      agentConfig: {
        capture: {
          dns: { enabled: false },
          outbound: { excludePorts: bypass },
          inbound: { excludePorts: bypass },
        },
      },
    });
    const bench = new BenchLab(mesh, dir);
    try {
      await bench.startPeers();
      await bench.pin();
      await bench.waitReady();
    } catch (err) {
      await mesh.lab.down().catch(() => undefined);
      throw err;
    }
    return bench;
  }

  async startPeers() {
    const { lab } = this;
    await lab.startProcess('server', {
      name: 'iperfplain',
      command: ['iperf3', '-s', '-p', String(PORTS.plainIperf)],
      user: 'weftapp',
    });
    const certs = join(this.dir, 'certs');
    mkdirSync(certs, { recursive: true });
    makeCerts(certs);
    const values = {
      DIR: certs,
      SERVER_ADDR: this.serverAddr,
      TLS_HTTP_PORT: PORTS.tlsHttp,
      TLS_TCP_PORT: PORTS.tlsTcp,
      HTTP_PORT: PORTS.haHttp,
      TCP_PORT: PORTS.haTcp,
      PLAIN_PORT: PORTS.plainHttp,
      IPERF_PLAIN_PORT: PORTS.plainIperf,
    };
    for (const side of ['client', 'server']) {
      const cfg = join(this.dir, `haproxy-${side}.cfg`);
      writeFileSync(cfg, template(side, values));
      execFileSync('haproxy', ['-c', '-q', '-f', cfg]);
      await lab.startProcess(side, { name: 'haproxy', command: ['haproxy', '-f', cfg, '-db'] });
    }
  }

  /** The pid of a lab process by host and name, resolved to the program itself. */
  pid(host, name, comm) {
    const rec = this.lab.processes().find((p) => p.host === host && p.name === name);
    if (!rec) throw new Error(`no lab process ${host}/${name}`);
    try {
      return findProcess(rec.pid, comm);
    } catch (err) {
      let tail = '';
      try {
        tail = readFileSync(rec.logFile, 'utf8').trim().split('\n').slice(-5).join(' | ');
      } catch {}
      throw new Error(`${host}/${name} is not running (${err.message}); its log: ${tail}`);
    }
  }

  get pids() {
    return {
      clientAgent: this.pid('client', 'agent', 'node'),
      serverAgent: this.pid('server', 'agent', 'node'),
      clientHaproxy: this.pid('client', 'haproxy', 'haproxy'),
      serverHaproxy: this.pid('server', 'haproxy', 'haproxy'),
      upstream: this.pid('server', 'bench', 'haproxy'),
      controlPlane: this.pid('cp', 'controlplane', 'node'),
    };
  }

  /** Waits until every started program has replaced its `ip netns exec` launcher. */
  async settle(timeoutMs = 10_000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        return this.pids;
      } catch (err) {
        if (Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  /** Pins every long-running process (all threads) to its host's core. */
  async pin() {
    await this.settle();
    const p = this.pids;
    const iperfs = ['bulk', 'iperfplain'].map((n) => this.pid('server', n, 'iperf3'));
    const placement = [
      [CPU.client, [p.clientAgent, p.clientHaproxy]],
      [CPU.server, [p.serverAgent, p.serverHaproxy, p.upstream, ...iperfs]],
    ];
    for (const [cpu, pids] of placement)
      for (const pid of pids)
        execFileSync('taskset', ['-a', '-cp', cpu, String(pid)], { stdio: 'ignore' });
  }

  /**
   * Starts `host`'s agent (stopped by the caller) under `node <nodeFlags>`, pinned to its core.
   * Node refuses --cpu-prof in NODE_OPTIONS: such flags go on the command line.
   */
  async startAgentUnder(host, nodeFlags) {
    await this.lab.startProcess(host, {
      name: 'agent',
      command: [
        process.execPath,
        ...nodeFlags,
        WEFT_BIN,
        'agent',
        '--config',
        this.mesh.configFile(host),
      ],
      user: 'weft',
    });
    await this.pinAgent(host);
  }

  /** Pins a restarted agent again. */
  async pinAgent(host) {
    const deadline = Date.now() + 10_000;
    let pid;
    while (pid === undefined) {
      try {
        pid = this.pid(host, 'agent', 'node');
      } catch (err) {
        if (Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    execFileSync('taskset', ['-a', '-cp', CPU[host], String(pid)], { stdio: 'ignore' });
  }

  async waitReady() {
    const ok = async (url) =>
      (
        await this.lab.exec('client', ['curl', '-sf', '--max-time', '3', url], {
          user: 'weftapp',
          allowFailure: true,
        })
      ).exitCode === 0;
    for (const [what, url] of Object.entries(this.httpUrls())) {
      await waitUntil(`the ${what} path`, () => ok(url), 60_000);
    }
  }

  httpUrls() {
    return {
      direct: `http://${this.serverAddr}:${PORTS.plainHttp}/`,
      haproxy: `http://127.0.0.1:${PORTS.haHttp}/`,
      weft: `http://${this.serverAddr}:${PORTS.weftHttp}/`,
    };
  }

  tcpTargets() {
    return {
      direct: [this.serverAddr, PORTS.plainIperf],
      haproxy: ['127.0.0.1', PORTS.haTcp],
      weft: [this.serverAddr, PORTS.weftIperf],
    };
  }

  /** The proxy processes whose CPU a setup costs (both hosts). */
  proxyPids(setup) {
    const p = this.pids;
    if (setup === 'haproxy') return [p.clientHaproxy, p.serverHaproxy];
    if (setup === 'weft') return [p.clientAgent, p.serverAgent];
    return [];
  }

  /** wrk on the client host's core, as the unprivileged app user (captured by weft). */
  async wrk(setup, { connections, seconds, delayMs = 0, close = false }) {
    const script = join(BENCH, 'wrk-report.lua');
    const argv = [
      'taskset',
      '-c',
      CPU.client,
      'wrk',
      '-t1',
      `-c${connections}`,
      `-d${seconds}s`,
      '--timeout',
      '5s',
      '-s',
      script,
      this.httpUrls()[setup],
    ];
    const r = await this.lab.exec('client', argv, {
      user: 'weftapp',
      env: { BENCH_DELAY_MS: String(delayMs), BENCH_CLOSE: close ? '1' : '0' },
      timeoutMs: (seconds + 30) * 1000,
    });
    const line = r.stdout
      .trim()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .pop();
    if (!line) throw new Error(`wrk printed no result: ${r.stdout} ${r.stderr}`);
    const res = JSON.parse(line);
    res.rps = res.requests / (res.durationUs / 1e6);
    return res;
  }

  /**
   * iperf3 from the client host; returns received Gbit/s over `seconds`, after `omit` seconds
   * left out (TCP slow start and window growth; iperf3 -O).
   */
  async iperf(setup, { streams, seconds, omit = 1 }) {
    const [host, port] = this.tcpTargets()[setup];
    const argv = [
      'taskset',
      '-c',
      CPU.client,
      'iperf3',
      '-c',
      host,
      '-p',
      String(port),
      '-P',
      String(streams),
      '-t',
      String(seconds),
      '-O',
      String(omit),
      '-J',
    ];
    let last;
    // A health probe of the agent may hold iperf3's server for a moment ("server is busy").
    for (let attempt = 0; attempt < 3; attempt++) {
      const r = await this.lab.exec('client', argv, {
        user: 'weftapp',
        allowFailure: true,
        timeoutMs: (seconds + 30) * 1000,
      });
      try {
        const out = JSON.parse(r.stdout);
        if (!out.error) return out.end.sum_received.bits_per_second / 1e9;
        last = out.error;
      } catch {
        last = r.stderr || r.stdout;
      }
      await new Promise((res) => setTimeout(res, 1000));
    }
    throw new Error(`iperf3 ${setup} failed: ${last}`);
  }
}
