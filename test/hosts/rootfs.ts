// The Debian 12 root filesystem the host tests boot: made once with debootstrap from the apt
// mirror this machine is configured with, cached under /var/cache/weft/rootfs with a stamp.
import { existsSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../../src/sys/run.js';

export const ROOTFS_CACHE = '/var/cache/weft/rootfs';
const SUITE = 'bookworm';
// What the guests need beyond minbase: an init, iptables for capture, ip for checks, and the
// libraries weft's pinned Node.js binary links (libatomic1; libstdc++6 comes with systemd).
const INCLUDE = ['systemd', 'systemd-sysv', 'dbus', 'iptables', 'iproute2', 'procps', 'libatomic1'];
const STAMP = `${SUITE} minbase ${INCLUDE.join(',')}`;

export interface Rootfs {
  dir: string;
  /** Seconds debootstrap took on this run; 0 when the cache was used. */
  builtSeconds: number;
}

/** The first Debian mirror in /etc/apt/sources.list(.d), one-line or deb822 format. */
export function debianMirror(): string {
  const files = ['/etc/apt/sources.list'];
  const dir = '/etc/apt/sources.list.d';
  if (existsSync(dir)) files.push(...readdirSync(dir).map((f) => join(dir, f)));
  for (const file of files) {
    if (!existsSync(file)) continue;
    const text = readFileSync(file, 'utf8');
    const oneLine = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+bookworm\s/m.exec(text);
    if (oneLine && /\/debian\/?$/.test(oneLine[1]!)) return oneLine[1]!;
    for (const m of text.matchAll(/^URIs:\s*(\S+)/gim)) {
      if (/\/debian\/?$/.test(m[1]!)) return m[1]!;
    }
  }
  return 'http://deb.debian.org/debian';
}

export async function ensureRootfs(): Promise<Rootfs> {
  const dir = join(ROOTFS_CACHE, 'debian12');
  const stamp = join(ROOTFS_CACHE, 'debian12.stamp');
  if (existsSync(stamp) && readFileSync(stamp, 'utf8').startsWith(STAMP) && existsSync(dir)) {
    return { dir, builtSeconds: 0 };
  }
  const tmp = `${dir}.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  rmSync(dir, { recursive: true, force: true });
  const started = Date.now();
  await run(
    'debootstrap',
    ['--variant=minbase', `--include=${INCLUDE.join(',')}`, SUITE, tmp, debianMirror()],
    { timeoutMs: 15 * 60_000 },
  );
  renameSync(tmp, dir);
  writeFileSync(stamp, `${STAMP} ${new Date().toISOString()}\n`);
  return { dir, builtSeconds: Math.round((Date.now() - started) / 1000) };
}
