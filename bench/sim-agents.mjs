// Scenario 6: many simulated agents against one real control plane. Each simulated agent is a
// node joined with its own token and key (a real Join), registers its workloads, and keeps one
// Sync stream with its own node certificate, acknowledging every version as a real agent does
// and sending heartbeats. Responses are not decoded beyond their version (field 1), nor
// decompressed: the cost measured is the control plane's fan-out, not this process's parsing
// (a real agent's decoding is on its own host; bench/decode-snapshot.mjs measures it).
// Usage (as root on the control plane host): node sim-agents.mjs --server 127.0.0.1:15012
//   --credentials DIR --cp-pid PID --agents 1000 --services 1000 --per-agent 10 --changes 6
//   --real-nodes client,server [--wave N (default: all at once)]
// Against replicas (`--ha-only`): --servers A,B,C spreads the agents (agent i joins, registers
// and syncs at server i mod 3; admin calls go to the first) and --cp-pids P1,P2,P3
// --etcd-pids E1,E2,E3 measure every replica and etcd member; --kill-pid PID --kill-server S
// then kills replica S with SIGKILL after the changes and times until every agent it had
// resumed at its next server (after a delay drawn as the agent's first backoff, 0-250 ms).
// Prints progress on stderr and one JSON line on stdout, then holds the streams open until
// stdin closes, so that the caller can measure the real agents with this state loaded.
import * as grpc from '@grpc/grpc-js';
import { readAdminCredentials } from '../dist/api/admin-client.js';
import { createKeyAndCsr } from '../dist/api/csr.js';
import { CONTROL_PLANE_CHANNEL_OPTIONS, loadProto, unary } from '../dist/api/proto.js';
import { nodeSpiffeId } from '../dist/api/spiffe.js';
import { controlPlaneCredentials } from '../dist/api/tls.js';
import { cpuSeconds, rssMiB } from './lib/proc.mjs';
import { summarize } from './lib/stats.mjs';

const args = parseArgs(process.argv.slice(2));
const AGENTS = Number(args.agents ?? 1000);
const SERVICES = Number(args.services ?? 1000);
const PER_AGENT = Number(args['per-agent'] ?? 10);
const CHANGES = Number(args.changes ?? 6);
const CP_PIDS = String(args['cp-pids'] ?? args['cp-pid'])
  .split(',')
  .map(Number);
const ETCD_PIDS = (args['etcd-pids'] ?? '').split(',').filter(Boolean).map(Number);
const SERVERS = (args.servers ?? args.server ?? '127.0.0.1:15012').split(',');
const SERVER = SERVERS[0];
const KILL_PID = args['kill-pid'] === undefined ? undefined : Number(args['kill-pid']);
const KILL_SERVER = args['kill-server'];
/** The agent's first reconnect delay is drawn from [0, 250 ms) (its backoff's base). */
const FIRST_BACKOFF_MS = 250;
const REAL_NODES = (args['real-nodes'] ?? '').split(',').filter(Boolean);
const HEARTBEAT_MS = 5_000;
const WAVE = Number(args.wave ?? AGENTS);
/**
 * `--plain 1`: announce no snapshot encoding in Hello, as an agent of the previous release;
 * else the simulated agents announce zstd as a real agent does (Hello field 50). Either way
 * responses are not decompressed: field 1 (the version) stays in clear at the front.
 */
const ENCODINGS = args.plain === '1' ? [] : ['zstd'];

const log = (msg) => process.stderr.write(`[sim] ${msg}\n`);
const sum = (xs) => xs.reduce((a, b) => a + b, 0);
/** Moves to another replica before the planned kill: a replica that dropped its agents. */
let unplannedMoves = 0;
let killing = false;
/** CPU seconds and RSS of a group of processes (the replicas, the etcd members). */
const groupCpu = (pids) => sum(pids.map(cpuSeconds));
const groupRss = (pids) => sum(pids.map(rssMiB));
const proto = loadProto();
const admin = readAdminCredentials(args.credentials);
const td = admin.trustDomain;
const adminChannel = controlPlaneCredentials(
  { caPem: admin.caPem, certPem: admin.certPem, keyPem: admin.keyPem },
  td,
);
const adminClient = new proto.Admin(SERVER, adminChannel, CONTROL_PLANE_CHANNEL_OPTIONS);
const serializeRequest = proto.Sync.service.Stream.requestSerialize;

