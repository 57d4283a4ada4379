// The benchmark's lab: host `client` and host `server` (plus `cp` for weft's control plane and
// `server2` for the second gRPC endpoint), the upstream, iperf3 and gRPC servers on `server`,
// one HAProxy per host, weft's capture and agents on all of them, and the placement of every
// process on the machine's cores.
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MASTER_NODE_FLAGS } from '../../dist/agent/node-flags.js';
import { lookupUser, MeshLab, WEFT_BIN, waitUntil } from '../../dist/lab/index.js';
import { makeCerts } from './certs.mjs';
import { findProcess, treePids } from './proc.mjs';

const BENCH = fileURLToPath(new URL('..', import.meta.url));
const GRPC_LOAD = join(BENCH, 'grpc-load.mjs');
const CAPACITY_APP = join(BENCH, '..', 'test', 'fixtures', 'capacity-app.mjs');
const OVERLOAD_LOAD = join(BENCH, 'overload-load.mjs');
const KILL_APP = join(BENCH, 'kill-app.mjs');
/** The overload scenario's app: 8 requests at a time, 50 ms each (160 requests/s). */
export const OVERLOAD_APP = { capacity: 8, serviceMs: 50 };

/** The overload scenario's app on the server host, behind `service` on `port`. */
const capacityWorkload = (service, port) => ({
  service,
  name: service,
  port,
  command: [
    process.execPath,
    CAPACITY_APP,
    '0.0.0.0',
    String(port),
    String(OVERLOAD_APP.capacity),
    String(OVERLOAD_APP.serviceMs),
  ],
});

/** Ports on the server host. weft's are registered workloads; the rest bypass capture. */
export const PORTS = {
  weftHttp: 8080, // upstream through weft's L7 path (service `bench`, protocol http)
  plainHttp: 8081, // the same upstream, for direct and haproxy
  weftTcp: 8082, // the same upstream through weft's opaque path (`bench-tcp`, protocol tcp)
  weftIperf: 5201,
  plainIperf: 5202,
  weftGrpc: 9090, // gRPC endpoints on server and server2 (`bench-grpc`, protocol grpc)
  overload: 8083, // an app of fixed capacity (`bench-overload`, no policy)
  overloadAc: 8084, // the same app (`bench-overload-ac`, with adaptiveConcurrency)
  plainGrpc: 9091, // the same gRPC servers, for direct and haproxy
  kill: 8085, // scenario 10's app on server and server2 (`bench-kill`, http, retries on)
  plainKill: 8086, // the same app, for direct and haproxy
  policy: 8087, // the upstream again, behind a TrafficPolicy and an HTTPRoute (`bench-policy`)
  tlsKill: 18447, // scenario 10's server-side HAProxys (server and server2)
  haKill: 18005, // scenario 10's client-side HAProxy on 127.0.0.1
  tlsHttp: 18443, // server-side HAProxy
  tlsTcp: 18444,
  tlsH2: 18445,
  tlsGrpc: 18446,
  haHttp: 18001, // client-side HAProxy on 127.0.0.1
  haTcp: 18002,
  haH2: 18003,
  haGrpc: 18004,
  bareTunnel: 18450, // the server host's bare relay (bench/bare-relay.mjs), mutual TLS
  bareTcp: 18010, // the client host's bare relay on 127.0.0.1: opaque, to plainHttp
  bareHttp: 18011, // HTTP/1.1, to plainHttp
  bareIperf: 18012, // opaque, to plainIperf
};

/** Scenario 10's HAProxys: the host and its config template. */
const KILL_HAPROXY = [
  ['client', 'kill-client'],
  ['server', 'kill-server'],
  ['server2', 'kill-server'],
];

/** CPU placement: each lab "host" gets one core, as two one-core machines would. */
export const CPU = { client: '0', server: '1', server2: '1' };

/** A gRPC endpoint of scenario 8 on `host`: weft's port and the plain one, in one process. */
const grpcWorkload = (host) => ({
  service: 'bench-grpc',
  name: 'grpc',
  port: PORTS.weftGrpc,
  command: [
    process.execPath,
    GRPC_LOAD,
    'server',
    host,
    String(PORTS.weftGrpc),
    String(PORTS.plainGrpc),
  ],
});

