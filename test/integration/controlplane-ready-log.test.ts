// The control plane's "ready" line says what it really listens on (a wildcard stays a wildcard:
// agents on other hosts reach it there) and the addresses it advertises in its certificate.
import { mkdtempSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { parseControlPlaneConfig } from '../../src/controlplane/config.js';
import { ControlPlane } from '../../src/controlplane/control-plane.js';

const dataDir = mkdtempSync(join(tmpdir(), 'weft-cp-ready-log-'));
let cp: ControlPlane | undefined;

afterAll(async () => {
  await cp?.stop();
  await rm(dataDir, { recursive: true, force: true });
});

describe('the control plane ready line', () => {
  it('names the wildcard listen address with the bound ports, and the advertised names', async () => {
    const lines: Record<string, unknown>[] = [];
    const sink = new Writable({
      write(chunk, _encoding, done) {
        for (const text of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(text));
        done();
      },
    });
    const config = parseControlPlaneConfig(
      {
        dataDir,
        listen: '0.0.0.0',
        grpcPort: 0,
        httpPort: 0,
        advertise: ['10.9.8.7', 'cp.example'],
      },
      'test config',
    );
    cp = await ControlPlane.start({ config, log: pino(sink), defaultMetrics: false });
    const ready = lines.find((l) => l.msg === 'control plane ready');
    expect(ready).toMatchObject({
      listen: { grpc: `0.0.0.0:${cp.grpcPort}`, http: `0.0.0.0:${cp.httpPort}` },
      advertise: ['10.9.8.7', 'cp.example'],
    });
    expect(JSON.stringify(ready)).not.toContain('127.0.0.1');
  });
});