function parseArgs(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i += 2) out[argv[i].replace(/^--/, '')] = argv[i + 1];
  return out;
}

/** Field 1 (version, varint) of a SyncResponse; the encoder writes fields in order. */
function versionOf(buf) {
  if (buf.length === 0 || buf[0] !== 0x08) return 0;
  let v = 0;
  let mul = 1;
  for (let i = 1; i < buf.length && i < 11; i++) {
    v += (buf[i] & 0x7f) * mul;
    if ((buf[i] & 0x80) === 0) break;
    mul *= 128;
  }
  return v;
}

async function pool(n, concurrency, fn) {
  const out = new Array(n);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, n) }, async () => {
      while (next < n) {
        const i = next++;
        out[i] = await fn(i);
      }
    }),
  );
  return out;
}

const svcName = (k) => `sim-${String(k).padStart(4, '0')}`;
const serviceDoc = (k, extra = {}) => ({
  apiVersion: 'weft/v1',
  kind: 'Service',
  metadata: { name: svcName(k), ...extra },
  spec: { ports: [{ port: 80, targetPort: 8000, protocol: 'http' }] },
});
const asResource = (doc) => ({
  kind: doc.kind,
  name: doc.metadata.name,
  json: JSON.stringify(doc),
  revision: 0,
  source: 'bench',
});

/** Services per apply: an apply is one etcd transaction, which etcd bounds (64 new Services). */
const APPLY_BATCH = 50;

async function applyServices() {
  for (let start = 0; start < SERVICES; start += APPLY_BATCH) {
    const docs = [];
    for (let k = start; k < Math.min(SERVICES, start + APPLY_BATCH); k++) docs.push(serviceDoc(k));
    await unary(adminClient, adminClient.apply, {
      resources: docs.map(asResource),
      source: 'bench',
    });
  }
}

/** A node's address: loopback, never reached (the simulated nodes serve nothing). */
const nodeAddress = (i) => `127.1.${Math.floor(i / 250)}.${(i % 250) + 1}`;

function workloadsOf(i, count = PER_AGENT) {
  return Array.from({ length: count }, (_, j) => ({
    service: svcName((i * PER_AGENT + j) % SERVICES),
    address: nodeAddress(i),
    port: 8000,
    health: 'healthy',
    weight: 1,
    zone: '',
    name: `w${j}`,
  }));
}

async function joinAll() {
  const anon = controlPlaneCredentials({ caPem: admin.caPem }, td);
  // Each node joins at its own replica; the token is made at the first (tokens are in etcd).
  const identities = SERVERS.map((s) => new proto.Identity(s, anon, CONTROL_PLANE_CHANNEL_OPTIONS));
  const nodes = await pool(AGENTS, 16, async (i) => {
    const hostname = `simnode${i}`;
    // Each simulated node may serve the services of its own workloads (placement).
    const services = [...new Set(workloadsOf(i).map((w) => w.service))];
    const { token } = await unary(adminClient, adminClient.createToken, {
      ttlSeconds: 3600,
      description: 'bench',
      node: hostname,
      services,
    });
    const { keyPem, csrPem } = await createKeyAndCsr(nodeSpiffeId(td, hostname));
    const identity = identities[i % SERVERS.length];
    const res = await unary(identity, identity.join, {
      token,
      hostname,
      csrPem,
      addresses: [nodeAddress(i)],
      zone: '',
    });
    return { i, hostname, keyPem, certPem: res.certificatePem };
  });
  for (const identity of identities) identity.close();
  return nodes;
}

