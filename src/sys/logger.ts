// Structured JSON logs (pino) to stdout. Asynchronous writes: the per-connection path never
// blocks on a log line; the buffer is flushed on exit.
import { type Logger, pino } from 'pino';

export type { Logger };

export function createLogger(level = 'info', name = 'weft'): Logger {
  const destination = pino.destination({ dest: 1, sync: false, minLength: 0 });
  return pino({ name, level, base: { pid: process.pid } }, destination);
}
