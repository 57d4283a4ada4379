// The logger batches lines and writes them off the event loop: a line must still reach stdout
// while the process lives (the flush timer), and flushLogs must get every line out before an
// explicit exit (the agent exits that way after SIGTERM).
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const LOGGER = fileURLToPath(new URL('../../dist/sys/logger.js', import.meta.url));

interface Run {
  lines: string[];
  /** Milliseconds from spawn to the first stdout byte, and to exit. */
  firstOutputMs: number | undefined;
  exitMs: number;
  code: number | null;
}

function runChild(body: string): Promise<Run> {
  const script = `const { createLogger, flushLogs } = await import(${JSON.stringify(LOGGER)});\n${body}`;
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    let firstOutputMs: number | undefined;
    child.stdout.on('data', (chunk: Buffer) => {
      firstOutputMs ??= Date.now() - started;
      out += chunk.toString();
    });
    child.on('error', reject);
    child.on('close', (code) =>
      resolve({
        lines: out.split('\n').filter(Boolean),
        firstOutputMs,
        exitMs: Date.now() - started,
        code,
      }),
    );
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
  const script = `const { createLogger, flushLogs } = await import(${JSON.stringify(LOGGER)});\n${body}`;
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
    const run = await runChild(`
      const log = createLogger('info', 'test');
      log.info({ n: 1 }, 'only line');
      setTimeout(() => {}, 2000);
    `);
    expect(run.code).toBe(0);
    expect(run.lines.map((l) => JSON.parse(l).msg)).toEqual(['only line']);
    expect(run.firstOutputMs).toBeDefined();
    // Written by the flush timer, not by the process ending.
    expect(run.firstOutputMs!).toBeLessThan(run.exitMs - 1000);
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
        const log = createLogger('info', 'test');
        // The pool's only thread blocks in open() until the FIFO gets a writer.
        const held = readFile(${JSON.stringify(fifo)});
        // Its flush, 200 ms on, queues a write behind the blocked thread.
        log.info('first');
        // Its flush, 200 ms after it, finds that write still in flight.
        setTimeout(() => log.info('second'), 300);
        // Then the thread is freed: 'first' is written, and 'second' must follow on its own.
        setTimeout(() => closeSync(openSync(${JSON.stringify(fifo)}, constants.O_WRONLY | constants.O_NONBLOCK)), 700);
        await held;
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
});
