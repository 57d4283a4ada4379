// Reading and writing one family's rules with iptables-save / iptables-restore, turning
// a refusal into WEFT_E_IPTABLES that quotes the payload line the tool rejected.
import { WeftError } from '../errors.js';
import { run } from '../sys/run.js';
import type { Backend, FamilyTools } from './backend.js';
import { type Family, familyLabel } from './family.js';

function toolsFor(backend: Backend, family: Family): FamilyTools {
  const tools = backend.tools[family];
  if (!tools) {
    throw new WeftError(
      'WEFT_E_INTERNAL',
      `no ${familyLabel(family)} iptables binaries were resolved`,
    );
  }
  return tools;
}

/** The family's whole ruleset as iptables-save prints it (all tables, no counters). */
export async function saveRules(backend: Backend, family: Family): Promise<string> {
  const tools = toolsFor(backend, family);
  const r = await run(tools.save, [], { allowFailure: true });
  if (r.exitCode !== 0) {
    throw new WeftError(
      'WEFT_E_IPTABLES',
      `\`${tools.save}\` failed: ${firstLine(r.stderr) || `exit code ${r.exitCode}`}`,
    );
  }
  return r.stdout;
}

/**
 * Applies (or with `test`, only checks) a payload with `--noflush`, which leaves every
 * chain the payload does not declare as it is. `--wait` queues behind other writers of
 * the legacy xtables lock instead of failing.
 */
export async function restoreRules(
  backend: Backend,
  family: Family,
  payload: string,
  opts: { test?: boolean } = {},
): Promise<void> {
  const tools = toolsFor(backend, family);
  const args = ['--noflush', '--wait', ...(opts.test ? ['--test'] : [])];
  const r = await run(tools.restore, args, { input: payload, allowFailure: true });
  if (r.exitCode === 0) return;
  throw new WeftError(
    'WEFT_E_IPTABLES',
    describeRefusal(tools.restore, family, payload, r.stderr, r.exitCode),
  );
}

/** `ip6tables-nft-restore refused IPv6 line 4 "-A ...": Bad rule ...`, on one line. */
export function describeRefusal(
  tool: string,
  family: Family,
  payload: string,
  stderr: string,
  exitCode: number,
): string {
  // Both backends name the line: "line 5 failed" or "Error occurred at line: 3".
  const m = /line:?\s+(\d+)/.exec(stderr);
  const lineNo = m ? Number(m[1]) : undefined;
  const offending = lineNo === undefined ? undefined : payload.split('\n')[lineNo - 1];
  const reason = stderr
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('Try `') && !l.startsWith('Error occurred at line'))
    .join(' | ');
  const where =
    offending === undefined
      ? `the ${familyLabel(family)} rules`
      : `${familyLabel(family)} line ${lineNo} "${offending}"`;
  return `\`${tool}\` refused ${where}: ${reason || `exit code ${exitCode}`}`;
}

function firstLine(text: string): string {
  return text.trim().split('\n')[0] ?? '';
}
