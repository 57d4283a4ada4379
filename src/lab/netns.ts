// Network namespace primitives the lab is built from: batched `ip` commands, finding
// namespaces and the processes inside them, and the /etc/netns files `ip netns exec` mounts.
import { mkdir, readdir, readlink, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { WeftError } from '../errors.js';
import { run } from '../sys/run.js';

/** Where `ip netns add` bind-mounts namespaces so they outlive their creator. */
export const NETNS_DIR = '/run/netns';
/** `ip netns exec NS` bind-mounts each file of /etc/netns/NS over the same name in /etc. */
export const ETC_NETNS_DIR = '/etc/netns';

/**
 * Runs `ip [-n NS] -batch -`: one process for many changes, which is what keeps a lab's
 * start fast. On failure the error names the line ip refused.
 */
export async function ipBatch(lines: readonly string[], netns?: string): Promise<void> {
  if (lines.length === 0) return;
  const args = [...(netns ? ['-n', netns] : []), '-batch', '-'];
  const result = await run('ip', args, { input: `${lines.join('\n')}\n`, allowFailure: true });
  if (result.exitCode === 0) return;
  // ip reports "Command failed -:N" with N the 1-based line of the batch.
  const lineNo = Number(result.stderr.match(/Command failed -:(\d+)/)?.[1]);
  const failed = Number.isInteger(lineNo) ? ` at \`${lines[lineNo - 1]}\`` : '';
  const where = netns ? ` in ${netns}` : '';
  const detail = result.stderr.trim().split('\n')[0] ?? `exit code ${result.exitCode}`;
  throw new WeftError('WEFT_E_LAB', `ip failed${where}${failed}: ${detail}`);
}

/** Names of the namespaces in /run/netns that start with `prefix`. */
export async function listNetns(prefix: string): Promise<string[]> {
  try {
    return (await readdir(NETNS_DIR)).filter((n) => n.startsWith(prefix)).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

export async function netnsExists(name: string): Promise<boolean> {
  return (await netnsInode(name)) !== undefined;
}

async function netnsInode(name: string): Promise<number | undefined> {
  try {
    return (await stat(join(NETNS_DIR, name))).ino;
  } catch {
    return undefined;
  }
}

/**
 * Pids of the processes inside the named namespaces. Same answer as `ip netns pids`, but
 * one pass over /proc for all namespaces instead of one ip process per namespace.
 */
export async function pidsInNetns(names: readonly string[]): Promise<number[]> {
  const inodes = new Set<string>();
  for (const name of names) {
    const ino = await netnsInode(name);
    if (ino !== undefined) inodes.add(`net:[${ino}]`);
  }
  if (inodes.size === 0) return [];
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (inodes.has(await readlink(`/proc/${entry}/ns/net`))) pids.push(Number(entry));
    } catch {
      // The process exited while we looked, or is a kernel thread without namespaces.
    }
  }
  return pids;
}

/**
 * Deletes namespaces; the kernel then destroys every interface in them (veth pairs and the
 * bridge). `-force` goes on past a namespace another cleanup already removed.
 */
export async function deleteNetns(names: readonly string[]): Promise<void> {
  const existing: string[] = [];
  for (const name of names) if (await netnsExists(name)) existing.push(name);
  if (existing.length === 0) return;
  await run('ip', ['-force', '-batch', '-'], {
    input: `${existing.map((n) => `netns del ${n}`).join('\n')}\n`,
    allowFailure: true,
  });
  const left = [];
  for (const name of existing) if (await netnsExists(name)) left.push(name);
  if (left.length > 0) {
    throw new WeftError('WEFT_E_LAB', `could not delete namespaces ${left.join(', ')}`);
  }
}

/** Runs a shell snippet inside a namespace (for its /proc/sys/net settings). */
export async function netnsShell(netns: string, script: string): Promise<void> {
  const r = await run('ip', ['netns', 'exec', netns, 'sh', '-c', script], { allowFailure: true });
  if (r.exitCode !== 0) {
    throw new WeftError('WEFT_E_LAB', `\`${script}\` failed in ${netns}: ${r.stderr.trim()}`);
  }
}

export function etcNetnsDir(netns: string): string {
  return join(ETC_NETNS_DIR, netns);
}

/** Writes /etc/netns/<ns>/<file> for each file; returns the directory. */
export async function writeNetnsEtc(netns: string, files: Record<string, string>): Promise<string> {
  const dir = etcNetnsDir(netns);
  await mkdir(dir, { recursive: true, mode: 0o755 });
  for (const [file, text] of Object.entries(files)) {
    await writeFile(join(dir, file), text, { mode: 0o644 });
  }
  return dir;
}

/** /etc/netns directories whose namespace name starts with `prefix`. */
export async function listNetnsEtc(prefix: string): Promise<string[]> {
  try {
    const names = (await readdir(ETC_NETNS_DIR)).filter((n) => n.startsWith(prefix));
    return names.map(etcNetnsDir);
  } catch {
    return [];
  }
}

export async function removeDirs(dirs: readonly string[]): Promise<void> {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
}
