// What a real agent pays to read scenario 6's full snapshot (1,000 services, 10,000 endpoints)
// in each form the control plane may send it: plain (an agent that announced no encoding) or
// compressed (zstd, gzip). The wire bytes come from the control plane's own encoder
// (EncodedResponse); each form is read in a fresh process by the agent's own path (the
// SyncResponse deserializer grpc-js runs, then toDelta, which inflates a compressed body):
// CPU per read, and the process's RSS and V8 heap before and after one read whose result is
// kept, as an agent keeps it until the snapshot is applied.
// Usage: node bench/decode-snapshot.mjs [SERVICES] [READS]   (after `npm run build`)
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadProto } from '../dist/api/proto.js';
import { EncodedResponse } from '../dist/controlplane/sync/encoded-response.js';
import { toDelta } from '../dist/controlplane-client/sync-stream.js';

const [mode, ...rest] = process.argv.slice(2);
const stream = () => loadProto().Sync.service.Stream;

if (mode === '--child') {
  const [file, reads] = rest;
  const wire = readFileSync(file);
  const mib = (x) => x / 1048576;
  global.gc?.();
  const before = process.memoryUsage();
  // The read an agent keeps until the snapshot is applied.
  const kept = toDelta(stream().responseDeserialize(wire));
  global.gc?.();
  const after = process.memoryUsage();
  const t0 = process.cpuUsage();
  for (let i = 0; i < Number(reads); i++) toDelta(stream().responseDeserialize(wire));
  const cpu = process.cpuUsage(t0);
  process.stdout.write(
    `${JSON.stringify({
      upserts: kept.upserts.length,
      msPerRead: (cpu.user + cpu.system) / 1000 / Number(reads),
      rssMiB: mib(after.rss - before.rss),
      heapMiB: mib(after.heapUsed - before.heapUsed),
      externalMiB: mib(after.external + after.arrayBuffers - before.external - before.arrayBuffers),
    })}\n`,
  );
  process.exit(0);
}

const services = Number(mode ?? 1000);
const reads = Number(rest[0] ?? 20);
const doc = (kind, name, spec) => ({
  kind,
  name,
  json: JSON.stringify({ apiVersion: 'weft/v1', kind, metadata: { name }, spec }),
  revision: 1,
});
const upserts = [];
for (let k = 0; k < services; k++)
  upserts.push(
    doc('Service', `sim-${String(k).padStart(4, '0')}`, {
      ports: [{ port: 80, targetPort: 8000, protocol: 'http' }],
    }),
  );
for (let i = 0; i < services; i++)
  for (let j = 0; j < 10; j++)
    upserts.push(
      doc('Workload', `simnode${i}-w${j}`, {
        service: `sim-${String((i * 10 + j) % services).padStart(4, '0')}`,
        node: `simnode${i}`,
        address: `127.1.${Math.floor(i / 250)}.${(i % 250) + 1}`,
        port: 8000,
        health: 'healthy',
        weight: 1,
        zone: '',
      }),
    );
const dir = mkdtempSync(join(tmpdir(), 'weft-decode-'));
try {
  console.log(
    '| form | bytes on the wire | encode once (ms) | read (ms CPU) | kept: RSS / heap / external (MiB) |',
  );
  console.log('|---|---|---|---|---|');
  for (const form of [undefined, 'zstd', 'gzip']) {
    const t0 = performance.now();
    const wire = new EncodedResponse(
      { version: 1, baseVersion: 0, full: true, upserts, removals: [], trustBundlePem: '' },
      stream().responseSerialize,
    ).bytes(form);
    const encodeMs = performance.now() - t0;
    const file = join(dir, `${form ?? 'plain'}.bin`);
    writeFileSync(file, wire);
    const r = JSON.parse(
      execFileSync(
        process.execPath,
        ['--expose-gc', fileURLToPath(import.meta.url), '--child', file, String(reads)],
        { encoding: 'utf8' },
      ),
    );
    if (r.upserts !== upserts.length) throw new Error(`${form}: read ${r.upserts} upserts`);
    console.log(
      `| ${form ?? 'plain'} | ${wire.length} | ${encodeMs.toFixed(0)} | ${r.msPerRead.toFixed(1)} | ${r.rssMiB.toFixed(1)} / ${r.heapMiB.toFixed(1)} / ${r.externalMiB.toFixed(1)} |`,
    );
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
