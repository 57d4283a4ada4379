// Runs a real `weft agent` inside a lab host and reads its JSON log lines, so tests can assert
// on what the agent saw (access-log lines) as an operator would read them.
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import type { Lab } from '../../src/lab/index.js';

export const WEFT_BIN = fileURLToPath(new URL('../../bin/weft', import.meta.url));

export type LogLine = Record<string, unknown> & { msg: string };

export interface AgentProcess {
  child: ChildProcess;
  lines: LogLine[];
  waitFor(match: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  stop(): Promise<void>;
}

/**
 * Starts the agent in `host` as user `weft` (so the capture rules exclude its own traffic).
 * `caps` adds ambient capabilities, e.g. ['net_admin'] for a TPROXY listener.
 */
export async function startAgentProcess(
  lab: Lab,
  host: string,
  configFile: string,
  caps: string[] = [],
): Promise<AgentProcess> {
  const capArgs = caps.length
    ? [
        `--inh-caps=${caps.map((c) => `+${c}`).join(',')}`,
        `--ambient-caps=${caps.map((c) => `+${c}`).join(',')}`,
      ]
    : [];
  const child = lab.spawn(host, [
    'setpriv',
    '--reuid=weft',
    '--regid=weft',
    '--init-groups',
    ...capArgs,
    '--',
    process.execPath,
    WEFT_BIN,
    'agent',
    '--config',
    configFile,
  ]);
  const lines: LogLine[] = [];
  const waiters = new Set<() => void>();
  let buffered = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    buffered += chunk;
    let nl = buffered.indexOf('\n');
    while (nl >= 0) {
      const text = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      nl = buffered.indexOf('\n');
      try {
        lines.push(JSON.parse(text) as LogLine);
      } catch {
        lines.push({ msg: text });
      }
      for (const wake of waiters) wake();
    }
  });
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });

  const waitFor = (match: (line: LogLine) => boolean, timeoutMs = 5_000) =>
    new Promise<LogLine>((resolve, reject) => {
      const check = () => {
        const found = lines.find(match);
        if (!found) return false;
        waiters.delete(check);
        clearTimeout(timer);
        resolve(found);
        return true;
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(
          new Error(
            `agent on ${host}: no matching log line in ${timeoutMs} ms; stderr: ${stderr.slice(-500)}; last lines: ${JSON.stringify(lines.slice(-3))}`,
          ),
        );
      }, timeoutMs);
      if (!check()) waiters.add(check);
    });

  await waitFor((l) => l.msg === 'agent listening', 10_000);
  return {
    child,
    lines,
    waitFor,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      await once(child, 'exit');
    },
  };
}