class SimAgent {
  constructor(node) {
    this.node = node;
    this.creds = controlPlaneCredentials(
      { caPem: admin.caPem, certPem: node.certPem, keyPem: node.keyPem },
      td,
    );
    this.serverIndex = node.i % SERVERS.length;
    this.dial();
    this.version = 0;
    this.receivedAt = 0;
    this.resumedAt = 0;
    this.names = [];
  }

  get server() {
    return SERVERS[this.serverIndex];
  }

  dial() {
    this.identity = new proto.Identity(this.server, this.creds, CONTROL_PLANE_CHANNEL_OPTIONS);
    this.client = new grpc.Client(this.server, this.creds, CONTROL_PLANE_CHANNEL_OPTIONS);
  }

  /** As a real agent whose replica went away: its first backoff, then the next replica. */
  moveOn() {
    if (!killing) unplannedMoves += 1;
    this.stopBeats();
    this.client.close();
    this.identity.close();
    this.resuming = true;
    setTimeout(() => {
      this.serverIndex = (this.serverIndex + 1) % SERVERS.length;
      this.dial();
      this.open();
    }, Math.random() * FIRST_BACKOFF_MS);
  }

  stopBeats() {
    clearTimeout(this.heartbeat);
    clearInterval(this.heartbeat);
  }

  async register(count = PER_AGENT) {
    const res = await unary(this.identity, this.identity.registerWorkloads, {
      workloads: workloadsOf(this.node.i, count),
    });
    this.names = res.names;
  }

  open() {
    this.call = this.client.makeBidiStreamRequest(
      '/weft.v1.Sync/Stream',
      serializeRequest,
      (buf) => buf,
    );
    this.call.on('data', (buf) => {
      // A delta (or the confirmation of the version held) from the replica moved to.
      if (this.resuming) {
        this.resuming = false;
        this.resumedAt = performance.now();
      }
      this.version = versionOf(buf);
      this.receivedAt = performance.now();
      this.call.write({ ack: { version: this.version } });
    });
    const call = this.call;
    this.call.on('error', (err) => {
      if (this.closing || call !== this.call) return;
      if (SERVERS.length > 1) this.moveOn();
      else log(`${this.node.hostname}: stream error: ${err.message}`);
    });
    this.call.write({
      hello: { version: this.version, agentVersion: 'bench-sim', acceptEncodings: ENCODINGS },
    });
    const beat = () =>
      this.call.write({
        heartbeat: { workloads: this.names.map((name) => ({ name, health: 'healthy' })) },
      });
    this.heartbeat = setTimeout(() => {
      beat();
      this.heartbeat = setInterval(beat, HEARTBEAT_MS);
    }, Math.random() * HEARTBEAT_MS);
  }

  close() {
    this.closing = true;
    this.stopBeats();
    this.call?.end();
    this.client.close();
    this.identity.close();
  }
}

