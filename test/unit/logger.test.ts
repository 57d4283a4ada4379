// The logger batches lines and writes them off the event loop: a line must still reach stdout
// while the process lives (the flush timer), and flushLogs must get every line out before an
// explicit exit (the agent exits that way after SIGTERM).
import { spawn } from 'node:child_process';
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
