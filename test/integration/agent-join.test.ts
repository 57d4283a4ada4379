// How an agent that cannot join says so: a wrong CA pin, a used token, no token. Nothing is
// written to its data directory and /ready names the reason. Joining with a CA file instead
// of a pin works too. A host that has never joined and is refused for good stops trying and
// says why at once, through 'refused' and refusal(); an unreachable control plane is retried.
// install.sh and systemd rely on this: the agent exits with a status systemd does not restart
// on (src/agent/exit-status).
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAdminServer } from '../../src/agent/admin-server.js';
import type { ReadyView } from '../../src/agent/admin-views.js';
import { agentConfigSchema } from '../../src/agent/config.js';
import {
  type ControlPlaneSession,
  startControlPlaneSession,
} from '../../src/controlplane-client/session.js';
import type { WeftError } from '../../src/errors.js';
import { startControlPlane, type TestControlPlane } from '../helpers/controlplane.js';
import { createTestCa } from '../helpers/test-pki.js';
import { waitFor } from '../helpers/wait.js';

const log = pino({ level: process.env.WEFT_TEST_LOG ?? 'silent' });
let root: string;
let cp: TestControlPlane;
const sessions: ControlPlaneSession[] = [];

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'weft-agent-join-'));
  cp = await startControlPlane({ dataDir: join(root, 'cp') });
});

afterAll(async () => {
  for (const s of sessions) await s.stop();
  await cp?.stop();
  await rm(root, { recursive: true, force: true });
});

async function start(
  hostname: string,
  controlPlane: Record<string, string | undefined>,
): Promise<ControlPlaneSession> {
  const config = agentConfigSchema.parse({
    hostname,
    dataDir: join(root, hostname),
    addresses: ['127.0.0.1'],
    controlPlane: { address: cp.grpcAddress, ...controlPlane },
  });
  const session = await startControlPlaneSession(config, log, {
    backoff: { baseMs: 50, capMs: 200 },
  });
  sessions.push(session);
  return session;
}

