// The systemd unit a process runs in, read from its cgroup v2 path: systemd names the
// cgroup of each service or scope after the unit (".../system.slice/redis-server.service").

const unitName = /\.(service|scope)$/;

/**
 * The deepest .service or .scope component of a cgroup path, which is the unit closest to the
 * process (a user service under user@1000.service, a service inside a delegated subtree's
 * parent). A delegated manager runs itself in `<unit>/init.scope`, so that maps to `<unit>`.
 * Slices are not units a process runs in; a path without a unit gives undefined.
 */
export function unitOfCgroupPath(path: string): string | undefined {
  const parts = path.split('/').filter((part) => part !== '');
  for (let i = parts.length - 1; i >= 0; i--) {
    const part = parts[i]!;
    if (!unitName.test(part)) continue;
    const parent = parts[i - 1];
    if (part === 'init.scope' && parent?.endsWith('.service')) return parent;
    return part;
  }
  return undefined;
}
