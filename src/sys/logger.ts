// Structured JSON logs (pino) to stdout. Asynchronous and batched: lines collect in a buffer
// written in one syscall once it holds BATCH_BYTES (one write per line cost ~17 % of an
// agent's CPU at 550 new connections/s; bench/results), and a quiet buffer is flushed
// FLUSH_AFTER_MS after its first line, so a line is never held back much longer than that.
// The flush timer is armed only while a line waits: an idle agent does not wake up for its
// logs. The per-connection path never blocks on a log line.
import { type Logger, pino } from 'pino';

export type { Logger };

/** Writes one info line with these fields and this message, as the logger would. */
export type LineWriter = (fields: object, msg: string) => void;

/** The fast writers of the loggers made here (see lineWriter). */
const writers = new WeakMap<Logger, LineWriter>();
/** Writers of whole lines logged elsewhere (the agent's workers), by logger (rawLineWriter). */
const rawWriters = new WeakMap<Logger, (lines: string) => void>();
/** Hands a logger's held fast lines to its destination (flushLogs). */
const handOvers = new WeakMap<Logger, () => void>();

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
  // Lines of the fast writer (lineWriter) not yet handed to the destination: handed over a
  // batch at a time, because sonic-boom's write() measures the byte length of its whole
  // pending buffer on every call (up to BATCH_BYTES of string flattened and scanned per line:
  // most of a line's cost). A line pino writes takes the held ones along, in order.
  let held = '';
  const handOver = (): void => {
    if (held === '') return;
    const batch = held;
    held = '';
    unwritten += Buffer.byteLength(batch);
    destination.write(batch);
  };
  let pending: NodeJS.Timeout | undefined;
  const flushSoon = (): void => {
    if (pending !== undefined) return;
    pending = setTimeout(() => {
      pending = undefined;
      handOver();
      destination.flush();
    }, FLUSH_AFTER_MS);
    pending.unref();
  };
  destination.on('write', (n: number) => {
    unwritten = Math.max(0, unwritten - n);
    if (unwritten > 0) flushSoon();
  });
  const log = pino(
    {
      name,
      level,
      base: { pid: process.pid },
      hooks: {
        streamWrite: (line) => {
          const out = held === '' ? line : held + line;
          held = '';
          unwritten += Buffer.byteLength(out);
          flushSoon();
          return out;
        },
      },
    },
    destination,
  );
  // pino's own line, built by JSON.stringify in one pass (pino escapes field by field and
  // builds a rope of small strings); with the batching above, a line costs about a third.
  const head = `{"level":${pino.levels.values.info},"time":`;
  const base = `,"pid":${process.pid},"name":${JSON.stringify(name)},`;
  /** The fast writer of `logger`, whose bindings after the base are `bound` ('' or `"k":v,`). */
  const fastWriter =
    (logger: Logger, bound: string): LineWriter =>
    (fields, msg) => {
      if (!logger.isLevelEnabled('info')) return;
      const json = JSON.stringify(fields);
      const body = json.length > 2 ? `${json.slice(1, -1)},` : '';
      held += `${head}${Date.now()}${base}${bound}${body}"msg":${JSON.stringify(msg)}}\n`;
      if (held.length >= BATCH_BYTES) handOver();
      else flushSoon();
    };
  const register = (logger: Logger, bound: string): void => {
    writers.set(logger, fastWriter(logger, bound));
    rawWriters.set(logger, (lines) => {
      held += lines;
      if (held.length >= BATCH_BYTES) handOver();
      else flushSoon();
    });
    handOvers.set(logger, handOver);
  };
  register(log, '');
  // A child with plain bindings (an agent's worker: { worker: N }) keeps the fast writer, its
  // bindings after the base as pino prints them: without it each access-log line of a worker
  // went through pino's own serializer (about 3 % of a worker's CPU per new connection).
  const child = log.child.bind(log);
  log.child = ((bindings: Record<string, unknown>, options?: object) => {
    const made = child(bindings, options as never);
    if (options === undefined && plainJson(bindings)) {
      const json = JSON.stringify(bindings);
      register(made as Logger, json.length > 2 ? `${json.slice(1, -1)},` : '');
    }
    return made;
  }) as unknown as typeof log.child;
  return log;
}

/** Bindings pino would print as JSON.stringify does: numbers, strings and booleans only. */
function plainJson(bindings: Record<string, unknown>): boolean {
  for (const key in bindings) {
    const v = bindings[key];
    if (typeof v === 'string' || typeof v === 'boolean') continue;
    if (typeof v === 'number' && Number.isFinite(v)) continue;
    return false;
  }
  return true;
}

/**
 * A writer of info lines for a per-request log: the fast one of a logger made by createLogger,
 * else the logger's own info() (tests' loggers, children). Fields must be plain JSON values.
 */
export function lineWriter(log: Logger): LineWriter {
  return writers.get(log) ?? ((fields, msg) => log.info(fields, msg));
}

/**
 * A writer of whole lines (each ending in a newline) that other processes logged: they go out
 * in this logger's batches, so one process writes the stream and no line is cut by another's
 * partial write. Falls back to process.stdout for loggers not made by createLogger.
 */
export function rawLineWriter(log: Logger): (lines: string) => void {
  return rawWriters.get(log) ?? ((lines) => process.stdout.write(lines));
}

/** Resolves once every line logged so far is written (or after timeoutMs, whichever first). */
export function flushLogs(log: Logger, timeoutMs = 2_000): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, timeoutMs);
    timer.unref();
    handOvers.get(log)?.();
    log.flush(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}
