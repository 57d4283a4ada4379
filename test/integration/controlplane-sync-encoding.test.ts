// Compressed full snapshots on a real control plane over mTLS (proto fields from 50): an agent
// that announces zstd gets its snapshot compressed, a fraction of the bytes an agent of the
// previous release gets plain on the same control plane, and both hold every resource; the
// agent's real session code applies the compressed snapshot, acknowledges it and takes the
// deltas after it.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentConfigSchema } from '../../src/agent/config.js';
import { WeftAdminClient } from '../../src/api/admin-client.js';
import type { SyncRequest, SyncResponse } from '../../src/api/messages.js';
import { CONTROL_PLANE_CHANNEL_OPTIONS, PROTO_FILE, PROTO_OPTIONS } from '../../src/api/proto.js';
import { acceptedEncodings, inflateResponse } from '../../src/api/sync-encoding.js';
import { controlPlaneCredentials } from '../../src/api/tls.js';
import {
  type ControlPlaneSession,
  startControlPlaneSession,
} from '../../src/controlplane-client/session.js';
import {
  joinNode,
  type NodeCredentials,
  startControlPlane,
  type TestControlPlane,
} from '../helpers/controlplane.js';
import { waitFor } from '../helpers/wait.js';

const log = pino({ level: process.env.WEFT_TEST_LOG ?? 'silent' });
const SERVICES = 400;

interface Codec {
  serializeRequest(m: SyncRequest): Buffer;
  deserializeResponse(b: Buffer): SyncResponse;
}

function codecOf(protoFile: string): Codec {
  const pkg = grpc.loadPackageDefinition(
    protoLoader.loadSync(protoFile, PROTO_OPTIONS),
  ) as never as {
    weft: { v1: { Sync: { service: grpc.ServiceDefinition } } };
  };
  const s = pkg.weft.v1.Sync.service.Stream!;
  return {
    serializeRequest: s.requestSerialize as Codec['serializeRequest'],
    deserializeResponse: s.responseDeserialize as Codec['deserializeResponse'],
  };
}

let root: string;
let cp: TestControlPlane;
let admin: WeftAdminClient;
let NEW: Codec;
let OLD: Codec;

const service = (i: number) => {
  const name = `svc-${String(i).padStart(4, '0')}`;
  const doc = {
    apiVersion: 'weft/v1',
    kind: 'Service',
    metadata: { name },
    spec: { ports: [{ port: 80, targetPort: 8000, protocol: 'http' }] },
  };
  return { kind: 'Service', name, json: JSON.stringify(doc), revision: 0 };
};

/** The first response of a raw sync stream, as bytes, after a Hello written with `codec`. */
async function firstResponse(
  creds: NodeCredentials,
  codec: Codec,
  hello: SyncRequest['hello'],
): Promise<Buffer> {
  const client = new grpc.Client(
    cp.grpcAddress,
    controlPlaneCredentials(
      { caPem: cp.trustBundlePem, keyPem: creds.keyPem, certPem: creds.certificatePem },
      cp.trustDomain,
    ),
    CONTROL_PLANE_CHANNEL_OPTIONS,
  );
  try {
    const call = client.makeBidiStreamRequest(
      '/weft.v1.Sync/Stream',
      codec.serializeRequest,
      (b: Buffer) => b,
    );
    const first = new Promise<Buffer>((resolve, reject) => {
      call.once('data', resolve);
      call.once('error', reject);
    });
    call.write({ hello });
    const buf = await first;
    call.cancel();
    return buf;
  } finally {
    client.close();
  }
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'weft-sync-enc-'));
  // The previous release's proto: this one without the fields numbered 50 and up.
  const oldProto = join(root, 'weft-previous.proto');
  await writeFile(
    oldProto,
    (await readFile(PROTO_FILE, 'utf8'))
      .split('\n')
      .filter((l) => !/=\s*5\d\s*;/.test(l))
      .join('\n'),
  );
  NEW = codecOf(PROTO_FILE);
  OLD = codecOf(oldProto);
  cp = await startControlPlane({ config: { syncCoalesce: '20ms' } });
  admin = WeftAdminClient.open({ server: cp.grpcAddress, credentialsDir: cp.adminCredentials.dir });
  await admin.apply(
    Array.from({ length: SERVICES }, (_, i) => service(i)),
    'services.yaml',
  );
});

afterAll(async () => {
  admin?.close();
  await cp?.stop({ removeDataDir: true });
  await rm(root, { recursive: true, force: true });
});

describe('compressed full snapshots', () => {
  it('an agent announcing zstd gets its snapshot compressed, under a quarter of what an agent of the previous release gets plain; both hold every service', async () => {
    const creds = await joinNode(cp, 'node-new');
    const oldCreds = await joinNode(cp, 'node-old');
    const packed = await firstResponse(creds, NEW, {
      version: 0,
      agentVersion: 'test',
      acceptEncodings: acceptedEncodings(),
    });
    const plain = await firstResponse(oldCreds, OLD, { version: 0, agentVersion: 'old' });

    const outer = NEW.deserializeResponse(packed);
    expect(outer).toMatchObject({ full: true, encoding: 'zstd', upserts: [] });
    expect(packed.length * 4).toBeLessThan(plain.length);
    const inflated = inflateResponse(outer, NEW.deserializeResponse);
    const old = OLD.deserializeResponse(plain);
    expect(old.version).toBe(outer.version);
    expect(old.full).toBe(true);
    const servicesIn = (m: SyncResponse) =>
      m.upserts.filter((u) => u.kind === 'Service').map((u) => u.name);
    expect(servicesIn(inflated)).toHaveLength(SERVICES);
    expect(servicesIn(inflated).sort()).toEqual(servicesIn(old).sort());
    expect(inflated.trustBundlePem).toBe(old.trustBundlePem);
    expect(inflated.trustBundlePem).toContain('BEGIN CERTIFICATE');
  });

  describe('the agent session', () => {
    let session: ControlPlaneSession;

    afterAll(async () => {
      await session?.stop();
    });

    it('applies the compressed snapshot, acknowledges it, then takes a delta after it', async () => {
      const token = await cp.createToken({ node: 'node-a' });
      const config = agentConfigSchema.parse({
        hostname: 'node-a',
        dataDir: join(root, 'agent'),
        addresses: ['127.0.0.1'],
        controlPlane: { address: cp.grpcAddress, token, caPin: cp.caPin },
        workloads: [],
        heartbeatIntervalMs: 500,
      });
      session = await startControlPlaneSession(config, log, {
        backoff: { baseMs: 50, capMs: 400 },
      });
      const services = () =>
        [...(session.snapshot()?.resources.values() ?? [])].filter((r) => r.kind === 'Service');
      await waitFor('every service in the agent', () =>
        services().length === SERVICES ? true : undefined,
      );
      const version = session.snapshot()!.version;
      await waitFor('the control plane records the ack', async () => {
        const nodes = await admin.listNodes();
        return nodes.find((n) => n.name === 'node-a')?.ackedVersion === version ? true : undefined;
      });

      await admin.apply([service(SERVICES)], 'one-more.yaml');
      await waitFor('the delta with one more service', () =>
        services().length === SERVICES + 1 ? true : undefined,
      );
      expect(session.snapshot()!.version).toBeGreaterThan(version);
    });
  });
});
