// Runs a real `weft agent` inside a lab host and reads its JSON log lines, so tests can assert
// on what the agent saw (access-log lines) as an operator would read them.
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import type { Lab } from '../../src/lab/index.js';
import { waitFor } from './wait.js';

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
    }
  });
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });

  // 'close' comes after the last stdout line: a line missing by then will never come.
  let closed = false;
  child.once('close', () => {
    closed = true;
  });

  const waitForLine = (match: (line: LogLine) => boolean, timeoutMs = 5_000) =>
    waitFor(
      `a matching log line from the agent on ${host}`,
      () => {
        const found = lines.find(match);
        if (found === undefined && closed)
          throw new Error(
            `the agent on ${host} exited (${child.exitCode ?? child.signalCode}) without the awaited log line; stderr: ${stderr.slice(-500)}`,
          );
        return found;
      },
      {
        timeoutMs,
        detail: () =>
          `stderr: ${stderr.slice(-500)}; last lines: ${JSON.stringify(lines.slice(-3))}`,
      },
    );

  await waitForLine((l) => l.msg === 'agent listening', 10_000);
  return {
    child,
    lines,
    waitFor: waitForLine,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      await once(child, 'exit');
    },
  };
}
