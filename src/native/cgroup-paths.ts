// Maps a cgroup id (as INET_DIAG_CGROUP_ID reports it) to its cgroup v2 path. The id is the
// inode number of the cgroup's directory, so the map is built by walking the hierarchy; it is
// rebuilt on a miss, at most once per interval, so unknown ids cannot cost a walk each.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { WeftError } from '../errors.js';

export interface CgroupPathsOptions {
  /** Mount point of the cgroup v2 hierarchy; found in /proc/self/mountinfo when omitted. */
  mountPoint?: string;
  /** Path of the mount point inside the hierarchy (mountinfo's "root" field); default "/". */
  mountRoot?: string;
  /** Least time between two walks of the hierarchy. */
  minRebuildIntervalMs?: number;
  /** Clock in milliseconds; tests pass their own. */
  now?: () => number;
}

export const defaultMinRebuildIntervalMs = 3_000;

interface Cgroup2Mount {
  mountPoint: string;
  mountRoot: string;
}

/** Undoes mountinfo's octal escapes ("\040" for a space). */
function unescapeMountinfo(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) =>
    String.fromCharCode(Number.parseInt(octal, 8)),
  );
}

/** The cgroup2 mount in a /proc/self/mountinfo text (on hybrid hosts /sys/fs/cgroup/unified). */
export function findCgroup2Mount(mountinfo: string): Cgroup2Mount | undefined {
  for (const line of mountinfo.split('\n')) {
    const fields = line.split(' ');
    const separator = fields.indexOf('-');
    if (separator < 0 || fields[separator + 1] !== 'cgroup2') continue;
    const mountRoot = fields[3];
    const mountPoint = fields[4];
    if (mountRoot === undefined || mountPoint === undefined) continue;
    return { mountPoint: unescapeMountinfo(mountPoint), mountRoot: unescapeMountinfo(mountRoot) };
  }
  return undefined;
}

function joinCgroupPath(mountRoot: string, relative: string): string {
  if (mountRoot === '/') return relative === '' ? '/' : relative;
  return `${mountRoot.replace(/\/$/, '')}${relative}`;
}

export class CgroupPaths {
  readonly #minRebuildIntervalMs: number;
  readonly #now: () => number;
  #mount: Cgroup2Mount | undefined | null = null; // null: not looked up yet
  #byId = new Map<bigint, string>();
  #lastBuild = Number.NEGATIVE_INFINITY;

  constructor(options: CgroupPathsOptions = {}) {
    const interval = options.minRebuildIntervalMs ?? defaultMinRebuildIntervalMs;
    if (!Number.isFinite(interval) || interval < 0) {
      throw new WeftError(
        'WEFT_E_CONFIG',
        `CgroupPaths: minRebuildIntervalMs must be a finite number >= 0, got ${interval}`,
      );
    }
    if (options.mountPoint !== undefined && !options.mountPoint.startsWith('/')) {
      throw new WeftError(
        'WEFT_E_CONFIG',
        `CgroupPaths: mountPoint must be an absolute path, got "${options.mountPoint}"`,
      );
    }
    this.#minRebuildIntervalMs = interval;
    this.#now = options.now ?? (() => performance.now());
    if (options.mountPoint !== undefined) {
      this.#mount = { mountPoint: options.mountPoint, mountRoot: options.mountRoot ?? '/' };
    }
  }

  /** The cgroup path ("/system.slice/redis-server.service"), or undefined when unknown. */
  pathOf(id: bigint): string | undefined {
    const known = this.#byId.get(id);
    if (known !== undefined) return known;
    if (this.#now() - this.#lastBuild < this.#minRebuildIntervalMs) return undefined;
    this.rebuild();
    return this.#byId.get(id);
  }

  /** Walks the hierarchy now. Synchronous: one stat per cgroup, a few ms on a busy host. */
  rebuild(): void {
    this.#lastBuild = this.#now();
    const mount = this.#mountInfo();
    if (mount === undefined) return;
    const byId = new Map<bigint, string>();
    const pending = [''];
    for (let relative = pending.pop(); relative !== undefined; relative = pending.pop()) {
      const dir = `${mount.mountPoint}${relative}`;
      try {
        byId.set(statSync(dir, { bigint: true }).ino, joinCgroupPath(mount.mountRoot, relative));
        for (const entry of readdirSync(dir, { withFileTypes: true })) {
          if (entry.isDirectory()) pending.push(`${relative}/${entry.name}`);
        }
      } catch {
        // The cgroup was removed while we walked, or is not readable: leave it out.
      }
    }
    this.#byId = byId;
  }

  #mountInfo(): Cgroup2Mount | undefined {
    if (this.#mount === null) {
      try {
        this.#mount = findCgroup2Mount(readFileSync('/proc/self/mountinfo', 'utf8'));
      } catch {
        this.#mount = undefined;
      }
    }
    return this.#mount;
  }
}
