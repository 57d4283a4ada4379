// Structured JSON logs (pino) to stdout. Asynchronous and batched: lines collect in a buffer
// written in one syscall once it holds BATCH_BYTES (one write per line cost ~17 % of an
// agent's CPU at 550 new connections/s; bench/results), and a quiet buffer is flushed
// FLUSH_AFTER_MS after its first line, so a line is never held back much longer than that.
// The flush timer is armed only while a line waits: an idle agent does not wake up for its
// logs. The per-connection path never blocks on a log line.
import { type Logger, pino } from 'pino';

export type { Logger };

/** About 80 access-log lines; the write happens on libuv's thread pool. */
const BATCH_BYTES = 32 * 1024;
const FLUSH_AFTER_MS = 200;

export function createLogger(level = 'info', name = 'weft'): Logger {
  const destination = pino.destination({
    dest: 1,
    sync: false,
    minLength: BATCH_BYTES,
    maxWrite: 4 * BATCH_BYTES,
  });
  // Bytes handed to the destination and not yet written. A flush that comes while a write is
  // in flight (the thread pool busy, a slow journal) does nothing (sonic-boom), and once that
  // write is done sonic-boom writes on only past minLength: the lines logged meanwhile would
  // wait for the next line's timer, at low traffic seconds later. So after every write, what
  // is left gets a timer of its own.
  let unwritten = 0;
  let pending: NodeJS.Timeout | undefined;
  const flushSoon = (): void => {
    if (pending !== undefined) return;
    pending = setTimeout(() => {
      pending = undefined;
      destination.flush();
    }, FLUSH_AFTER_MS);
    pending.unref();
  };
  destination.on('write', (n: number) => {
    unwritten = Math.max(0, unwritten - n);
    if (unwritten > 0) flushSoon();
  });
  return pino(
    {
      name,
      level,
      base: { pid: process.pid },
      hooks: {
        streamWrite: (line) => {
          unwritten += Buffer.byteLength(line);
          flushSoon();
          return line;
        },
      },
    },
    destination,
  );
}

/** Resolves once every line logged so far is written (or after timeoutMs, whichever first). */
export function flushLogs(log: Logger, timeoutMs = 2_000): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, timeoutMs);
    timer.unref();
    log.flush(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}
