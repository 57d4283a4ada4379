// The counts a master hands to its next image on an upgrade (its workers' counters and stats
// readouts, worker-pool.ts RetiredCounts), so that no counter of the agent goes backwards across
// the exec. In a file in the data directory, not the environment: they can exceed what one
// environment variable may hold. Reading it removes it; any failure only loses counts.
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { deserialize, serialize } from 'node:v8';
import type { Logger } from '../../sys/logger.js';
import type { RetiredCounts } from './worker-pool.js';

export function writeHandoverCounts(
  dataDir: string,
  counts: RetiredCounts,
  log: Logger,
): string | undefined {
  const file = join(dataDir, `master-handover-${process.pid}.counts`);
  try {
    writeFileSync(file, serialize(counts), { mode: 0o600 });
    return file;
  } catch (err) {
    log.warn(
      { err, file },
      'upgrade: the counts so far are not handed over (metrics restart from 0)',
    );
    return undefined;
  }
}

export function readHandoverCounts(
  file: string | undefined,
  log: Logger,
): RetiredCounts | undefined {
  if (!file) return undefined;
  try {
    const counts = deserialize(readFileSync(file)) as RetiredCounts;
    return counts.readout instanceof Map && Array.isArray(counts.metrics) ? counts : undefined;
  } catch (err) {
    log.warn(
      { err, file },
      'upgrade: the previous counts could not be read (metrics restart from 0)',
    );
    return undefined;
  } finally {
    rmSync(file, { force: true });
  }
}
