// Workers' stdout, forwarded whole lines at a time, so that the lines of several workers never
// cut into each other in the journal. For a worker the master forked, and for one a previous
// master image forked (its pipe adopted across the exec, adopted-workers.ts).
import type { Readable } from 'node:stream';

/** Forwards `stream`'s complete lines; the last partial one when it ends. */
export function forwardLines(stream: Readable, writeLines: (lines: string) => void): void {
  let partial = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    const text = partial + chunk;
    const end = text.lastIndexOf('\n') + 1;
    partial = text.slice(end);
    if (end > 0) writeLines(text.slice(0, end));
  });
  stream.once('close', () => {
    if (partial !== '') writeLines(`${partial}\n`);
    partial = '';
  });
  stream.on('error', () => {});
}
