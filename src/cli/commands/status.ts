// `weft status`: what the local agent is doing, for a person: sync state and version, how old
// its configuration is, the control plane it follows, its certificates and when they expire,
// and its local workloads. Reads the agent's admin endpoint (127.0.0.1:15000 by default).
import type { Command } from 'commander';
import type { CertView, ConfigDumpView, ReadyView } from '../../agent/admin-views.js';
import type { MasterInfo } from '../../agent/workers/master.js';
import type { WorkerStatus } from '../../agent/workers/worker-pool.js';
import { WeftError } from '../../errors.js';

export function registerStatus(program: Command): void {
  program
    .command('status')
    .description(
      "show the local agent's sync state, configuration version, certificates and workloads",
    )
    .option(
      '--admin <host:port>',
      "the agent's admin endpoint",
      process.env.WEFT_ADMIN ?? '127.0.0.1:15000',
    )
    .option('-o, --output <format>', 'text or json', 'text')
    .action(async (opts: { admin: string; output: string }) => {
      if (opts.output !== 'text' && opts.output !== 'json') {
        throw new WeftError('WEFT_E_USAGE', `--output must be text or json, not ${opts.output}`);
      }
      const base = `http://${opts.admin}`;
      const [dump, certs, ready, workers] = await Promise.all([
        getJson<ConfigDumpView>(base, '/config_dump'),
        getJson<{ certificates: CertView[] }>(base, '/certs'),
        getJson<ReadyView>(base, '/ready'),
        // An agent older than its workers answers 404: no section.
        getJson<{ master?: MasterInfo; workers: WorkerStatus[] }>(base, '/workers').catch(
          () => undefined,
        ),
      ]);
      if (opts.output === 'json') {
        const { resources: _r, trustBundlePem: _t, ...summary } = dump;
        console.log(
          JSON.stringify(
            {
              ...summary,
              ready,
              certificates: certs.certificates,
              master: workers?.master,
              workers: workers?.workers,
            },
            null,
            2,
          ),
        );
        return;
      }
      console.log(
        renderStatus(
          dump,
          certs.certificates,
          ready,
          Date.now(),
          workers?.workers,
          workers?.master,
        ),
      );
    });
}

async function getJson<T>(base: string, path: string): Promise<T> {
  let res: Response;
  try {
    res = await fetch(base + path, { signal: AbortSignal.timeout(5_000) });
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message;
    throw new WeftError(
      'WEFT_E_UNAVAILABLE',
      `cannot reach the agent's admin endpoint at ${base} (${cause}); is the agent running? (systemctl status weft-agent)`,
    );
  }
  // /ready answers 503 with a body when not ready: that is a status to show, not a failure.
  if (!res.ok && res.status !== 503)
    throw new WeftError('WEFT_E_UNAVAILABLE', `${base}${path} answered ${res.status}`);
  return (await res.json()) as T;
}

