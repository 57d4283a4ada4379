// Shared by the redirect lab tests: throw-away network namespaces named weftrd-*, the real
// `weft` CLI run inside them, and their iptables as iptables-save prints it.
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';

/** This checkout: the tests build and run its own `weft`, not another tree's. */
export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const WEFT = join(ROOT, 'bin/weft');

export interface Result {
  stdout: string;
  stderr: string;
  exitCode: number;
}

export class Namespaces {
  private readonly names: string[] = [];

  /** A fresh namespace with lo up (IPv6 local routes need it), as on any real host. */
  async create(): Promise<string> {
    const name = `weftrd-${randomBytes(4).toString('hex')}`;
    await execa('ip', ['netns', 'add', name]);
    this.names.push(name);
    await execa('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
    return name;
  }

  async removeAll(): Promise<void> {
    for (const name of this.names.splice(0))
      await execa('ip', ['netns', 'del', name], { reject: false });
  }
}

/** Runs a command inside the namespace; never throws on a non-zero exit. */
export async function inNs(
  ns: string,
  cmd: string[],
  env?: Record<string, string>,
): Promise<Result> {
  const r = await execa('ip', ['netns', 'exec', ns, ...cmd], {
    reject: false,
    env,
    stripFinalNewline: false,
  });
  return { stdout: String(r.stdout), stderr: String(r.stderr), exitCode: r.exitCode ?? -1 };
}

/** `weft ARGS` inside the namespace, as root unless `prefix` says otherwise (setpriv, env). */
export function weft(ns: string, args: string[], prefix: string[] = []): Promise<Result> {
  return inNs(ns, [...prefix, process.execPath, WEFT, ...args]);
}

/** iptables-save output without its timestamp comments. */
export async function save(
  ns: string,
  family: 'ipv4' | 'ipv6',
  backend: 'nft' | 'legacy' = 'nft',
): Promise<string> {
  const tool = `${family === 'ipv4' ? 'iptables' : 'ip6tables'}-${backend}-save`;
  const r = await inNs(ns, [tool]);
  if (r.exitCode !== 0) throw new Error(`${tool} failed: ${r.stderr}`);
  return r.stdout
    .split('\n')
    .filter((l) => !l.startsWith('#'))
    .join('\n');
}

/** Both families' saves, for before/after comparisons. */
export async function saveBoth(
  ns: string,
  backend: 'nft' | 'legacy' = 'nft',
): Promise<{ ipv4: string; ipv6: string }> {
  return { ipv4: await save(ns, 'ipv4', backend), ipv6: await save(ns, 'ipv6', backend) };
}

/**
 * A save without tables that hold nothing: only built-in chains, policy ACCEPT, no rule. Rules
 * in a table the host never used (mangle, for the reply path) make nf_tables create it, and
 * removing the rules leaves it empty; an empty table changes no packet.
 */
export function withoutEmptyTables(text: string): string {
  return text.replace(/^\*\w+\n(?::[A-Z]+ ACCEPT \[\d+:\d+\]\n)*COMMIT\n/gm, '');
}

/** Applies rules that are not weft's (a user's own), as iptables-restore --noflush input. */
export async function addForeignRules(
  ns: string,
  family: 'ipv4' | 'ipv6',
  payload: string,
  backend: 'nft' | 'legacy' = 'nft',
): Promise<void> {
  const tool = `${family === 'ipv4' ? 'iptables' : 'ip6tables'}-${backend}-restore`;
  const r = await execa('ip', ['netns', 'exec', ns, tool, '--noflush'], {
    input: payload,
    reject: false,
  });
  if (r.exitCode !== 0) throw new Error(`${tool} failed: ${r.stderr}`);
}

/** A directory for config files and shims that an unprivileged user may read. */
export class Scratch {
  dir = '';

  async init(): Promise<void> {
    this.dir = await mkdtemp(join(tmpdir(), 'weftrd-'));
    await chmod(this.dir, 0o755);
  }

  async file(name: string, text: string, mode = 0o644): Promise<string> {
    const path = join(this.dir, name);
    await mkdir(dirname(path), { recursive: true, mode: 0o755 });
    await writeFile(path, text);
    await chmod(path, mode);
    return path;
  }

  async remove(): Promise<void> {
    if (this.dir) await rm(this.dir, { recursive: true, force: true });
  }
}
