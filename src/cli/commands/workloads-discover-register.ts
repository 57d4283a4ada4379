// `weft workloads discover --register`: the chosen workloads written into agent.yaml, all or
// nothing, keeping the file's comments and order (yaml's Document API edits the parsed file in
// place), validated as the agent will read it, and written atomically (temp file, fsync,
// rename) with the file's mode and owner; then the agent is told to re-read it (SIGHUP).
import { randomBytes } from 'node:crypto';
import { open, readdir, readFile, readlink, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { isMap, isSeq, parseDocument } from 'yaml';
import { parseAgentConfig } from '../../agent/config.js';
import { WeftError } from '../../errors.js';
import type { WorkloadEntry } from './workloads-discover-plan.js';

/** The new text of agent.yaml with `entries` appended to its workloads; throws on a clash. */
export function withWorkloads(
  text: string,
  file: string,
  entries: readonly WorkloadEntry[],
): string {
  const doc = parseDocument(text);
  if (doc.errors.length > 0)
    throw new WeftError(
      'WEFT_E_CONFIG',
      `${file}: not valid YAML: ${doc.errors[0]!.message.split('\n')[0]}`,
    );
  // What the agent reads today: a clash is judged on it, and it must be valid to begin with.
  const current = parseAgentConfig(text, file);
  const clashes: string[] = [];
  for (const e of entries) {
    const same = current.workloads.find(
      (w) =>
        (w.name ?? `${w.service}-${w.port}`) === e.name ||
        (w.service === e.service && w.port === e.port),
    );
    if (same)
      clashes.push(
        `${e.name} (${file} already has a workload of ${same.service} on port ${same.port})`,
      );
  }
  if (clashes.length > 0)
    throw new WeftError('WEFT_E_CONFIG', `nothing registered: ${clashes.join('; ')}`);
  // An empty file is all defaults: it becomes a map with the workloads.
  if (!isMap(doc.contents)) doc.contents = doc.createNode({}) as never;
  const list = doc.get('workloads');
  if (list === undefined || list === null) {
    doc.set('workloads', doc.createNode(entries.map((e) => ({ ...e }))));
  } else if (isSeq(list)) {
    for (const e of entries) list.add(doc.createNode({ ...e }));
  } else {
    throw new WeftError('WEFT_E_CONFIG', `${file}: workloads: must be a list`);
  }
  const next = doc.toString();
  parseAgentConfig(next, file); // as the agent will read it: a mistake here writes nothing
  return next;
}

/** Replaces `path` with `text` atomically, keeping its mode and owner. */
export async function replaceFile(path: string, text: string): Promise<void> {
  const before = await stat(path);
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    const file = await open(tmp, 'wx', 0o600);
    try {
      await file.writeFile(text);
      await file.chmod(before.mode & 0o7777);
      await file.chown(before.uid, before.gid);
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(tmp, path);
    const d = await open(dir, 'r');
    try {
      await d.sync();
    } finally {
      await d.close();
    }
  } catch (err) {
    await rm(tmp, { force: true });
    throw new WeftError('WEFT_E_CONFIG', `cannot write ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

/**
 * The agents that run with this config file (`weft agent --config FILE`), from /proc: the
 * process to tell with SIGHUP. Matched by the config's real path, so another host's agent
 * (a lab host shares /proc) is never signalled.
 */
export async function agentsUsing(configFile: string, proc = '/proc'): Promise<number[]> {
  const want = resolve(configFile);
  const pids: number[] = [];
  for (const entry of await readdir(proc)) {
    if (!/^\d+$/.test(entry)) continue;
    let argv: string[];
    try {
      argv = (await readFile(join(proc, entry, 'cmdline'), 'utf8')).split('\0');
    } catch {
      continue; // gone, or not ours to read
    }
    const verb = argv.findIndex(
      (a, i) => a === 'agent' && i > 0 && /(^|\/)weft(\.js)?$|main\.js$/.test(argv[i - 1]!),
    );
    if (verb < 0) continue;
    const flag = argv.findIndex((a) => a === '--config' || a === '-c');
    const config = flag >= 0 ? argv[flag + 1] : undefined;
    if (config === undefined) continue;
    let cwd = '/';
    try {
      cwd = await readlink(join(proc, entry, 'cwd'));
    } catch {}
    if (resolve(cwd, config) === want) pids.push(Number(entry));
  }
  return pids;
}
