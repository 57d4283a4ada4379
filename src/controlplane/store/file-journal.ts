// The file store's journal: what changed since its last full snapshot, one JSON line per write
// (the transactions of one flush), appended and fsynced. A write then costs what it changed,
// not the whole state: at 10,000 workloads the state is megabytes, and rewriting it for every
// registration made the control plane's memory churn (and its peak) grow with the fleet.
import type { FileHandle } from 'node:fs/promises';
import { open } from 'node:fs/promises';
import { WeftError } from '../../errors.js';
import type { StoreEntry } from './store.js';

/** One key's change: [key, entry] for a put, [key] for a delete. */
export type JournalOp = [string, StoreEntry] | [string];

/** The changes of one revision. */
export type JournalGroup = [number, JournalOp[]];

/**
 * One line: the snapshot it follows (its generation), the revision after it, its revisions'
 * changes, and the leases when they changed.
 */
export interface JournalRecord {
  j: number;
  r: number;
  g: JournalGroup[];
  l?: Array<[string, number]>;
}

export function encodeRecord(record: JournalRecord): string {
  return `${JSON.stringify(record)}\n`;
}

/**
 * The records of a journal's text that follow the snapshot of generation `generation` (others
 * were already folded into it by a compaction that crashed before emptying the journal; a
 * revision cannot tell, since a line that changed only leases keeps the revision). A last
 * line without its newline is a write that never completed, so never acknowledged: dropped. Any
 * other line that does not parse is damage, refused rather than skipped.
 */
export function parseJournal(text: string, generation: number, file: string): JournalRecord[] {
  const lines = text.split('\n');
  lines.pop(); // '' after the last newline, or the torn tail of an unfinished write
  const records: JournalRecord[] = [];
  lines.forEach((line, i) => {
    let record: JournalRecord;
    try {
      record = JSON.parse(line) as JournalRecord;
      if (!Number.isInteger(record.j) || !Number.isInteger(record.r) || !Array.isArray(record.g))
        throw new Error('not a journal record');
    } catch (err) {
      throw new WeftError(
        'WEFT_E_STORE',
        `${file} line ${i + 1} is damaged (${(err as Error).message}); restore the data directory from a backup, or move ${file} away to start from the last snapshot (losing the writes after it)`,
      );
    }
    if (record.j === generation) records.push(record);
  });
  return records;
}

/** The journal file, open for appending; each append is durable when it resolves. */
export class JournalFile {
  private constructor(
    private readonly handle: FileHandle,
    private size: number,
  ) {}

  static async open(path: string): Promise<JournalFile> {
    const handle = await open(path, 'a', 0o600);
    try {
      return new JournalFile(handle, (await handle.stat()).size);
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  /** Bytes in the journal: what a load would replay. */
  get bytes(): number {
    return this.size;
  }

  async append(line: string): Promise<void> {
    await this.handle.appendFile(line);
    await this.handle.datasync();
    this.size += Buffer.byteLength(line);
  }

  /** Empties it once a snapshot holds everything it held. */
  async clear(): Promise<void> {
    await this.handle.truncate(0);
    await this.handle.datasync();
    this.size = 0;
  }

  close(): Promise<void> {
    return this.handle.close();
  }
}
