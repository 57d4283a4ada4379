// How an agent that cannot join says so: a wrong CA pin, a used token, no token. Nothing is
// written to its data directory and /ready names the reason. Joining with a CA file instead
// of a pin works too.
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
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
import { startControlPlane, type TestControlPlane } from '../helpers/controlplane.js';
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
