// Applying per-family payloads so that the host ends either fully changed or as it was:
// every payload is checked with `iptables-restore --test` before any is applied, and if
// one fails (or the step after them does), every family already touched is brought back
// to weft's rules as they were before. iptables-restore commits table by table, so even
// the failing family may be half-written; it is rolled back too.
import { describeError, WeftError } from '../errors.js';
import type { Backend } from './backend.js';
import type { Family } from './family.js';
import { restoreRules, saveRules } from './iptables.js';
import { convergePayload } from './restore-payload.js';
import { extractWeftState } from './weft-state.js';

export interface FamilyChange {
  family: Family;
  /** What to apply; '' means nothing to do for this family. */
  payload: string;
  /** iptables-save output before the change: what a rollback restores weft's part of. */
  before: string;
}

export async function applyChanges(
  backend: Backend,
  changes: readonly FamilyChange[],
  afterRules?: () => Promise<void>,
): Promise<void> {
  const pending = changes.filter((c) => c.payload !== '');
  for (const c of pending) await restoreRules(backend, c.family, c.payload, { test: true });
  const touched: FamilyChange[] = [];
  try {
    for (const c of pending) {
      touched.push(c);
      await restoreRules(backend, c.family, c.payload);
    }
    if (afterRules) await afterRules();
  } catch (err) {
    const failures = await rollback(backend, touched);
    const code = err instanceof WeftError ? err.code : 'WEFT_E_IPTABLES';
    const message = err instanceof WeftError ? err.message : describeError(err);
    const outcome =
      failures.length === 0
        ? 'no change was kept (weft rules restored as they were)'
        : `rolling back also failed, check \`weft redirect status\`: ${failures.join(' | ')}`;
    throw new WeftError(code, `${message}; ${outcome}`, { cause: err });
  }
}

async function rollback(backend: Backend, touched: readonly FamilyChange[]): Promise<string[]> {
  const failures: string[] = [];
  for (const c of [...touched].reverse()) {
    try {
      const now = extractWeftState(await saveRules(backend, c.family));
      const payload = convergePayload(now, extractWeftState(c.before));
      if (payload !== '') await restoreRules(backend, c.family, payload);
    } catch (err) {
      failures.push(describeError(err));
    }
  }
  return failures;
}
