// The receiving agent's h2c sessions to a local app, on loopback against real Node h2c apps:
// streams past the app's SETTINGS_MAX_CONCURRENT_STREAMS on one connection go out on another
// session instead of waiting inside the agent behind the app's limit (a held request must not
// stall the next one), and an app with room keeps one session.
import { once } from 'node:events';
import { createServer as createH2Server, type Http2Server } from 'node:http2';
import { Readable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalConnector } from '../../src/proxy/endpoint/connect-local.js';
import { LocalApps } from '../../src/proxy/http/local-app.js';
import type { L7Request } from '../../src/proxy/http/types.js';
import { waitFor } from '../helpers/wait.js';

const APP = '127.0.0.1';

/** What each app saw: streams opened, the connections they came on. */
interface AppSeen {
  port: number;
  paths: string[];
  connections: number;
  /** Held requests, answered when the test says. */
  held: Array<() => void>;
}

const servers: Http2Server[] = [];
let apps: LocalApps;

async function startApp(maxConcurrentStreams?: number): Promise<AppSeen> {
  const seen: AppSeen = { port: 0, paths: [], connections: 0, held: [] };
  const s = createH2Server(
    maxConcurrentStreams === undefined ? {} : { settings: { maxConcurrentStreams } },
  );
  s.on('connection', () => {
    seen.connections += 1;
  });
  s.on('stream', (stream, headers) => {
    const path = String(headers[':path']);
    seen.paths.push(path);
    stream.resume();
    const answer = () => {
      stream.respond({ ':status': 200 });
      stream.end(`answered ${path}`);
    };
    if (path.startsWith('/held')) seen.held.push(answer);
    else answer();
  });
  s.listen(0, APP);
  await once(s, 'listening');
  servers.push(s);
  seen.port = (s.address() as { port: number }).port;
  return seen;
}

function get(path: string): L7Request {
  return {
    method: 'GET',
    authority: 'app.mesh',
    path,
    headers: {},
    body: Readable.from([]),
    version: '2',
    signal: new AbortController().signal,
  };
}

async function text(app: AppSeen, path: string): Promise<string> {
  const { response } = await apps.send({ address: APP, port: app.port }, undefined, '2', get(path));
  const chunks: Buffer[] = [];
  for await (const chunk of response.body) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString();
}

beforeAll(() => {
  const log = pino({ level: 'silent' });
  const local = new LocalConnector({
    preserve: false,
    ipv6: false,
    mark: 0,
    socketOps: {
      transparentConnect: () => {
        throw new Error('preserve is off: no transparent connect may be attempted');
      },
    },
    log,
  });
  apps = new LocalApps({ local, connectTimeoutMs: 5_000 });
});

afterAll(() => {
  apps?.close();
  for (const s of servers) s.close();
});

describe('h2c sessions to a local app', () => {
  it("opens another session past the app's stream limit: a held request does not stall the next", async () => {
    const app = await startApp(1);
    const first = text(app, '/held-1');
    first.catch(() => {}); // awaited below; on failure the teardown resets it first
    await waitFor('the app to see the held request', () => app.held.length === 1);
    // The app allows one stream per connection: on one session this one would wait for the first.
    const second = text(app, '/second');
    await waitFor('the app to see the second request while the first is held', () =>
      app.paths.includes('/second'),
    );
    expect(await second).toBe('answered /second');
    expect(app.connections).toBe(2);
    app.held[0]?.();
    expect(await first).toBe('answered /held-1');
  });

  it('keeps one session while the app has room for every stream', async () => {
    const app = await startApp();
    const held = Array.from({ length: 20 }, (_, i) => text(app, `/held-${i}`));
    await waitFor('the app to see 20 requests at once', () => app.held.length === 20);
    for (const answer of app.held) answer();
    expect(await Promise.all(held)).toHaveLength(20);
    expect(app.connections).toBe(1);
  });
});
