// The agent's local tap endpoint: HTTP over a unix socket, mode 0600 in a directory of mode
// 0700, both the agent user's. Why not the admin port (127.0.0.1:15000): any local user can
// reach a loopback port, and a tap shows paths and headers; a socket file's permissions let
// only the agent's user and root in, with no credential to issue, rotate or leak.
//   GET /tap?service=&path=&method=&status=&source=&headers=1&rate=N
// answers NDJSON: a first line {"tap": "open", ...}, then one JSON tap record per line, and
// {"dropped": N} lines when the count of dropped records changes; the tap ends when the
// client goes away.
import { chmod, mkdir, rm } from 'node:fs/promises';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import { describeError, WeftError } from '../errors.js';
import { createServer } from '../sys/node-http.js';
import { parseTapFilter, tapFilterMessage } from './tap-filter.js';
import type { TapHub } from './tap-hub.js';

export interface TapSocket {
  readonly path: string;
  close(): Promise<void>;
}

export async function startTapSocket(
  path: string,
  hub: TapHub,
  options: { node: string; log?: Logger },
): Promise<TapSocket> {
  const dir = dirname(path);
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    // mkdir's mode is filtered by the umask and does not apply to a directory that existed.
    await chmod(dir, 0o700);
    await rm(path, { force: true }); // a socket file left by an agent that did not stop cleanly
  } catch (err) {
    throw new WeftError(
      'WEFT_E_CONFIG',
      `tap.socket: cannot prepare ${path}: ${describeError(err)} (the agent's user must own its directory)`,
    );
  }
  const server = createServer((req, res) => serveTap(hub, options, req, res));
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        new WeftError(
          'WEFT_E_CONFIG',
          `tap.socket: cannot listen on ${path}: ${err.code ?? err.message}`,
        ),
      ),
    );
    server.listen(path, () => resolve());
  });
  await chmod(path, 0o600);
  options.log?.info({ path }, 'tap socket listening');
  return { path, close: () => closeServer(server, path) };
}

function serveTap(
  hub: TapHub,
  options: { node: string; log?: Logger },
  req: IncomingMessage,
  res: ServerResponse,
): void {
  const url = new URL(req.url ?? '/', 'http://tap');
  if (req.method !== 'GET' || url.pathname !== '/tap') {
    fail(res, 404, 'the tap socket answers GET /tap only');
    return;
  }
  const q = url.searchParams;
  let filter: ReturnType<typeof parseTapFilter>;
  try {
    filter = parseTapFilter({
      service: q.get('service') ?? '',
      pathPrefix: q.get('path') ?? '',
      method: q.get('method') ?? '',
      status: q.get('status') ?? '',
      source: q.get('source') ?? '',
      headers: q.get('headers') === '1',
      maxPerSecond: q.has('rate') ? Number(q.get('rate')) : 0,
    });
  } catch (err) {
    fail(res, 400, (err as Error).message);
    return;
  }
  res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
  const line = (value: unknown) => {
    // A reader that does not keep up loses records (counted in its dropped lines), never holds them:
    // past the socket's buffer the tap writes nothing until it drains.
    if (res.writableNeedDrain) return false;
    res.write(`${JSON.stringify(value)}\n`);
    return true;
  };
  line({ tap: 'open', node: options.node, filter: tapFilterMessage(filter) });
  // Records the socket could not take, added to the hub's dropped count when reported.
  let unwritten = 0;
  let hubDropped = 0;
  const reportDropped = () => line({ dropped: hubDropped + unwritten });
  const tap = hub.open(filter, {
    records: (batch) => {
      for (const r of batch) if (!line(r)) unwritten += 1;
    },
    dropped: (total) => {
      hubDropped = total;
      reportDropped();
    },
  });
  res.on('drain', () => {
    if (unwritten > 0) reportDropped();
  });
  options.log?.info({ tap: tap.id, filter: tapFilterMessage(filter) }, 'local tap opened');
  res.on('close', () => {
    tap.close();
    options.log?.info({ tap: tap.id }, 'local tap closed');
  });
}

function fail(res: ServerResponse, status: number, error: string): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(`${JSON.stringify({ error })}\n`);
}

function closeServer(server: Server, path: string): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => {
      rm(path, { force: true }).then(
        () => resolve(),
        () => resolve(),
      );
    });
    // A tap is a long response: end it, do not wait for the reader to leave.
    server.closeAllConnections();
  });
}