describe('joining', () => {
  it('refuses a control plane that does not match the pin, writes nothing, and /ready says why', async () => {
    const token = await cp.createToken({ node: 'pin-wrong' });
    const session = await start('pin-wrong', { token, caPin: 'ab'.repeat(32) });
    const error = await waitFor('an error', () => session.status().lastError);
    expect(error).toMatch(
      /WEFT_E_DENIED: .*no certificate in its chain matches controlPlane\.caPin/,
    );
    expect(session.state).toBe('starting');
    expect(existsSync(join(root, 'pin-wrong', 'node.pem'))).toBe(false);

    const admin = await startAdminServer({ address: '127.0.0.1', port: 0, session });
    const res = await fetch(`http://127.0.0.1:${admin.port}/ready`);
    const body = (await res.json()) as ReadyView;
    await admin.close();
    expect(res.status).toBe(503);
    expect(body.reasons.join(' ')).toMatch(/no configuration yet.*caPin/);
  });

  it('says a used token was used, and by whom', async () => {
    const token = await cp.createToken({ node: 'first' });
    const caPin = cp.caPin;
    const first = await start('first', { token, caPin });
    await waitFor('first connected', () => (first.state === 'connected' ? true : undefined));
    const second = await start('second', { token, caPin });
    const error = await waitFor('an error', () => second.status().lastError);
    expect(error).toMatch(/WEFT_E_DENIED: join token \S+ was already used \(by first/);
    expect(second.certificates.node).toBeUndefined();
  });

  it('says what to do when the host has not joined and has no token', async () => {
    const session = await start('no-token', { caPin: cp.caPin });
    const error = await waitFor('an error', () => session.status().lastError);
    expect(error).toMatch(
      /WEFT_E_CONFIG: this host has not joined the mesh: put a token from `weft token create` in controlPlane\.token/,
    );
  });

  it('joins with a CA file instead of a pin', async () => {
    const caFile = join(root, 'ca.pem');
    await writeFile(caFile, cp.trustBundlePem);
    const token = await cp.createToken({ node: 'by-file' });
    const session = await start('by-file', { token, caFile });
    await waitFor('connected', () => (session.state === 'connected' ? true : undefined));
    expect(session.status().node?.spiffeId).toBe('spiffe://weft.local/node/by-file');
  });
});

/** The session's refusal: already recorded, or the next 'refused' event. */
async function refused(session: ControlPlaneSession): Promise<WeftError> {
  return session.refusal() ?? (await once(session, 'refused'))[0];
}

/** Join refusals the control plane counted, by reason (its /metrics). */
async function joinRefusals(reason: string): Promise<number> {
  const text = await (await fetch(`${cp.httpUrl}/metrics`)).text();
  const line = text
    .split('\n')
    .find((l) => l.includes('method="Join"') && l.includes(`reason="${reason}"`));
  return line === undefined ? 0 : Number(line.split(' ').pop());
}

describe('a join refused for good', () => {
  it('an unknown token: the session gives up with the control plane reason', async () => {
    const session = await start('unknown-token', {
      token: `${'0'.repeat(12)}.${'A'.repeat(32)}`,
      caPin: cp.caPin,
    });
    const err = await refused(session);
    expect(err.code).toBe('WEFT_E_DENIED');
    expect(err.message).toMatch(/unknown join token/);
    expect(session.status().lastError).toMatch(/unknown join token/);
    expect(session.state).toBe('starting');
    expect(session.certificates.node).toBeUndefined();
  });

  it('a used token: refused once, not retried; a good token joins at once after it', async () => {
    const token = await cp.createToken({ node: 'first-user' });
    const first = await start('first-user', { token, caPin: cp.caPin });
    await new Promise((resolve) => first.once('state', resolve));
    const before = await joinRefusals('token_used');
    const second = await start('second-user', { token, caPin: cp.caPin });
    expect((await refused(second)).message).toMatch(/was already used \(by first-user/);
    // The sentinel: a later session joins and connects; by then a session still retrying with
    // a 50-200 ms backoff would have been refused again.
    const good = await start('third-user', {
      token: await cp.createToken({ node: 'third-user' }),
      caPin: cp.caPin,
    });
    await new Promise((resolve) => good.once('state', resolve));
    expect(good.state).toBe('connected');
    expect(await joinRefusals('token_used')).toBe(before + 1);
  });

  it('a CA pin that the control plane does not match', async () => {
    const session = await start('pin-mismatch', {
      token: await cp.createToken({ node: 'pin-mismatch' }),
      caPin: 'ab'.repeat(32),
    });
    expect((await refused(session)).message).toMatch(/no certificate in its chain matches/);
  });

  it('a CA file that does not trust the control plane', async () => {
    const caFile = join(root, 'other-ca.pem');
    await writeFile(caFile, (await createTestCa()).certPem);
    const session = await start('ca-file-wrong', {
      token: await cp.createToken({ node: 'ca-file-wrong' }),
      caFile,
    });
    expect((await refused(session)).message).toMatch(/is not trusted by controlPlane\.caFile/);
  });

  it('no token in the config: a config error (the agent exits with EX_CONFIG)', async () => {
    const session = await start('no-token-at-all', { caPin: cp.caPin });
    const err = await refused(session);
    expect(err.code).toBe('WEFT_E_CONFIG');
    expect(err.message).toMatch(/put a token from `weft token create` in controlPlane\.token/);
  });
});

describe('a control plane that cannot be reached', () => {
  let server: Server;
  let connections = 0;

  beforeAll(async () => {
    // Accepts and hangs up: every attempt fails the same way a crashed control plane would.
    server = createServer((socket) => {
      connections += 1;
      socket.destroy();
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
  });

  afterAll(() => server?.close());

  it('is retried, not refused', async () => {
    const port = (server.address() as { port: number }).port;
    const session = await start('unreachable', {
      address: `127.0.0.1:${port}`,
      token: await cp.createToken({ node: 'unreachable' }),
      caPin: cp.caPin,
    });
    await waitFor('three attempts to reach the control plane', () => connections >= 3);
    expect(session.refusal()).toBeUndefined();
    expect(session.status().lastError).toMatch(/WEFT_E_UNAVAILABLE/);
  });
});
