// Pure decisions behind owner lookups: finding the cgroup2 mount, mapping cgroup ids
// (directory inodes) to paths with a rate-limited rebuild, and naming the systemd unit.
import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isWeftError } from '../../src/errors.js';
import { CgroupPaths, findCgroup2Mount } from '../../src/native/cgroup-paths.js';
import { unitOfCgroupPath } from '../../src/native/systemd-unit.js';

describe('unitOfCgroupPath', () => {
  it.each([
    ['/system.slice/redis-server.service', 'redis-server.service'],
    ['/system.slice/system-getty.slice/getty@tty1.service', 'getty@tty1.service'],
    ['/user.slice/user-1000.slice/session-3.scope', 'session-3.scope'],
    ['/user.slice/user-1000.slice/user@1000.service/app.slice/foo.service', 'foo.service'],
    ['/user.slice/user-1000.slice/user@1000.service/init.scope', 'user@1000.service'],
    ['/system.slice/containerd.service/payload', 'containerd.service'],
    ['/init.scope', 'init.scope'],
    ['/system.slice', undefined],
    ['/docker/0123abcd', undefined],
    ['/', undefined],
  ])('%s -> %s', (path, unit) => {
    expect(unitOfCgroupPath(path)).toBe(unit);
  });
});

describe('findCgroup2Mount', () => {
  it('finds the unified hierarchy on hybrid and pure v2 hosts', () => {
    const hybrid = [
      '30 25 0:27 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755',
      '31 30 0:28 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory',
      '40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw',
    ].join('\n');
    expect(findCgroup2Mount(hybrid)).toEqual({
      mountPoint: '/sys/fs/cgroup/unified',
      mountRoot: '/',
    });
    const pure = '28 23 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate';
    expect(findCgroup2Mount(pure)).toEqual({ mountPoint: '/sys/fs/cgroup', mountRoot: '/' });
  });

  it('keeps the mount root of a container and undoes octal escapes', () => {
    const line = '50 40 0:26 /docker/abc /sys/fs/my\\040cgroup rw - cgroup2 cgroup2 rw';
    expect(findCgroup2Mount(line)).toEqual({
      mountPoint: '/sys/fs/my cgroup',
      mountRoot: '/docker/abc',
    });
  });

  it('gives undefined without a cgroup2 mount', () => {
    expect(
      findCgroup2Mount('31 30 0:28 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory'),
    ).toBeUndefined();
  });
});

describe('CgroupPaths', () => {
  // A directory tree stands in for the hierarchy: ids are directory inodes, as in cgroupfs.
  const root = mkdtempSync(join(tmpdir(), 'weft-cgroups-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  const ino = (relative: string) => statSync(join(root, relative), { bigint: true }).ino;

  it('maps ids to paths and rebuilds on a miss at most once per interval', () => {
    mkdirSync(join(root, 'system.slice/redis-server.service'), { recursive: true });
    let now = 0;
    const paths = new CgroupPaths({ mountPoint: root, minRebuildIntervalMs: 3000, now: () => now });
    expect(paths.pathOf(ino('.'))).toBe('/');
    expect(paths.pathOf(ino('system.slice/redis-server.service'))).toBe(
      '/system.slice/redis-server.service',
    );

    mkdirSync(join(root, 'system.slice/late.service'));
    now = 1000;
    expect(paths.pathOf(ino('system.slice/late.service'))).toBeUndefined(); // too soon to walk again
    now = 3000;
    expect(paths.pathOf(ino('system.slice/late.service'))).toBe('/system.slice/late.service');
  });

  it('prefixes paths with the mount root of a namespaced mount', () => {
    mkdirSync(join(root, 'app.service'), { recursive: true });
    const paths = new CgroupPaths({ mountPoint: root, mountRoot: '/docker/abc' });
    expect(paths.pathOf(ino('app.service'))).toBe('/docker/abc/app.service');
    expect(paths.pathOf(ino('.'))).toBe('/docker/abc');
  });

  it('names the field when an option is invalid', () => {
    let err: unknown;
    try {
      new CgroupPaths({ minRebuildIntervalMs: -1 });
    } catch (e) {
      err = e;
    }
    expect(isWeftError(err, 'WEFT_E_CONFIG')).toBe(true);
    expect((err as Error).message).toContain('minRebuildIntervalMs');
  });
});