/** Waits until every agent has received (and acked) a message after `since`. */
async function allReceivedAfter(agents, since, timeoutMs = 120_000) {
  const deadline = performance.now() + timeoutMs;
  while (agents.some((a) => a.receivedAt <= since)) {
    if (performance.now() > deadline) {
      const missing = agents.filter((a) => a.receivedAt <= since).length;
      throw new Error(`${missing} agents never received the change`);
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  const lat = agents.map((a) => a.receivedAt - since).sort((x, y) => x - y);
  const pct = (p) => lat[Math.min(lat.length - 1, Math.ceil((p / 100) * lat.length) - 1)];
  return { p50: pct(50), p99: pct(99), max: lat.at(-1) };
}

async function realNodesAcked(version) {
  if (REAL_NODES.length === 0) return true;
  const res = await unary(adminClient, adminClient.listNodes, {});
  return REAL_NODES.every(
    (n) => (res.nodes.find((x) => x.name === n)?.ackedVersion ?? 0) >= version,
  );
}

async function main() {
  const t0 = performance.now();
  await applyServices();
  log(`${SERVICES} services applied`);
  const nodes = await joinAll();
  const joinS = (performance.now() - t0) / 1000;
  log(`${AGENTS} nodes joined in ${joinS.toFixed(1)} s`);
  const agents = nodes.map((n) => new SimAgent(n));
  await pool(agents.length, 16, (i) => agents[i].register());
  log(`${AGENTS * PER_AGENT} workloads registered`);

  // Initial sync: every stream gets the full snapshot (encoded once, written to each). By
  // default all streams open at once, as a fleet reconnects after a control plane restart
  // (the control plane puts a bounded number of snapshots on the wire at a time).
  const cpu0 = groupCpu(CP_PIDS);
  const etcdCpu0 = groupCpu(ETCD_PIDS);
  // The simulator's own CPU: it receives every snapshot (TLS, HTTP/2) on one thread.
  const simCpu0 = process.cpuUsage();
  let etcdInitialRssPeak = groupRss(ETCD_PIDS);
  const tOpen = performance.now();
  const rssAtOpen = groupRss(CP_PIDS);
  let initialRssPeak = rssAtOpen;
  const initialSampler = setInterval(() => {
    initialRssPeak = Math.max(initialRssPeak, groupRss(CP_PIDS));
    etcdInitialRssPeak = Math.max(etcdInitialRssPeak, groupRss(ETCD_PIDS));
  }, 250);
  for (let w = 0; w < agents.length; w += WAVE) {
    const wave = agents.slice(w, w + WAVE);
    const t = performance.now();
    for (const a of wave) a.open();
    await allReceivedAfter(wave, t, 300_000);
  }
  clearInterval(initialSampler);
  initialRssPeak = Math.max(initialRssPeak, groupRss(CP_PIDS));
  const initial = {
    seconds: (performance.now() - tOpen) / 1000,
    wave: WAVE,
    cpuSeconds: groupCpu(CP_PIDS) - cpu0,
    rssMiBPeak: initialRssPeak,
    /** Before the streams open: what joins and registrations left. */
    rssMiBAtOpen: rssAtOpen,
    etcdCpuSeconds: groupCpu(ETCD_PIDS) - etcdCpu0,
    simCpuSeconds: (() => {
      const u = process.cpuUsage(simCpu0);
      return (u.user + u.system) / 1e6;
    })(),
    etcdRssMiBPeak: etcdInitialRssPeak,
  };
  log(
    `initial sync: ${AGENTS} agents (${WAVE >= AGENTS ? 'all at once' : `in waves of ${WAVE}`}) acked in ${initial.seconds.toFixed(1)} s`,
  );
  await new Promise((r) => setTimeout(r, 1_000)); // let acks and first heartbeats settle

  const rssBefore = groupRss(CP_PIDS);
  const etcdRssBefore = groupRss(ETCD_PIDS);
  let rssPeak = rssBefore;
  let etcdRssPeak = etcdRssBefore;
  const sampler = setInterval(() => {
    rssPeak = Math.max(rssPeak, groupRss(CP_PIDS));
    etcdRssPeak = Math.max(etcdRssPeak, groupRss(ETCD_PIDS));
  }, 100);
  const changes = [];
  const cpuStart = groupCpu(CP_PIDS);
  const etcdCpuStart = groupCpu(ETCD_PIDS);
  const wallStart = performance.now();
  for (let c = 0; c < CHANGES; c++) {
    const kind = c % 2 === 0 ? 'apply' : 'workload-gone';
    const since = performance.now();
    if (kind === 'apply') {
      const doc = serviceDoc(c % SERVICES, { labels: { bench: `change-${c}` } });
      await unary(adminClient, adminClient.apply, {
        resources: [asResource(doc)],
        source: 'bench',
      });
    } else {
      // One node's workload disappears (the node re-registers without it); put back after.
      await agents[c % AGENTS].register(PER_AGENT - 1);
    }
    const r = await allReceivedAfter(agents, since);
    changes.push({ kind, ...r });
    log(
      `change ${c} (${kind}): p50 ${r.p50.toFixed(1)} ms, p99 ${r.p99.toFixed(1)} ms, all ${r.max.toFixed(1)} ms`,
    );
    if (kind === 'workload-gone') {
      const back = performance.now();
      await agents[c % AGENTS].register(PER_AGENT);
      await allReceivedAfter(agents, back);
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  const wall = (performance.now() - wallStart) / 1000;
  const cpu = groupCpu(CP_PIDS) - cpuStart;
  const etcdCpu = groupCpu(ETCD_PIDS) - etcdCpuStart;
  clearInterval(sampler);

  const version = Math.max(...agents.map((a) => a.version));
  const realStart = performance.now();
  while (!(await realNodesAcked(version))) {
    if (performance.now() - realStart > 60_000) throw new Error('the real agents never acked');
    await new Promise((r) => setTimeout(r, 250));
  }
  const perReplicaRssMiB = CP_PIDS.map(rssMiB);
  const perMemberRssMiB = ETCD_PIDS.map(rssMiB);
  const killed = KILL_PID === undefined ? undefined : await killReplica(agents);
  const result = {
    replicas: SERVERS.length,
    agents: AGENTS,
    services: SERVICES,
    endpoints: AGENTS * PER_AGENT,
    joinSeconds: joinS,
    initialSync: initial,
    changes,
    p50Ms: summarize(changes.map((c) => c.p50)),
    p99Ms: summarize(changes.map((c) => c.p99)),
    allAckedMs: summarize(changes.map((c) => c.max)),
    controlPlane: {
      rssMiBIdleConnected: rssBefore,
      rssMiBPeak: rssPeak,
      cpuSecondsDuringChanges: cpu,
      cpuShareDuringChanges: cpu / wall,
      perReplicaRssMiB,
    },
    etcd:
      ETCD_PIDS.length === 0
        ? undefined
        : {
            members: ETCD_PIDS.length,
            rssMiBIdleConnected: etcdRssBefore,
            rssMiBPeak: etcdRssPeak,
            cpuSecondsDuringChanges: etcdCpu,
            cpuShareDuringChanges: etcdCpu / wall,
            perMemberRssMiB,
          },
    killed,
    simulatorRssMiB: rssMiB(process.pid),
    unplannedMoves,
    version,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
  // Hold the streams (and so the loaded state) until the caller closes stdin.
  process.stdin.resume();
  process.stdin.on('end', () => {
    for (const a of agents) a.close();
    adminClient.close();
    setTimeout(() => process.exit(0), 200).unref();
  });
}

/**
 * Kills replica KILL_SERVER (SIGKILL) and waits until every agent that was on it has resumed
 * on another replica (its first message there); then one change through a survivor, acked by
 * every agent.
 */
async function killReplica(agents) {
  const on = agents.filter((a) => a.server === KILL_SERVER);
  const t = performance.now();
  killing = true;
  process.kill(KILL_PID, 'SIGKILL');
  const deadline = t + 120_000;
  while (on.some((a) => a.resumedAt <= t)) {
    if (performance.now() > deadline)
      throw new Error(`${on.filter((a) => a.resumedAt <= t).length} agents never resumed`);
    await new Promise((r) => setTimeout(r, 5));
  }
  const resumed = on.map((a) => a.resumedAt - t).sort((x, y) => x - y);
  const pct = (p) =>
    resumed[Math.min(resumed.length - 1, Math.ceil((p / 100) * resumed.length) - 1)];
  log(
    `replica ${KILL_SERVER} killed: its ${on.length} agents resumed elsewhere, all within ${resumed.at(-1).toFixed(0)} ms`,
  );
  const since = performance.now();
  const doc = serviceDoc(0, { labels: { bench: 'after-the-kill' } });
  await unary(adminClient, adminClient.apply, { resources: [asResource(doc)], source: 'bench' });
  const after = await allReceivedAfter(agents, since);
  return {
    server: KILL_SERVER,
    agents: on.length,
    resumedMs: { min: resumed[0], p50: pct(50), p99: pct(99), max: resumed.at(-1) },
    changeAfterKillMs: after,
  };
}

main().catch((err) => {
  log(`failed: ${err?.stack ?? err}`);
  process.exit(1);
});