/** Scenario 10's app on `host`: weft's port and the plain one, in one process (one kill). */
const killWorkload = (delayMs = 0) => ({
  service: 'bench-kill',
  name: 'kill',
  port: PORTS.kill,
  command: [
    process.execPath,
    KILL_APP,
    String(PORTS.kill),
    String(PORTS.plainKill),
    String(delayMs),
  ],
});

// One upstream behind two services: `bench` (http, the L7 path) and `bench-tcp` (tcp, opaque:
// the L4 figures, comparable with runs from before the L7 engine).
const RESOURCES = `apiVersion: weft/v1
kind: Service
metadata: { name: bench }
spec: { ports: [{ port: ${PORTS.weftHttp}, protocol: http }] }
---
apiVersion: weft/v1
kind: Service
metadata: { name: bench-tcp }
spec: { ports: [{ port: ${PORTS.weftTcp}, protocol: tcp }] }
---
apiVersion: weft/v1
kind: Service
metadata: { name: bench-grpc }
spec: { ports: [{ port: ${PORTS.weftGrpc}, protocol: grpc }] }
---
apiVersion: weft/v1
kind: Service
metadata: { name: bulk }
spec: { ports: [{ port: ${PORTS.weftIperf}, protocol: tcp }] }
---
apiVersion: weft/v1
kind: Service
metadata: { name: bench-overload }
spec: { ports: [{ port: ${PORTS.overload}, protocol: http }] }
---
apiVersion: weft/v1
kind: Service
metadata: { name: bench-overload-ac }
spec: { ports: [{ port: ${PORTS.overloadAc}, protocol: http }] }
---
apiVersion: weft/v1
kind: TrafficPolicy
metadata: { name: bench-overload-ac }
spec:
  targetRef: { name: bench-overload-ac }
  adaptiveConcurrency: {}
---
apiVersion: weft/v1
kind: Service
metadata: { name: bench-kill }
spec: { ports: [{ port: ${PORTS.kill}, protocol: http }] }
---
# Scenario 10: retries (a budget, Linkerd's numbers) and outlier detection; an endpoint is
# killed during the run.
apiVersion: weft/v1
kind: TrafficPolicy
metadata: { name: bench-kill }
spec:
  targetRef: { name: bench-kill }
  retries:
    attempts: 2
    on: [connect-failure, reset, 5xx, gateway-error]
    budget: { percent: 20, minPerSecond: 10 }
  outlierDetection:
    { consecutiveFailures: 5, interval: 10s, baseEjectionTime: 5s, maxEjectionPercent: 50 }
---
apiVersion: weft/v1
kind: Service
metadata: { name: bench-policy }
spec: { ports: [{ port: ${PORTS.policy}, protocol: http }] }
---
# Scenario 11: every policy stage on the path, none of them refusing anything (limits far above
# the rate), against \`bench\` without them.
apiVersion: weft/v1
kind: TrafficPolicy
metadata: { name: bench-policy }
spec:
  targetRef: { name: bench-policy }
  timeouts: { connect: 1s, request: 10s, idle: 5m }
  retries:
    attempts: 2
    perTryTimeout: 5s
    on: [connect-failure, reset, gateway-error]
    budget: { percent: 20, minPerSecond: 10 }
  circuitBreaker: { maxConnections: 4096, maxPendingRequests: 4096, maxRequests: 4096, maxRetries: 3 }
  outlierDetection:
    { consecutiveFailures: 5, interval: 10s, baseEjectionTime: 5s, maxEjectionPercent: 10 }
  rateLimit: { maxTokens: 1000000000, tokensPerFill: 1000000000, fillInterval: 1s }
---
# Two rules (the bench's GETs of / match the second), one header modifier; every request lands
# on bench-policy itself.
apiVersion: weft/v1
kind: HTTPRoute
metadata: { name: bench-policy }
spec:
  parentRefs: [{ name: bench-policy }]
  rules:
    - matches:
        - path: { type: PathPrefix, value: /api }
          headers: [{ name: x-canary, value: "1" }]
    - matches:
        - path: { type: PathPrefix, value: / }
          method: GET
      filters:
        - type: RequestHeaderModifier
          requestHeaderModifier: { set: [{ name: x-bench-route, value: policy }] }
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
    this.server2Addr = mesh.lab.host('server2').address;
    /** Which cores each host's processes get (pin(), wrk and iperf3); --workers-only widens it. */
    this.cpu = CPU;
  }

  /** `killAppMs`: how long scenario 10's app takes per request (default 0: at once). */
  static async up(name, log, { killAppMs = 0 } = {}) {
    const dir = `/tmp/weft-bench-${name}`;
    mkdirSync(dir, { recursive: true });
    chmodSync(dir, 0o755);
    const resources = join(dir, 'services.yaml');
    writeFileSync(resources, RESOURCES);
    const upstreamCfg = join(dir, 'upstream.cfg');
    writeFileSync(
      upstreamCfg,
      template('upstream', {
        WEFT_PORT: PORTS.weftHttp,
        WEFT_TCP_PORT: PORTS.weftTcp,
        PLAIN_PORT: PORTS.plainHttp,
        POLICY_PORT: PORTS.policy,
      }),
    );
    chmodSync(upstreamCfg, 0o644);
    const bypass = [
      PORTS.plainHttp,
      PORTS.plainIperf,
      PORTS.plainGrpc,
      PORTS.tlsHttp,
      PORTS.tlsTcp,
      PORTS.tlsH2,
      PORTS.tlsGrpc,
      PORTS.bareTunnel,
      PORTS.plainKill,
      PORTS.tlsKill,
    ];
    log('building the lab (cp, client, server, server2) with the real CLI');
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
              // The upstream above answers on this port too; MeshLab starts one process per
              // workload, so this one only holds the slot.
              service: 'bench-tcp',
              port: PORTS.weftTcp,
              command: ['sleep', 'infinity'],
            },
            {
              // The upstream answers on this port as well (scenario 11).
              service: 'bench-policy',
              port: PORTS.policy,
              command: ['sleep', 'infinity'],
            },
            {
              service: 'bulk',
              port: PORTS.weftIperf,
              command: ['iperf3', '-s', '-p', String(PORTS.weftIperf)],
            },
            grpcWorkload('server'),
            capacityWorkload('bench-overload', PORTS.overload),
            capacityWorkload('bench-overload-ac', PORTS.overloadAc),
            killWorkload(killAppMs),
          ],
        },
        // The second endpoint of `bench-grpc`: a service's endpoints on one host would need
        // two addresses, and one endpoint per host is the common case anyway.
        { name: 'server2', workloads: [grpcWorkload('server2'), killWorkload(killAppMs)] },
      ],
      resourceFiles: [resources],
      // The direct and haproxy setups use ports left out of capture on both hosts, so the
      // three setups share the same hosts, upstream and iptables (a few rule matches each).
      agentConfig: {
        // One core per host: one worker beside the master (the master holds the sockets and
        // the control plane session, and serves no connection).
        workers: 1,
        capture: {
          dns: { enabled: false },
          outbound: { excludePorts: bypass },
          inbound: { excludePorts: bypass },
        },
      },
    });
    const bench = new BenchLab(mesh, dir);
    bench.killAppMs = killAppMs;
    try {
      await bench.findVips();
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
      TLS_H2_PORT: PORTS.tlsH2,
      TLS_GRPC_PORT: PORTS.tlsGrpc,
      HTTP_PORT: PORTS.haHttp,
      TCP_PORT: PORTS.haTcp,
      H2_PORT: PORTS.haH2,
      GRPC_PORT: PORTS.haGrpc,
      PLAIN_PORT: PORTS.plainHttp,
      IPERF_PLAIN_PORT: PORTS.plainIperf,
      SERVER2_ADDR: this.server2Addr,
      GRPC_PLAIN_PORT: PORTS.plainGrpc,
      KILL_PORT: PORTS.haKill,
      KILL_TLS_PORT: PORTS.tlsKill,
      KILL_PLAIN_PORT: PORTS.plainKill,
      KILL_STATS: this.killStatsSocket,
    };
    for (const side of ['client', 'server']) {
      const cfg = join(this.dir, `haproxy-${side}.cfg`);
      writeFileSync(cfg, template(side, values));
      execFileSync('haproxy', ['-c', '-q', '-f', cfg]);
      await lab.startProcess(side, { name: 'haproxy', command: ['haproxy', '-f', cfg, '-db'] });
    }
    // weft's design in bare Node (bench/bare-relay.mjs): the least two Node processes do to carry
    // traffic as weft's agents do, one per host, pinned as HAProxy is.
    const relay = join(BENCH, 'bare-relay.mjs');
    await lab.startProcess('server', {
      name: 'bare',
      command: [
        process.execPath,
        relay,
        'server',
        certs,
        this.serverAddr,
        String(PORTS.bareTunnel),
      ],
    });
    await lab.startProcess('client', {
      name: 'bare',
      command: [
        process.execPath,
        relay,
        'client',
        certs,
        this.serverAddr,
        String(PORTS.bareTunnel),
        `${PORTS.bareTcp}:127.0.0.1:${PORTS.plainHttp}`,
        `${PORTS.bareIperf}:127.0.0.1:${PORTS.plainIperf}`,
        `${PORTS.bareHttp}=127.0.0.1:${PORTS.plainHttp}`,
      ],
    });
    // Scenario 10's HAProxys: one balancing on the client host, one in front of each app.
    for (const [host, tmpl] of KILL_HAPROXY) {
      const cfg = join(this.dir, `haproxy-kill-${host}.cfg`);
      const addr = lab.host(host).address;
      writeFileSync(cfg, template(tmpl, { ...values, ADDR: addr }));
      execFileSync('haproxy', ['-c', '-q', '-f', cfg]);
      await lab.startProcess(host, {
        name: 'haproxy-kill',
        command: ['haproxy', '-f', cfg, '-db'],
      });
    }
  }

  /** The client-side scenario 10 HAProxy's stats socket (its retries and redispatches). */
  get killStatsSocket() {
    return join(this.dir, 'haproxy-kill-client.sock');
  }

  /** The services' virtual IPs, from the control plane (the bench runs without weft's DNS). */
  async findVips() {
    const r = await this.mesh.weft('cp', ['get', 'services', '-o', 'json', ...this.mesh.adminArgs]);
    this.vips = Object.fromEntries(
      JSON.parse(r.stdout).map((d) => [d.metadata.name, d.status?.vip]),
    );
    for (const name of ['bench', 'bench-grpc', 'bench-kill', 'bench-policy'])
      if (!this.vips[name]) throw new Error(`no VIP for ${name} in: ${r.stdout}`);
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
      server2Agent: this.pid('server2', 'agent', 'node'),
      clientHaproxy: this.pid('client', 'haproxy', 'haproxy'),
      serverHaproxy: this.pid('server', 'haproxy', 'haproxy'),
      clientBare: this.pid('client', 'bare', 'node'),
      serverBare: this.pid('server', 'bare', 'node'),
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
    const grpcs = ['server', 'server2'].map((h) => this.pid(h, 'grpc', 'node'));
    // server2 stands for a second server machine, but there are only two cores: it shares
    // the server host's, so both gRPC endpoints compete as the server side's processes do.
    const placement = [
      [this.cpu.client, [p.clientAgent, p.clientHaproxy, p.clientBare]],
      [
        this.cpu.server,
        [
          p.serverAgent,
          p.server2Agent,
          p.serverHaproxy,
          p.serverBare,
          p.upstream,
          ...iperfs,
          ...grpcs,
        ],
      ],
    ];
    // The whole tree: an agent is a master and its workers (which inherit it when forked later).
    for (const [cpu, pids] of placement)
      for (const pid of pids)
        for (const p of treePids(pid))
          execFileSync('taskset', ['-a', '-cp', cpu, String(p)], { stdio: 'ignore' });
    // Scenario 10's apps and HAProxys (each host's core; server2 shares the server's).
    for (const [host] of KILL_HAPROXY) await this.pinProcess(host, 'haproxy-kill', 'haproxy');
    for (const host of ['server', 'server2']) await this.pinProcess(host, 'kill', 'node');
  }

  /**
   * Starts `host`'s agent (stopped by the caller) under `node <nodeFlags>`, pinned to its core.
   * Node refuses --cpu-prof in NODE_OPTIONS: such flags go on the command line. `bin`: another
   * checkout's bin/weft (an old build, to compare with). `env`: more environment variables
   * (e.g. glibc's malloc tunables).
   */
  async startAgentUnder(host, nodeFlags, bin = WEFT_BIN, env = {}) {
    await this.lab.startProcess(host, {
      name: 'agent',
      env,
      command: [
        process.execPath,
        ...MASTER_NODE_FLAGS, // as the unit and the lab start the master
        ...nodeFlags,
        bin,
        'agent',
        '--config',
        this.mesh.configFile(host),
      ],
      user: 'weft',
    });
    await this.pinAgent(host);
  }

  /** Scenario 10: starts `host`'s killed app again, pinned to its core. */
  async restartKillApp(host) {
    await this.lab.startProcess(host, {
      name: 'kill',
      command: killWorkload(this.killAppMs).command,
      user: 'weftapp',
    });
    await this.pinProcess(host, 'kill', 'node');
  }

  /** A lab process's log file (its stdout and stderr). */
  logFile(host, name) {
    const rec = this.lab.processes().find((p) => p.host === host && p.name === name);
    if (!rec) throw new Error(`no lab process ${host}/${name}`);
    return rec.logFile;
  }

  /** Pins a restarted agent again. */
  pinAgent(host) {
    return this.pinProcess(host, 'agent', 'node');
  }

  /** Pins a (re)started lab process to its host's core, once it has replaced its launcher. */
  async pinProcess(host, name, comm) {
    const deadline = Date.now() + 10_000;
    let pid;
    while (pid === undefined) {
      try {
        pid = this.pid(host, name, comm);
      } catch (err) {
        if (Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    for (const p of treePids(pid))
      execFileSync('taskset', ['-a', '-cp', this.cpu[host], String(p)], { stdio: 'ignore' });
  }

  async waitReady() {
    const ok = async (url, ...flags) =>
      (
        await this.lab.exec('client', ['curl', '-sf', '--max-time', '3', ...flags, url], {
          user: 'weftapp',
          allowFailure: true,
        })
      ).exitCode === 0;
    for (const [what, url] of Object.entries(this.httpUrls())) {
      await waitUntil(`the ${what} path`, () => ok(url), 60_000);
    }
    for (const [what, url] of Object.entries(this.h2Urls())) {
      await waitUntil(`the ${what} h2c path`, () => ok(url, '--http2-prior-knowledge'), 60_000);
    }
    // Every gRPC endpoint a setup balances over must have answered once (weft's agents learn
    // server2's endpoint when its health check passes), or the first share measured is lopsided.
    for (const what of Object.keys(this.grpcTargets())) {
      const want = what === 'direct' ? ['server'] : ['server', 'server2'];
      const seen = new Set();
      await waitUntil(
        `the ${what} gRPC path to ${want.join(' and ')}`,
        async () => {
          const r = await this.grpc(what, { seconds: 0.3, concurrency: 1, allowFailure: true });
          for (const name of Object.keys(r?.byEndpoint ?? {})) seen.add(name);
          return want.every((n) => seen.has(n));
        },
        60_000,
      );
    }
  }

  /**
   * Requests the client agent counted in weft_http_requests_total (outbound) per destination
   * service: which columns went through weft's HTTP path. Before the L7 engine, none did.
   */
  async httpRequestsCounted() {
    const r = await this.lab.exec('client', ['curl', '-s', 'http://127.0.0.1:15020/metrics'], {
      allowFailure: true,
    });
    const counted = { bench: 0, 'bench-grpc': 0, 'bench-tcp': 0 };
    for (const line of r.stdout.split('\n')) {
      const m = /^weft_http_requests_total\{([^}]*)\} (\S+)$/.exec(line);
      if (!m?.[1].includes('direction="outbound"')) continue;
      const service = /dst_service="([^"]*)"/.exec(m[1])?.[1];
      if (service in counted) counted[service] += Number(m[2]);
    }
    return counted;
  }

  /** HTTP/1.1 targets of wrk: `weft` is the opaque (tcp) port, `weft-l7` the http one. */
  httpUrls() {
    return {
      direct: `http://${this.serverAddr}:${PORTS.plainHttp}/`,
      haproxy: `http://127.0.0.1:${PORTS.haHttp}/`,
      bare: `http://127.0.0.1:${PORTS.bareTcp}/`,
      'bare-l7': `http://127.0.0.1:${PORTS.bareHttp}/`,
      weft: `http://${this.serverAddr}:${PORTS.weftTcp}/`,
      'weft-l7': `http://${this.serverAddr}:${PORTS.weftHttp}/`,
      // Scenario 11: both through a service's virtual IP (routes apply to a Service, not to an
      // endpoint's own address), `bench` as it is and `bench-policy` with every policy stage.
      'weft-vip': `http://${this.vips.bench}:${PORTS.weftHttp}/`,
      'weft-policy': `http://${this.vips['bench-policy']}:${PORTS.policy}/`,
    };
  }

  /** h2c (prior knowledge) targets of h2load; the upstream HAProxy answers h2c on every port. */
  h2Urls() {
    return {
      direct: `http://${this.serverAddr}:${PORTS.plainHttp}/`,
      haproxy: `http://127.0.0.1:${PORTS.haH2}/`,
      'weft-l7': `http://${this.serverAddr}:${PORTS.weftHttp}/`,
    };
  }

  /**
   * gRPC targets: direct reaches the server host's endpoint only (no balancing); weft the
   * service's virtual IP, as an app resolving bench-grpc.mesh would (an endpoint's own address
   * would pin every call to that endpoint).
   */
  grpcTargets() {
    return {
      direct: `${this.serverAddr}:${PORTS.plainGrpc}`,
      haproxy: `127.0.0.1:${PORTS.haGrpc}`,
      'weft-l7': `${this.vips['bench-grpc']}:${PORTS.weftGrpc}`,
    };
  }

  tcpTargets() {
    return {
      direct: [this.serverAddr, PORTS.plainIperf],
      haproxy: ['127.0.0.1', PORTS.haTcp],
      bare: ['127.0.0.1', PORTS.bareIperf],
      weft: [this.serverAddr, PORTS.weftIperf],
    };
  }

  /**
   * The proxy processes whose CPU a setup costs (both hosts; with `server2`, also server2's
   * agent, which carries half of the weft gRPC calls).
   */
  proxyPids(setup, { server2 = false } = {}) {
    const p = this.pids;
    if (setup === 'haproxy') return [p.clientHaproxy, p.serverHaproxy];
    if (setup.startsWith('bare')) return [p.clientBare, p.serverBare];
    if (setup.startsWith('weft'))
      return [p.clientAgent, p.serverAgent, ...(server2 ? [p.server2Agent] : [])];
    return [];
  }

  /**
   * wrk on the client host's core, as the unprivileged app user (captured by weft): one thread
   * per core the client host has.
   */
  async wrk(setup, { connections, seconds, delayMs = 0, close = false }) {
    const script = join(BENCH, 'wrk-report.lua');
    const argv = [
      'taskset',
      '-c',
      this.cpu.client,
      'wrk',
      `-t${this.cpu.client.split(',').length}`,
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
      this.cpu.client,
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

  /**
   * h2load on the client host's core: `clients` h2c connections with `streams` requests in
   * flight on each, `seconds` measured after 1 s of warm-up. Latency percentiles come from
   * h2load's per-request log (it prints only min, max and mean).
   */
  async h2load(setup, { clients, streams, seconds }) {
    const dir = join(this.dir, 'h2load');
    mkdirSync(dir, { recursive: true });
    const app = lookupUser('weftapp');
    chownSync(dir, app.uid, app.gid);
    const logFile = join(dir, `${setup}.log`);
    const argv = [
      'taskset',
      '-c',
      CPU.client,
      'h2load',
      '-t1',
      `-c${clients}`,
      `-m${streams}`,
      `-D${seconds}`,
      '--warm-up-time=1',
      `--log-file=${logFile}`,
      this.h2Urls()[setup],
    ];
    const r = await this.lab.exec('client', argv, {
      user: 'weftapp',
      timeoutMs: (seconds + 30) * 1000,
    });
    const rps = /finished in [\d.]+s, ([\d.]+) req\/s/.exec(r.stdout)?.[1];
    const req =
      /requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed/.exec(
        r.stdout,
      );
    if (!rps || !req) throw new Error(`h2load printed no result: ${r.stdout} ${r.stderr}`);
    const us = readFileSync(logFile, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => Number(l.split('\t')[2]));
    rmSync(logFile, { force: true });
    const sorted = Float64Array.from(us).sort();
    const pct = (p) => (sorted.length ? sorted[Math.floor((sorted.length - 1) * p)] : null);
    return {
      rps: Number(rps),
      requests: Number(req[3]),
      errors: Number(req[4]),
      p50: pct(0.5) / 1000,
      p99: pct(0.99) / 1000,
    };
  }

  /**
   * bench/grpc-load.mjs on the client host's core: one channel, `concurrency` unary calls in
   * flight, `seconds` measured after `warmS` unmeasured. Returns its JSON line (calls/s,
   * latency percentiles in microseconds, calls answered per endpoint).
   */
  /**
   * The overload scenario: an open loop from the client host (as the captured app user) at
   * `rate` requests/s for `seconds`, after `warmS` at a quarter of the app's capacity, to the
   * app of fixed capacity with adaptive concurrency (`ac`) or without.
   */
  async overload({ ac, rate, seconds, warmS }) {
    const port = ac ? PORTS.overloadAc : PORTS.overload;
    const url = `http://${this.serverAddr}:${port}/`;
    await waitUntil(
      `the overload app on ${port}`,
      async () =>
        (
          await this.lab.exec('client', ['curl', '-sf', '--max-time', '3', url], {
            user: 'weftapp',
            allowFailure: true,
          })
        ).exitCode === 0,
      60_000,
    );
    const warmRate = (OVERLOAD_APP.capacity * 1000) / OVERLOAD_APP.serviceMs / 4;
    const argv = ['taskset', '-c', CPU.client, process.execPath, OVERLOAD_LOAD, url];
    argv.push(String(rate), String(seconds), String(warmRate), String(warmS));
    const r = await this.lab.exec('client', argv, {
      user: 'weftapp',
      timeoutMs: (warmS + seconds + 60) * 1000,
    });
    const line = r.stdout
      .trim()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .pop();
    if (!line) throw new Error(`overload-load printed no result: ${r.stdout} ${r.stderr}`);
    return JSON.parse(line);
  }

  async grpc(setup, { seconds, concurrency, warmS = 0, allowFailure = false }) {
    const argv = [
      'taskset',
      '-c',
      CPU.client,
      process.execPath,
      GRPC_LOAD,
      'client',
      this.grpcTargets()[setup],
      String(seconds),
      String(concurrency),
      String(warmS),
    ];
    const r = await this.lab.exec('client', argv, {
      user: 'weftapp',
      allowFailure,
      timeoutMs: (seconds + warmS + 30) * 1000,
    });
    const line = r.stdout
      .trim()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .pop();
    if (!line) {
      if (allowFailure) return undefined;
      throw new Error(`grpc-load printed no result: ${r.stdout} ${r.stderr}`);
    }
    return JSON.parse(line);
  }
}
