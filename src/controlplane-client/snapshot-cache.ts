// The last-known-good snapshot on disk: written after each accepted version (before the Ack, so
// an acknowledged version survives a crash) and read at start, so that an agent restarted
// while the control plane is unreachable serves what it last had (fail static).
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from './atomic-file.js';
import { applyDelta, type Snapshot, type SnapshotRules, type WireResource } from './snapshot.js';

interface CacheFile {
  format: 1;
  version: number;
  trustBundlePem: string;
  /** When the agent accepted this version (ms since the epoch). */
  acceptedUnixMs: number;
  resources: WireResource[];
}

/** How much text cacheText gathers before handing a piece to the file. */
const PIECE_CHARS = 64 * 1024;

/**
 * JSON.stringify of the CacheFile, in pieces of about PIECE_CHARS: an agent writes it for each
 * accepted version (10 a second while 10,000 endpoints register), and one string of it, with
 * the Buffer made of it, was megabytes of the master's garbage each time.
 */
export function* cacheText(snapshot: Snapshot, acceptedUnixMs: number): Generator<string> {
  const head: Omit<CacheFile, 'resources'> = {
    format: 1,
    version: snapshot.version,
    trustBundlePem: snapshot.trustBundlePem,
    acceptedUnixMs,
  };
  let piece = `${JSON.stringify(head).slice(0, -1)},"resources":[`;
  let first = true;
  for (const r of snapshot.resources.values()) {
    const wire: WireResource = { kind: r.kind, name: r.name, revision: r.revision, json: r.json };
    piece += (first ? '' : ',') + JSON.stringify(wire);
    first = false;
    if (piece.length >= PIECE_CHARS) {
      yield piece;
      piece = '';
    }
  }
  yield `${piece}]}`;
}

export interface CachedSnapshot {
  snapshot: Snapshot;
  acceptedUnixMs: number;
}

export class SnapshotCache {
  readonly path: string;

  constructor(dataDir: string) {
    this.path = join(dataDir, 'snapshot.json');
  }

  /** Writes the file in pieces (cacheText): the whole text of 10,000 resources is megabytes. */
  async save(snapshot: Snapshot, acceptedUnixMs: number): Promise<void> {
    await writeFileAtomic(this.path, cacheText(snapshot, acceptedUnixMs));
  }

  /**
   * Reads the cache and validates it with the same rules as a full snapshot from the wire; a
   * missing file is undefined, a damaged one is reported so the caller can log it.
   */
  async load(rules: SnapshotRules): Promise<CachedSnapshot | { error: string } | undefined> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      return { error: `cannot read ${this.path}: ${(err as Error).message}` };
    }
    let file: CacheFile;
    try {
      file = JSON.parse(text) as CacheFile;
    } catch (err) {
      return { error: `${this.path} is not valid JSON: ${(err as Error).message}` };
    }
    if (file.format !== 1 || !Array.isArray(file.resources)) {
      return { error: `${this.path} has an unknown format` };
    }
    const result = applyDelta(
      undefined,
      {
        version: file.version,
        baseVersion: 0,
        full: true,
        upserts: file.resources,
        removals: [],
        trustBundlePem: file.trustBundlePem,
      },
      rules,
    );
    if (!result.ok) return { error: `${this.path} does not validate: ${result.reason}` };
    return { snapshot: result.snapshot, acceptedUnixMs: file.acceptedUnixMs };
  }
}
