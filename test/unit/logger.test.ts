// The logger batches lines and writes them off the event loop: a line must still reach stdout
// while the process lives (the flush timer), and flushLogs must get every line out before an
// explicit exit (the agent exits that way after SIGTERM). The children run the build of this
// tree (dist/, made by the run's global setup): plain node cannot import the TypeScript.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const LOGGER = fileURLToPath(new URL('../../dist/sys/logger.js', import.meta.url));

interface Run {
  lines: string[];
  code: number | null;
}

function runChild(body: string): Promise<Run> {
  const script = `const { createLogger, flushLogs, lineWriter } = await import(${JSON.stringify(LOGGER)});\n${body}`;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ lines: out.split('\n').filter(Boolean), code }));
  });
}

/**
 * Runs `body` in a child and resolves with the first stdout line that `match` accepts, or
 * rejects when none came within `deadlineMs`; the child is killed either way.
 */
function waitForChildLine(
  body: string,
  match: (line: Record<string, unknown>) => boolean,
  deadlineMs: number,
  env: Record<string, string> = {},
): Promise<Record<string, unknown>> {
  const script = `const { createLogger, flushLogs, lineWriter } = await import(${JSON.stringify(LOGGER)});\n${body}`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, ...env },
  });
  return new Promise<Record<string, unknown>>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(
      () => reject(new Error(`no matching line within ${deadlineMs} ms; got: ${out}`)),
      deadlineMs,
    );
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const lines = out.split('\n').slice(0, -1);
      const found = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find(match);
      if (found) {
        clearTimeout(timer);
        resolve(found);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`child exited (${code}) before the line; got: ${out}`));
    });
  }).finally(() => child.kill('SIGKILL'));
}

describe('logger', () => {
  it('writes a lone line while the process is still running', async () => {
    // The child never ends by itself (it is killed once the line came): a line written only
    // at exit would never come.
    const line = await waitForChildLine(
      `
      const log = createLogger('info', 'test');
      log.info({ n: 1 }, 'only line');
      setInterval(() => {}, 1000);
    `,
      (l) => l.msg === 'only line',
      10_000,
    );
    expect(line).toMatchObject({ n: 1, msg: 'only line' });
  });

  it('a line logged while an earlier batch is still being written is flushed after it', async () => {
    // At low traffic an access-log line showed up seconds after its connection closed: its
    // flush came while the previous batch's write still sat in libuv's thread pool (a busy pool,
    // a slow journal), found the destination busy and did nothing, and nothing flushed again
    // until the next line. A pool of one thread, held by a FIFO read, makes that happen here.
    const dir = mkdtempSync(join(tmpdir(), 'weft-logger-'));
    const fifo = join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    try {
      const line = await waitForChildLine(
        `
        const { readFile } = await import('node:fs/promises');
        const { openSync, closeSync, constants } = await import('node:fs');
        // The logger's flush timers are held and fired by this script, in the order the bug
        // needs, instead of racing its 200 ms on the real clock; later ones run as usual.
        const realSetTimeout = globalThis.setTimeout;
        const held = [];
        globalThis.setTimeout = (fn, ms) => {
          held.push(fn);
          return { unref() {}, ref() {} };
        };
        const fireHeld = () => {
          const fn = held.shift();
          if (fn === undefined) throw new Error('no flush timer was armed');
          fn();
        };
        const log = createLogger('info', 'test');
        // The pool's only thread blocks in open() until the FIFO gets a writer.
        const reading = readFile(${JSON.stringify(fifo)});
        // Its flush queues a write behind the blocked thread.
        log.info('first');
        fireHeld();
        // Its flush finds that write still in flight.
        log.info('second');
        fireHeld();
        // Then the thread is freed: 'first' is written, and 'second' must follow on its own.
        globalThis.setTimeout = realSetTimeout;
        closeSync(openSync(${JSON.stringify(fifo)}, constants.O_WRONLY | constants.O_NONBLOCK));
        await reading;
        setInterval(() => {}, 1000);
      `,
        (l) => l.msg === 'second',
        4_000,
        { UV_THREADPOOL_SIZE: '1' },
      );
      expect(line.msg).toBe('second');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('flushLogs gets every line out before an explicit exit', async () => {
    const run = await runChild(`
      const log = createLogger('info', 'test');
      for (let i = 0; i < 2000; i++) log.info({ i }, 'line');
      await flushLogs(log);
      process.exit(0);
    `);
    expect(run.code).toBe(0);
    expect(run.lines).toHaveLength(2000);
    expect(JSON.parse(run.lines[1999]!).i).toBe(1999);
  });

  it('an idle logger keeps no timer: the process exits when its work is done', async () => {
    const run = await runChild(`
      const log = createLogger('info', 'test');
      log.info('one');
      await flushLogs(log);
    `);
    expect(run.code).toBe(0);
    expect(run.lines).toHaveLength(1);
  });

  it("lineWriter's fast line is pino's line: same fields, order and escaping", async () => {
    const run = await runChild(`
      const log = createLogger('info', 'test');
      const fields = { path: '/a"b\\\\c\\u2028é', n: 1.5, ok: true, gone: undefined, s: 'x' };
      log.info(fields, 'request');
      lineWriter(log)(fields, 'request');
      await flushLogs(log);
    `);
    expect(run.lines).toHaveLength(2);
    const [pinos, fast] = run.lines.map((l) => l.replace(/"time":\d+/, '"time":0'));
    expect(fast).toBe(pinos);
    expect(JSON.parse(fast!)).toMatchObject({ level: 30, name: 'test', n: 1.5, msg: 'request' });
  });

  it("a child's lineWriter (an agent worker's { worker: N }) is the fast one, pino's line", async () => {
    // Workers log through createLogger(...).child({ worker }); lineWriter knew only the parent,
    // so every access-log line of a worker went through pino's serializer, the slow path the
    // fast writer exists to avoid. The child's info() is made to throw after its own line:
    // a writer that falls back to it fails.
    const run = await runChild(`
      const log = createLogger('info', 'test');
      const child = log.child({ worker: 3 });
      const fields = { path: '/a"b', n: 1.5, gone: undefined };
      child.info(fields, 'request');
      child.info = () => { throw new Error('the slow path'); };
      lineWriter(child)(fields, 'request');
      await flushLogs(child);
    `);
    expect(run.code).toBe(0);
    expect(run.lines).toHaveLength(2);
    const [pinos, fast] = run.lines.map((l) => l.replace(/"time":\d+/, '"time":0'));
    expect(fast).toBe(pinos);
    expect(JSON.parse(fast!)).toMatchObject({ name: 'test', worker: 3, n: 1.5, msg: 'request' });
  });

  it("lineWriter's lone line is flushed while the process runs; a higher level drops it", async () => {
    const line = await waitForChildLine(
      `
      const log = createLogger('info', 'test');
      lineWriter(log)({ n: 2 }, 'fast line');
      setInterval(() => {}, 1000);
    `,
      (l) => l.msg === 'fast line',
      10_000,
    );
    expect(line).toMatchObject({ n: 2 });
    const quiet = await runChild(`
      const log = createLogger('warn', 'test');
      lineWriter(log)({ n: 3 }, 'dropped');
      log.warn('sentinel');
      await flushLogs(log);
    `);
    expect(quiet.lines.map((l) => JSON.parse(l).msg)).toEqual(['sentinel']);
  });
});
