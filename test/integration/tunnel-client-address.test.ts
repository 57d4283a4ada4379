// The original client's address crosses the tunnel (issue 11, item 4): the pool sends it as
// weft-client-addr, the receiving server hands it to its local connect and records it, and
// logs it as `src` with the tunnel's own address as `peer`. A peer that sends garbage in it is
// refused with 400 before anything is connected. On loopback, with real TLS.
import { connect as h2connect } from 'node:http2';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tunnelAccessRecorder } from '../../src/proxy/inbound/tunnel-inbound.js';
import { MeshState } from '../../src/proxy/mesh-state.js';
import { Telemetry } from '../../src/proxy/telemetry.js';
import { computedTraffic } from '../../src/proxy/traffic-policies.js';
import {
  CLIENT_ADDRESS_HEADER,
  type ConnectTarget,
  connectLocal,
  type TunnelAccessRecord,
  type TunnelPool,
  type TunnelServer,
  type TunnelTarget,
} from '../../src/proxy/tunnel/index.js';
import {
  echoTarget,
  type MeshPki,
  meshPki,
  newPool,
  readAll,
  source,
  startServer,
  type Target,
} from './tunnel-fixture.js';

let pki: MeshPki;
let echo: Target;
let server: TunnelServer;
let pool: TunnelPool;
const records: TunnelAccessRecord[] = [];
/** The client each local connect was asked to connect from. */
const connectedFor: Array<TunnelTarget | undefined> = [];
const logged: Array<Record<string, unknown>> = [];

beforeAll(async () => {
  pki = await meshPki();
  echo = await echoTarget();
  const connect: ConnectTarget = (target, opts) => {
    connectedFor.push(opts.client);
    return connectLocal(target, opts);
  };
  // The agent's access log, captured as the lines pino writes.
  const log = pino({ level: 'info' }, { write: (line: string) => logged.push(JSON.parse(line)) });
  const recorder = tunnelAccessRecorder(
    new MeshState('node-b', computedTraffic()),
    new Telemetry(new Registry(), log),
  );
  server = await startServer(pki, {
    connect,
    onStream: (start) => {
      const done = recorder(start);
      return (r) => {
        records.push(r);
        done?.(r);
      };
    },
  });
  pool = newPool(pki);
});

afterAll(async () => {
  pool?.destroy();
  server?.destroy();
  await echo?.close();
});

function open(client?: TunnelTarget) {
  return pool.open({
    source: source(pki.client),
    peer: { address: '127.0.0.1', port: server.port, expectedSpiffeId: pki.server.spiffeId },
    target: { address: '127.0.0.1', port: echo.port },
    ...(client ? { client } : {}),
  });
}

describe('weft-client-addr', () => {
  it("travels from the pool to the receiving agent, which uses it only from the peer's own address", async () => {
    // The peer's tunnel comes from 127.0.0.1 here, so a client of 10.77.0.2 is a claim it
    // cannot vouch for: kept in the record, never connected from. (Lab hosts, where the
    // peer's address is the client host's, test the claim that is used:
    // test/lab/client-address.test.ts.)
    const client = { address: '10.77.0.2', port: 40312 };
    const stream = await open(client);
    stream.end('ping');
    expect((await readAll(stream)).toString()).toBe('ping');
    await expect.poll(() => records.length).toBe(1);
    expect(connectedFor).toEqual([undefined]);
    expect(records[0]).toMatchObject({ status: 200, clientUnverified: client });
    expect(records[0]!.client).toBeUndefined();
  });

  it('an unverified claim is logged apart, src stays the tunnel peer', async () => {
    await expect.poll(() => logged.filter((l) => l.msg === 'connection').length).toBe(1);
    const line = logged.find((l) => l.msg === 'connection')!;
    expect(String(line.src)).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(line.src).toBe(line.peer);
    expect(line.src_claimed).toBe('10.77.0.2:40312');
  });

  it("without it, src is the tunnel peer's address", async () => {
    const stream = await open();
    stream.end('x');
    await readAll(stream);
    await expect.poll(() => records.length).toBe(2);
    expect(records[1]!.client).toBeUndefined();
    expect(connectedFor[1]).toBeUndefined();
    await expect.poll(() => logged.filter((l) => l.msg === 'connection').length).toBe(2);
    const line = logged.filter((l) => l.msg === 'connection')[1]!;
    expect(line.src).toBe(line.peer);
  });

  it('refuses garbage with 400 and a reason, before connecting anything', async () => {
    const session = h2connect(`https://127.0.0.1:${server.port}`, {
      ca: pki.ca.certPem,
      key: pki.client.keyPem,
      cert: pki.client.certPem,
      checkServerIdentity: () => undefined,
    });
    try {
      const answer = (value: string) =>
        new Promise<{ status: number; reason: unknown }>((resolve, reject) => {
          const req = session.request(
            {
              ':method': 'CONNECT',
              ':authority': `127.0.0.1:${echo.port}`,
              [CLIENT_ADDRESS_HEADER]: value,
            },
            { endStream: false },
          );
          req.once('response', (h) =>
            resolve({ status: Number(h[':status']), reason: h['weft-reason'] }),
          );
          req.once('error', reject);
          req.resume();
        });
      const before = connectedFor.length;
      for (const value of ['10.77.0.2', '127.0.0.1:80', '[::ffff:10.77.0.2]:80', 'x'.repeat(60)]) {
        const r = await answer(value);
        expect(r.status, value).toBe(400);
        expect(String(r.reason), value).toMatch(/^weft-client-addr /);
      }
      // The sentinel: a well-formed one on the same session is connected (from the agent's
      // address: the peer, on 127.0.0.1, cannot vouch for 10.77.0.9), and it is the only one.
      const ok = await answer('10.77.0.9:1234');
      expect(ok.status).toBe(200);
      expect(connectedFor.slice(before)).toEqual([undefined]);
    } finally {
      session.destroy();
    }
  });

  it('is checked by the pool before it is sent', async () => {
    await expect(open({ address: 'node1', port: 1 })).rejects.toMatchObject({
      code: 'WEFT_E_USAGE',
    });
  });
});
