// The process's file-descriptor limit (RLIMIT_NOFILE), read once at start from
// /proc/self/limits: the connection limits are shares of it. Node raises the soft limit to
// the hard one when it starts, so the soft value read here is what the agent can really use.
import { readFileSync } from 'node:fs';
import { WeftError } from '../../errors.js';

export interface FdLimit {
  soft: number;
  hard: number;
}

/** Parses the "Max open files" row of /proc/<pid>/limits ("unlimited" reads as Infinity). */
export function parseFdLimit(text: string): FdLimit {
  const row = /^Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)\s+files\s*$/m.exec(text);
  if (row === null) {
    throw new WeftError('WEFT_E_INTERNAL', 'no "Max open files" row in /proc/self/limits');
  }
  const num = (v: string): number => (v === 'unlimited' ? Number.POSITIVE_INFINITY : Number(v));
  return { soft: num(row[1]!), hard: num(row[2]!) };
}

/** The agent's limit now; read at start, never on the connection path. */
export function readFdLimit(file = '/proc/self/limits'): FdLimit {
  return parseFdLimit(readFileSync(file, 'utf8'));
}
