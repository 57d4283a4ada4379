// Scenario 6: many simulated agents against one real control plane. Each simulated agent is a
// node joined with its own token and key (a real Join), registers its workloads, and keeps one
// Sync stream with its own node certificate, acknowledging every version as a real agent does
// and sending heartbeats. Responses are not decoded beyond their version (field 1): the cost
// measured is the control plane's fan-out, not this process's parsing.
// Usage (as root on the control plane host): node sim-agents.mjs --server 127.0.0.1:15012
//   --credentials DIR --cp-pid PID --agents 1000 --services 1000 --per-agent 10 --changes 6
//   --real-nodes client,server [--wave N (default: all at once)]
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
const CP_PID = Number(args['cp-pid']);
const SERVER = args.server ?? '127.0.0.1:15012';
const REAL_NODES = (args['real-nodes'] ?? '').split(',').filter(Boolean);
const HEARTBEAT_MS = 5_000;
const WAVE = Number(args.wave ?? AGENTS);

const log = (msg) => process.stderr.write(`[sim] ${msg}\n`);
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

async function applyServices() {
  for (let start = 0; start < SERVICES; start += 250) {
    const docs = [];
    for (let k = start; k < Math.min(SERVICES, start + 250); k++) docs.push(serviceDoc(k));
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
  const identity = new proto.Identity(SERVER, anon, CONTROL_PLANE_CHANNEL_OPTIONS);
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
    const res = await unary(identity, identity.join, {
      token,
      hostname,
      csrPem,
      addresses: [nodeAddress(i)],
      zone: '',
    });
    return { i, hostname, keyPem, certPem: res.certificatePem };
  });
  identity.close();
  return nodes;
}

class SimAgent {
  constructor(node) {
    this.node = node;
    const creds = controlPlaneCredentials(
      { caPem: admin.caPem, certPem: node.certPem, keyPem: node.keyPem },
      td,
    );
    this.identity = new proto.Identity(SERVER, creds, CONTROL_PLANE_CHANNEL_OPTIONS);
    this.client = new grpc.Client(SERVER, creds, CONTROL_PLANE_CHANNEL_OPTIONS);
    this.version = 0;
    this.receivedAt = 0;
    this.names = [];
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
      this.version = versionOf(buf);
      this.receivedAt = performance.now();
      this.call.write({ ack: { version: this.version } });
    });
    this.call.on('error', (err) => {
      if (!this.closing) log(`${this.node.hostname}: stream error: ${err.message}`);
    });
    this.call.write({ hello: { version: 0, agentVersion: 'bench-sim' } });
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
    clearTimeout(this.heartbeat);
    clearInterval(this.heartbeat);
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
  const cpu0 = cpuSeconds(CP_PID);
  const tOpen = performance.now();
  let initialRssPeak = rssMiB(CP_PID);
  const initialSampler = setInterval(() => {
    initialRssPeak = Math.max(initialRssPeak, rssMiB(CP_PID));
  }, 250);
  for (let w = 0; w < agents.length; w += WAVE) {
    const wave = agents.slice(w, w + WAVE);
    const t = performance.now();
    for (const a of wave) a.open();
    await allReceivedAfter(wave, t, 300_000);
  }
  clearInterval(initialSampler);
  initialRssPeak = Math.max(initialRssPeak, rssMiB(CP_PID));
  const initial = {
    seconds: (performance.now() - tOpen) / 1000,
    wave: WAVE,
    cpuSeconds: cpuSeconds(CP_PID) - cpu0,
    rssMiBPeak: initialRssPeak,
  };
  log(
    `initial sync: ${AGENTS} agents (${WAVE >= AGENTS ? 'all at once' : `in waves of ${WAVE}`}) acked in ${initial.seconds.toFixed(1)} s`,
  );
  await new Promise((r) => setTimeout(r, 1_000)); // let acks and first heartbeats settle

  const rssBefore = rssMiB(CP_PID);
  let rssPeak = rssBefore;
  const sampler = setInterval(() => {
    rssPeak = Math.max(rssPeak, rssMiB(CP_PID));
  }, 100);
  const changes = [];
  const cpuStart = cpuSeconds(CP_PID);
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
  const cpu = cpuSeconds(CP_PID) - cpuStart;
  clearInterval(sampler);

  const version = Math.max(...agents.map((a) => a.version));
  const realStart = performance.now();
  while (!(await realNodesAcked(version))) {
    if (performance.now() - realStart > 60_000) throw new Error('the real agents never acked');
    await new Promise((r) => setTimeout(r, 250));
  }
  const result = {
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
    },
    simulatorRssMiB: rssMiB(process.pid),
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

main().catch((err) => {
  log(`failed: ${err?.stack ?? err}`);
  process.exit(1);
});
