// What a running lab leaves on disk so that a later command (status, exec, down, or the
// next `up` after a crash) can find everything it made: /run/weft/lab/<name>/state.json.
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { WeftError } from '../errors.js';
import type { LabSpec } from './spec.js';

/** Under /run: tmpfs, so a reboot (which also drops every namespace) forgets labs too. */
export const DEFAULT_STATE_DIR = '/run/weft/lab';
const STATE_VERSION = 1;

export interface LabProcess {
  host: string;
  name: string;
  pid: number;
  /** Field 22 of /proc/<pid>/stat: tells our process from a later one given the same pid. */
  startTime: string;
  user: string;
  command: string[];
  logFile: string;
}

export interface LabState {
  version: number;
  name: string;
  createdAt: string;
  spec: LabSpec;
  /** Every namespace the lab made: the switch first, then one per host. */
  namespaces: string[];
  switchNetns: string;
  /** veth pairs: `switchEnd` in the switch namespace, `hostEnd` in the host's. */
  links: { host: string; switchEnd: string; hostEnd: string }[];
  /** /etc/netns/<ns> directories that `ip netns exec` bind-mounts over /etc. */
  etcDirs: string[];
  processes: LabProcess[];
}

export function labDir(stateDir: string, name: string): string {
  return join(stateDir, name);
}

export function statePath(stateDir: string, name: string): string {
  return join(labDir(stateDir, name), 'state.json');
}

export async function readState(stateDir: string, name: string): Promise<LabState | undefined> {
  const file = statePath(stateDir, name);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    const state = JSON.parse(text) as LabState;
    if (state.version !== STATE_VERSION) throw new Error(`version ${state.version}`);
    return state;
  } catch (err) {
    throw new WeftError(
      'WEFT_E_LAB',
      `${file} is unreadable (${(err as Error).message}); remove the lab with \`weft lab down ${name}\``,
    );
  }
}

/** Written to a temporary file and renamed: a reader never sees half a state. */
export async function writeState(stateDir: string, state: LabState): Promise<void> {
  const dir = labDir(stateDir, state.name);
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const file = statePath(stateDir, state.name);
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o644 });
  await rename(tmp, file);
}

/** Removes the lab's directory: state and process logs. True when there was one. */
export async function removeState(stateDir: string, name: string): Promise<boolean> {
  const dir = labDir(stateDir, name);
  const had = existsSync(statePath(stateDir, name));
  await rm(dir, { recursive: true, force: true });
  return had;
}

export function newState(spec: LabSpec, switchNetns: string): LabState {
  return {
    version: STATE_VERSION,
    name: spec.name,
    createdAt: new Date().toISOString(),
    spec,
    namespaces: [],
    switchNetns,
    links: [],
    etcDirs: [],
    processes: [],
  };
}
