// The admin endpoint's contract that does not need a control plane: liveness, readiness
// following the listeners, standalone mode (no control plane configured), and its refusals.
import { afterEach, describe, expect, it } from 'vitest';
import { type AdminServer, startAdminServer } from '../../src/agent/admin-server.js';

let server: AdminServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

async function get(path: string, method = 'GET') {
  const res = await fetch(`http://127.0.0.1:${server!.port}${path}`, { method });
  return {
    status: res.status,
    type: res.headers.get('content-type'),
    body: (await res.json()) as Record<string, unknown>,
  };
}

describe('admin endpoint without a control plane', () => {
  it('is live, and ready once the listeners are up, as a standalone relay', async () => {
    let up = false;
    server = await startAdminServer({ address: '127.0.0.1', port: 0, listenersReady: () => up });
    expect(await get('/live')).toMatchObject({
      status: 200,
      type: 'application/json',
      body: { live: true },
    });
    const notYet = await get('/ready');
    expect(notYet.status).toBe(503);
    expect(notYet.body).toMatchObject({
      ready: false,
      state: 'standalone',
      reasons: ['the traffic listeners are not up yet'],
    });
    up = true;
    expect(await get('/ready')).toMatchObject({
      status: 200,
      body: { ready: true, state: 'standalone', stale: false },
    });
    expect((await get('/config_dump')).body).toMatchObject({
      state: 'standalone',
      version: 0,
      resources: [],
    });
    expect((await get('/certs')).body).toEqual({ certificates: [] });
    expect((await get('/endpoints')).body).toEqual({ version: 0, services: {} });
  });

  it('answers 404 for unknown pages and 405 for anything but GET', async () => {
    server = await startAdminServer({ address: '127.0.0.1', port: 0 });
    expect((await get('/nope')).status).toBe(404);
    expect((await get('/ready', 'POST')).status).toBe(405);
  });

  it('says which address it could not listen on', async () => {
    server = await startAdminServer({ address: '127.0.0.1', port: 0 });
    await expect(startAdminServer({ address: '127.0.0.1', port: server.port })).rejects.toThrow(
      new RegExp(`admin: cannot listen on 127\\.0\\.0\\.1:${server.port}: EADDRINUSE`),
    );
  });
});
