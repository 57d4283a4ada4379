// weft's share of one family's iptables: its WEFT_* chains and the commented rules that
// jump to them from built-in chains, read out of iptables-save text. Everything else in
// the ruleset belongs to someone else and is never represented here, so never rewritten.

/** Every rule weft writes carries `-m comment --comment "weft:..."`. */
export const COMMENT_PREFIX = 'weft:';
/** Every chain weft creates is named WEFT_*. */
export const CHAIN_PREFIX = 'WEFT_';

export interface WeftChain {
  name: string;
  /** Rules as iptables-save prints them: `-A WEFT_OUTPUT ...`. */
  rules: string[];
}

export interface WeftTable {
  table: string;
  /** WEFT_* chains, sorted by name. */
  chains: WeftChain[];
  /** weft's rules in chains that are not weft's (the jumps into WEFT_*), sorted. */
  jumps: string[];
}

/** Tables sorted by name; a table without weft chains or jumps is absent. */
export type WeftState = WeftTable[];

const WEFT_COMMENT = /(?:^| )-m comment --comment "?weft:/;

export function isWeftChain(name: string): boolean {
  return name.startsWith(CHAIN_PREFIX);
}

export function isWeftRule(rule: string): boolean {
  return WEFT_COMMENT.test(rule);
}

/** Extracts weft's chains and jumps from `iptables-save` output (all tables). */
export function extractWeftState(saveText: string): WeftState {
  const tables = new Map<string, { chains: Map<string, string[]>; jumps: string[] }>();
  let current: { chains: Map<string, string[]>; jumps: string[] } | undefined;
  for (const raw of saveText.split('\n')) {
    const line = raw.trimEnd();
    if (line.startsWith('*')) {
      current = { chains: new Map(), jumps: [] };
      tables.set(line.slice(1), current);
    } else if (!current) {
      // Comments and blank lines before the first table.
    } else if (line.startsWith(':')) {
      const name = line.slice(1).split(' ')[0] ?? '';
      if (isWeftChain(name)) current.chains.set(name, []);
    } else if (line.startsWith('-A ')) {
      const chain = line.split(' ')[1] ?? '';
      const rules = current.chains.get(chain);
      if (rules) rules.push(line);
      else if (isWeftRule(line)) current.jumps.push(line);
    }
  }
  const state: WeftState = [];
  for (const [table, t] of [...tables].sort(([a], [b]) => a.localeCompare(b))) {
    if (t.chains.size === 0 && t.jumps.length === 0) continue;
    state.push({
      table,
      chains: [...t.chains]
        .map(([name, rules]) => ({ name, rules }))
        .sort((a, b) => a.name.localeCompare(b.name)),
      jumps: [...t.jumps].sort(),
    });
  }
  return state;
}

/** Builds a state from unsorted parts, in the same canonical order extraction uses. */
export function normalizeState(state: WeftState): WeftState {
  return state
    .filter((t) => t.chains.length > 0 || t.jumps.length > 0)
    .map((t) => ({
      table: t.table,
      chains: [...t.chains].sort((a, b) => a.name.localeCompare(b.name)),
      jumps: [...t.jumps].sort(),
    }))
    .sort((a, b) => a.table.localeCompare(b.table));
}

export function findTable(state: WeftState, table: string): WeftTable | undefined {
  return state.find((t) => t.table === table);
}

export function tablesEqual(a: WeftTable | undefined, b: WeftTable | undefined): boolean {
  return JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
}

/** Number of weft rules (chain rules and jumps). */
export function ruleCount(state: WeftState): number {
  return state.reduce(
    (n, t) => n + t.jumps.length + t.chains.reduce((m, c) => m + c.rules.length, 0),
    0,
  );
}

/** One line per rule, `-t TABLE -A ...`: chains' rules in order, then the jumps. For display and diffs. */
export function stateLines(state: WeftState): string[] {
  return state.flatMap((t) => [
    ...t.chains.flatMap((c) => c.rules.map((r) => `-t ${t.table} ${r}`)),
    ...t.jumps.map((j) => `-t ${t.table} ${j}`),
  ]);
}
