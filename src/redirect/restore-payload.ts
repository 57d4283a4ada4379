// The iptables-restore --noflush text that takes weft's rules in one family from what is
// installed to what is wanted, touching nothing else. The same function installs,
// reinstalls, uninstalls (wanted = nothing) and rolls back (wanted = the previous state).
//
// Under --noflush, declaring `:WEFT_X - [0:0]` creates the chain or flushes it, so the
// WEFT_* chains are rewritten whole; built-in chains are never declared (that would not
// flush them with --noflush, but it is not ours to restate): weft's jumps in them are
// deleted by their exact saved text when unwanted and appended when missing.
import { findTable, tablesEqual, type WeftState, type WeftTable } from './weft-state.js';

/** Restore text for every table whose weft part differs; '' when nothing needs to change. */
export function convergePayload(current: WeftState, desired: WeftState): string {
  const names = [...new Set([...current, ...desired].map((t) => t.table))].sort();
  return names
    .map((name) => tablePayload(name, findTable(current, name), findTable(desired, name)))
    .filter((section) => section !== '')
    .join('');
}

function tablePayload(table: string, current?: WeftTable, desired?: WeftTable): string {
  if (tablesEqual(current, desired)) return '';
  const currentChains = current?.chains.map((c) => c.name) ?? [];
  const desiredChains = desired?.chains.map((c) => c.name) ?? [];
  const { remove, add } = jumpChanges(current?.jumps ?? [], desired?.jumps ?? []);

  const lines = [`*${table}`];
  for (const name of [...new Set([...desiredChains, ...currentChains])])
    lines.push(`:${name} - [0:0]`);
  for (const jump of remove) lines.push(`-D${jump.slice(2)}`);
  for (const name of currentChains.filter((n) => !desiredChains.includes(n)))
    lines.push(`-X ${name}`);
  for (const chain of desired?.chains ?? []) lines.push(...chain.rules);
  lines.push(...add);
  lines.push('COMMIT');
  return `${lines.join('\n')}\n`;
}

/**
 * Jumps already exactly right stay where they are, so that a reinstall does not move
 * them behind rules the operator added later; the others (and duplicates) are deleted,
 * and missing ones appended.
 */
function jumpChanges(
  current: readonly string[],
  desired: readonly string[],
): { remove: string[]; add: string[] } {
  const missing = [...desired];
  const remove: string[] = [];
  for (const jump of current) {
    const i = missing.indexOf(jump);
    if (i >= 0) missing.splice(i, 1);
    else remove.push(jump);
  }
  return { remove, add: missing };
}