/** The text report; pure, so tests can check it. */
export function renderStatus(
  dump: ConfigDumpView,
  certs: CertView[],
  ready: ReadyView,
  now: number,
  workers?: WorkerStatus[],
  master?: MasterInfo,
): string {
  const lines: string[] = [];
  const stateNote: Record<string, string> = {
    connected: 'connected: following the control plane',
    stale: 'STALE: serving cached configuration, the control plane is unreachable',
    starting: 'starting: no configuration yet',
    standalone: 'standalone: no control plane configured (plain relay)',
  };
  lines.push(field('Sync', stateNote[dump.state] ?? dump.state));
  lines.push(field('Ready', ready.ready ? 'yes' : `no (${ready.reasons.join('; ')})`));
  lines.push(field('Version', dump.version === 0 ? 'none' : String(dump.version)));
  lines.push(
    field(
      'Last update',
      dump.lastUpdate ? `${ago(dump.lastUpdate, now)} (${dump.lastUpdate})` : 'never',
    ),
  );
  lines.push(
    field(
      'Control plane',
      `${dump.controlPlane}${replicasNote(dump.controlPlanes)}${dump.disconnectedSince ? `, no stream for ${ago(dump.disconnectedSince, now).replace(' ago', '')}` : ''}`,
    ),
  );
  lines.push(field('Node', dump.node ? dump.node.spiffeId : 'not joined'));
  if (dump.lastError) lines.push(field('Last error', dump.lastError));
  if (dump.lastNack) {
    lines.push(
      field(
        'Last rejected',
        `version ${dump.lastNack.version} ${ago(dump.lastNack.at, now)}: ${dump.lastNack.reason}`,
      ),
    );
  }
  lines.push('', 'Certificates:');
  if (certs.length === 0) lines.push('  none');
  else {
    lines.push(
      indent(
        table([
          ['SPIFFE ID', 'SERIAL', 'EXPIRES', 'LEFT'],
          ...certs.map((c) => [
            c.spiffeId,
            shortSerial(c.serial),
            c.notAfter,
            c.secondsLeft > 0 ? duration(c.secondsLeft) : 'EXPIRED',
          ]),
        ]),
      ),
    );
  }
  lines.push('', 'Local workloads:');
  if (dump.workloads.length === 0) lines.push('  none');
  else {
    lines.push(
      indent(
        table([
          ['NAME', 'SERVICE', 'ADDRESS', 'HEALTH', 'CHECK'],
          ...dump.workloads.map((w) => [
            w.name,
            w.service,
            hostPort(w.address, w.port),
            w.refused ? `REFUSED: ${w.refused}` : w.health,
            // An older agent's dump has no check.
            w.check === undefined ? '-' : `${w.check} (${w.checkSource})`,
          ]),
        ]),
      ),
    );
  }
  if (master !== undefined) {
    lines.push('', 'Master:');
    lines.push(
      `  pid ${master.pid}, weft ${master.version}, build ${master.build}` +
        (master.execs > 0 ? `, replaced in place ${master.execs} time(s) by upgrades` : ''),
    );
    if (master.lastUpgrade)
      lines.push(`  last upgrade ${master.lastUpgrade.outcome}: ${master.lastUpgrade.reason}`);
  }
  if (workers !== undefined) {
    lines.push('', 'Workers:');
    if (workers.length === 0) lines.push('  none');
    else
      lines.push(
        indent(
          table([
            ['PID', 'GENERATION', 'STATE', 'CONNECTIONS', 'BUILD'],
            ...workers.map((w) => [
              String(w.pid),
              String(w.generation),
              w.state,
              String(w.connections),
              w.build || '-',
            ]),
          ]),
        ),
      );
  }
  return lines.join('\n');
}

function field(name: string, value: string): string {
  return `${`${name}:`.padEnd(15)}${value}`;
}

function ago(isoTime: string, now: number): string {
  const seconds = Math.max(0, Math.round((now - Date.parse(isoTime)) / 1000));
  return `${duration(seconds)} ago`;
}

/** 90 -> "1m30s", 90000 -> "1d1h". */
export function duration(seconds: number): string {
  const d = Math.floor(seconds / 86_400);
  const h = Math.floor((seconds % 86_400) / 3_600);
  const m = Math.floor((seconds % 3_600) / 60);
  const s = seconds % 60;
  if (d > 0) return `${d}d${h}h`;
  if (h > 0) return `${h}h${m}m`;
  if (m > 0) return `${m}m${s}s`;
  return `${s}s`;
}

function shortSerial(serial: string): string {
  return serial.length > 16 ? `${serial.slice(0, 16)}…` : serial;
}

function hostPort(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

function indent(text: string): string {
  return text
    .split('\n')
    .map((l) => `  ${l}`)
    .join('\n');
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows
    .map((r) =>
      r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  '),
    )
    .join('\n');
}

/** With several replicas configured: which ones, so the line above reads as "one of these". */
function replicasNote(replicas: readonly string[] | undefined): string {
  return replicas === undefined || replicas.length < 2
    ? ''
    : ` (one of ${replicas.length} replicas: ${replicas.join(', ')})`;
}
